//! `successCondition` / `failureCondition`: CEL expressions over `result`.
//!
//! Besides CEL's standard functions, `isNaN(x)`, `isInf(x)` and `default(x, y)` are available:
//! Prometheus answers NaN for a ratio over no traffic, and `default` turns NaN or null into a
//! value the condition can compare.

use std::collections::HashMap;

use cel::extractors::Arguments;
use cel::objects::{Key, Value as Cel};
use cel::{Context, ExecutionError, IdedExpr, Program};

use super::value::MetricValue;
use crate::api::analysis::AnalysisPhase;

/// A compiled condition.
pub struct Condition {
    source: String,
    /// The program with `==` and `!=` calling [`numeric_eq`]; see [`equality_by_value`].
    expression: IdedExpr,
    /// Whether the condition indexes `result` (`result[0] >= 0.99`, as Argo Rollouts' templates
    /// read a query's one value): a single value is then bound as a list of one.
    indexes_result: bool,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    /// Compiles `source`. The error is the compiler's message, for the run's status and lint.
    pub fn compile(source: &str) -> Result<Condition, String> {
        if source.trim().is_empty() {
            return Err("the condition is empty".into());
        }
        let program = Program::compile(source).map_err(|e| parse_error(&e.to_string()))?;
        // CEL only finds an unknown variable when evaluating; a condition can only read `result`
        // and the variables its macros bind (`result.all(x, x < 1)`).
        let bound = macro_variables(source);
        if let Some(other) = program
            .references()
            .variables()
            .into_iter()
            .find(|v| *v != "result" && !bound.iter().any(|b| b == v))
        {
            return Err(format!(
                "undeclared reference to {other:?}: a condition can only use `result` \
                 (arguments are written {{{{args.NAME}}}})"
            ));
        }
        let mut expression = program.expression().clone();
        equality_by_value(&mut expression);
        let mut indexes_result = false;
        visit(&expression, &mut |e| {
            indexes_result |= is_index_of_result(e)
        });
        Ok(Condition {
            source: source.to_string(),
            expression,
            indexes_result,
        })
    }

    /// Evaluates the condition with `result` bound to `value`; it must give a bool. A result
    /// of more than [`MAX_RESULT_VALUES`] values, or a condition that would take more than
    /// [`MAX_COST`] steps over it (`result.all(x, result.all(y, ...))` over a long list), is
    /// refused before evaluating: CEL here has no cost limit of its own.
    pub fn eval(&self, value: &MetricValue) -> Result<bool, String> {
        let size = values_in(value);
        if size > MAX_RESULT_VALUES {
            return Err(format!(
                "the result has {size} values, more than the {MAX_RESULT_VALUES} a condition is                  evaluated on: narrow the query (an aggregation, a jsonPath)"
            ));
        }
        let cost = cost(
            &self.expression,
            size as u64 + literal_items(&self.expression),
        );
        if cost > MAX_COST {
            return Err(format!(
                "condition {:?} would take about {cost} steps over a result of {size} values,                  more than the limit of {MAX_COST}: avoid nesting macros like all() and                  exists() over the result",
                self.source
            ));
        }
        let mut ctx = Context::default();
        ctx.add_function("isNaN", is_nan);
        ctx.add_function("isInf", is_inf);
        ctx.add_function("default", default);
        ctx.add_function(EQ, numeric_eq);
        ctx.add_function(NE, numeric_ne);
        ctx.add_function(IN, in_by_value);
        let value = match value {
            MetricValue::Number(_) if self.indexes_result => {
                &MetricValue::List(vec![value.clone()])
            }
            other => other,
        };
        ctx.add_variable_from_value("result", to_cel(value));
        match Cel::resolve(&self.expression, &ctx) {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "condition {:?} gave {other:?}, not a bool",
                self.source
            )),
            Err(e) => Err(format!("condition {:?}: {e}", self.source)),
        }
    }
}

/// The most values (numbers, list items, JSON nodes) a result may have for a condition to be
/// evaluated on it.
pub const MAX_RESULT_VALUES: usize = 10_000;

/// The most steps a condition may take, as [`cost`] estimates them.
pub const MAX_COST: u64 = 10_000_000;

/// How many values `v` holds, counting every list item and JSON node.
fn values_in(v: &MetricValue) -> usize {
    fn json(j: &serde_json::Value) -> usize {
        match j {
            serde_json::Value::Array(items) => 1 + items.iter().map(json).sum::<usize>(),
            serde_json::Value::Object(map) => 1 + map.values().map(json).sum::<usize>(),
            _ => 1,
        }
    }
    match v {
        MetricValue::Number(_) => 1,
        MetricValue::List(items) => 1 + items.iter().map(values_in).sum::<usize>(),
        MetricValue::Json(j) => json(j),
    }
}

/// Items of the list and map literals in the condition: a macro may range over those too.
fn literal_items(e: &IdedExpr) -> u64 {
    use cel::common::ast::Expr;
    let mut n = 0;
    visit(e, &mut |e| match &e.expr {
        Expr::List(l) => n += l.elements.len() as u64,
        Expr::Map(m) => n += m.entries.len() as u64,
        _ => {}
    });
    n
}

/// `result[...]`: an index straight into the result.
fn is_index_of_result(e: &IdedExpr) -> bool {
    use cel::common::ast::{Expr, operators};
    match &e.expr {
        Expr::Call(call) => {
            call.func_name == operators::INDEX
                && call
                    .args
                    .first()
                    .is_some_and(|a| matches!(&a.expr, Expr::Ident(name) if name == "result"))
        }
        _ => false,
    }
}

fn visit(e: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
    use cel::common::ast::{EntryExpr, Expr};
    f(e);
    match &e.expr {
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                visit(t, f);
            }
            call.args.iter().for_each(|a| visit(a, f));
        }
        Expr::Comprehension(c) => {
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(part, f);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| visit(x, f)),
        Expr::Map(m) => m.entries.iter().for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => {
                visit(&me.key, f);
                visit(&me.value, f);
            }
            EntryExpr::StructField(sf) => visit(&sf.value, f),
        }),
        Expr::Struct(st) => st.entries.iter().for_each(|entry| {
            if let EntryExpr::StructField(sf) = &entry.expr {
                visit(&sf.value, f);
            }
        }),
        Expr::Select(s) => visit(&s.operand, f),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

/// An upper estimate of the steps `e` takes when no list it ranges over is longer than `n`:
/// one per node, and a macro's body once per item, so nesting multiplies.
fn cost(e: &IdedExpr, n: u64) -> u64 {
    use cel::common::ast::{EntryExpr, Expr};
    let sum = |items: &mut dyn Iterator<Item = &IdedExpr>| {
        items.fold(0u64, |acc, x| acc.saturating_add(cost(x, n)))
    };
    let children = match &e.expr {
        Expr::Call(call) => sum(&mut call.target.iter().map(|t| &**t).chain(call.args.iter())),
        Expr::Comprehension(c) => {
            let body = cost(&c.loop_cond, n).saturating_add(cost(&c.loop_step, n));
            sum(&mut [&c.iter_range, &c.accu_init, &c.result].into_iter())
                .saturating_add(n.max(1).saturating_mul(body))
        }
        Expr::List(l) => sum(&mut l.elements.iter()),
        Expr::Map(m) => m.entries.iter().fold(0u64, |acc, entry| {
            acc.saturating_add(match &entry.expr {
                EntryExpr::MapEntry(me) => cost(&me.key, n).saturating_add(cost(&me.value, n)),
                EntryExpr::StructField(sf) => cost(&sf.value, n),
            })
        }),
        Expr::Struct(st) => st
            .entries
            .iter()
            .fold(0u64, |acc, entry| match &entry.expr {
                EntryExpr::StructField(sf) => acc.saturating_add(cost(&sf.value, n)),
                EntryExpr::MapEntry(_) => acc,
            }),
        Expr::Select(s) => cost(&s.operand, n),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 0,
    };
    children.saturating_add(1)
}

/// What `==` and `!=` call after [`equality_by_value`]. The names cannot be written in a
/// condition (`@` is not an identifier character), so no user call can reach them.
const EQ: &str = "@eq";
const NE: &str = "@ne";
const IN: &str = "@in_by_value";

/// cel 0.13's `==` and `in` compare a double only with a double: `0.0 == 0` and
/// `0.0 in [0, 1]` are false. Prometheus answers doubles, and a condition like `result == 0`
/// (as written for Argo Rollouts) would then never hold: a failure condition that never fires
/// passes a bad release. So `==`, `!=` and `in` are rewritten to compare values as CEL's spec
/// does (numbers by value, across int, uint and double; lists and maps element by element),
/// which `Value`'s `PartialEq` does.
fn equality_by_value(e: &mut IdedExpr) {
    use cel::common::ast::{EntryExpr, Expr, operators};
    match &mut e.expr {
        Expr::Call(call) => {
            if call.target.is_none() && call.args.len() == 2 {
                match call.func_name.as_str() {
                    operators::EQUALS => call.func_name = EQ.into(),
                    operators::NOT_EQUALS => call.func_name = NE.into(),
                    operators::IN => call.func_name = IN.into(),
                    _ => {}
                }
            }
            if let Some(target) = &mut call.target {
                equality_by_value(target);
            }
            call.args.iter_mut().for_each(equality_by_value);
        }
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                equality_by_value(part);
            }
        }
        Expr::List(list) => list.elements.iter_mut().for_each(equality_by_value),
        Expr::Map(map) => map
            .entries
            .iter_mut()
            .for_each(|entry| match &mut entry.expr {
                EntryExpr::MapEntry(m) => {
                    equality_by_value(&mut m.key);
                    equality_by_value(&mut m.value);
                }
                EntryExpr::StructField(f) => equality_by_value(&mut f.value),
            }),
        Expr::Struct(st) => st.entries.iter_mut().for_each(|entry| {
            if let EntryExpr::StructField(f) = &mut entry.expr {
                equality_by_value(&mut f.value);
            }
        }),
        Expr::Select(select) => equality_by_value(&mut select.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn numeric_eq(Arguments(args): Arguments) -> Result<Cel, ExecutionError> {
    let [a, b] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    Ok(Cel::Bool(a == b))
}

fn numeric_ne(args: Arguments) -> Result<Cel, ExecutionError> {
    Ok(Cel::Bool(numeric_eq(args)? == Cel::Bool(false)))
}

/// `x in list` (an element equal to `x`) and `x in map` (a key equal to `x`), by value.
fn in_by_value(Arguments(args): Arguments) -> Result<Cel, ExecutionError> {
    let [x, container] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    match container {
        Cel::List(items) => Ok(Cel::Bool(items.iter().any(|i| i == x))),
        Cel::Map(map) => Ok(Cel::Bool(map.map.keys().any(|k| Cel::from(k) == *x))),
        other => Err(ExecutionError::function_error(
            "in",
            format!("needs a list or a map on its right, not {other:?}"),
        )),
    }
}

/// The parser's message is "ERROR: <input>:1:14: <what> | <source> | <caret>" over three lines:
/// the position and what is wrong are what fits on one line of a status or of `lint`.
fn parse_error(text: &str) -> String {
    let first = text.split(" | ").next().unwrap_or_default();
    let first = first.lines().next().unwrap_or_default();
    first
        .trim()
        .trim_start_matches("ERROR: ")
        .trim_start_matches("<input>:")
        .to_string()
}

/// Names bound by comprehension macros: `.all(x, ...)`, `.exists(x, ...)`, `.map(x, ...)` ...
fn macro_variables(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in ["all", "exists", "exists_one", "map", "filter"] {
        let needle = format!(".{m}(");
        let mut rest = source;
        while let Some(at) = rest.find(&needle) {
            rest = &rest[at + needle.len()..];
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// A metric's two conditions.
#[derive(Debug, Default)]
pub struct Conditions {
    pub success: Option<Condition>,
    pub failure: Option<Condition>,
}

impl Conditions {
    /// Compiles both; the error names which one failed.
    pub fn compile(success: Option<&str>, failure: Option<&str>) -> Result<Conditions, String> {
        let success = success
            .map(Condition::compile)
            .transpose()
            .map_err(|e| format!("successCondition: {e}"))?;
        let failure = failure
            .map(Condition::compile)
            .transpose()
            .map_err(|e| format!("failureCondition: {e}"))?;
        Ok(Conditions { success, failure })
    }

    /// Judges one result. Failure wins over success; with both conditions a result meeting
    /// neither is Inconclusive; with only one, not meeting it means the other outcome; with none,
    /// any value is a success. An evaluation error (a type mismatch) is an Error measurement.
    pub fn judge(&self, value: &MetricValue) -> Result<AnalysisPhase, String> {
        let failed = match &self.failure {
            Some(c) => Some(c.eval(value)?),
            None => None,
        };
        let succeeded = match &self.success {
            Some(c) => Some(c.eval(value)?),
            None => None,
        };
        Ok(match (succeeded, failed) {
            (_, Some(true)) => AnalysisPhase::Failed,
            (Some(true), _) => AnalysisPhase::Successful,
            (Some(false), Some(false)) => AnalysisPhase::Inconclusive,
            (Some(false), None) => AnalysisPhase::Failed,
            (None, _) => AnalysisPhase::Successful,
        })
    }
}

fn to_cel(value: &MetricValue) -> Cel {
    match value {
        MetricValue::Number(n) => Cel::Float(*n),
        MetricValue::List(items) => {
            Cel::List(std::sync::Arc::new(items.iter().map(to_cel).collect()))
        }
        MetricValue::Json(json) => json_to_cel(json),
    }
}

fn json_to_cel(json: &serde_json::Value) -> Cel {
    use serde_json::Value as J;
    match json {
        J::Null => Cel::Null,
        J::Bool(b) => Cel::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Cel::String(std::sync::Arc::new(s.clone())),
        J::Array(items) => Cel::List(std::sync::Arc::new(items.iter().map(json_to_cel).collect())),
        J::Object(map) => {
            let map: HashMap<Key, Cel> = map
                .iter()
                .map(|(k, v)| (Key::from(k.clone()), json_to_cel(v)))
                .collect();
            Cel::from(map)
        }
    }
}

fn as_f64(function: &str, v: &Cel) -> Result<f64, ExecutionError> {
    match v {
        Cel::Float(f) => Ok(*f),
        Cel::Int(i) => Ok(*i as f64),
        Cel::UInt(u) => Ok(*u as f64),
        other => Err(ExecutionError::function_error(
            function,
            format!("wants a number, got {other:?}"),
        )),
    }
}

fn is_nan(v: Cel) -> Result<bool, ExecutionError> {
    Ok(as_f64("isNaN", &v)?.is_nan())
}

fn is_inf(v: Cel) -> Result<bool, ExecutionError> {
    Ok(as_f64("isInf", &v)?.is_infinite())
}

/// `x` unless it is null or NaN, else `y`.
fn default(Arguments(args): Arguments) -> Result<Cel, ExecutionError> {
    let [x, y] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    Ok(match x {
        Cel::Null => y.clone(),
        Cel::Float(f) if f.is_nan() => y.clone(),
        _ => x.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AnalysisPhase::*;

    fn judge(success: Option<&str>, failure: Option<&str>, v: MetricValue) -> AnalysisPhase {
        Conditions::compile(success, failure)
            .unwrap()
            .judge(&v)
            .unwrap()
    }

    #[test]
    fn one_value_reads_as_a_number_or_as_result_0() {
        // Argo Rollouts' templates read a query's one value as `result[0]`; fledge's as `result`.
        let one = || MetricValue::Number(0.995);
        assert_eq!(
            judge(Some("result[0] >= 0.99"), Some("result[0] < 0.95"), one()),
            AnalysisPhase::Successful
        );
        assert_eq!(
            judge(Some("result >= 0.99"), None, one()),
            AnalysisPhase::Successful
        );
        assert_eq!(
            judge(None, Some("result[0] < 0.999"), one()),
            AnalysisPhase::Failed
        );
        // Several values stay a list either way.
        let two = MetricValue::List(vec![MetricValue::Number(1.0), MetricValue::Number(0.5)]);
        assert_eq!(
            judge(Some("result[1] >= 0.99"), Some("result[1] < 0.9"), two),
            AnalysisPhase::Failed
        );
    }

    #[test]
    fn failure_wins_neither_is_inconclusive_none_is_success() {
        let n = MetricValue::Number;
        assert_eq!(
            judge(Some("result > 1"), Some("result > 2"), n(3.0)),
            Failed
        );
        assert_eq!(
            judge(Some("result > 1"), Some("result < 0"), n(1.5)),
            Successful
        );
        assert_eq!(
            judge(Some("result > 1"), Some("result < 0"), n(0.5)),
            Inconclusive
        );
        assert_eq!(judge(Some("result > 1"), None, n(0.5)), Failed);
        assert_eq!(judge(None, Some("result > 1"), n(0.5)), Successful);
        assert_eq!(judge(None, None, n(0.5)), Successful);
    }

    #[test]
    fn nan_inf_and_default() {
        let nan = MetricValue::Number(f64::NAN);
        assert_eq!(judge(Some("isNaN(result)"), None, nan.clone()), Successful);
        assert_eq!(
            judge(Some("default(result, 1.0) >= 0.99"), None, nan),
            Successful
        );
        assert_eq!(
            judge(
                Some("isInf(result)"),
                None,
                MetricValue::Number(f64::INFINITY)
            ),
            Successful
        );
        assert_eq!(
            judge(
                Some("default(result.missing_is_null, 2) == 2"),
                None,
                MetricValue::Json(serde_json::json!({"missing_is_null": null}))
            ),
            Successful
        );
    }

    #[test]
    fn numbers_are_equal_by_value_whatever_their_type() {
        let zero = MetricValue::Number(0.0);
        assert_eq!(judge(Some("result == 0"), None, zero.clone()), Successful);
        assert_eq!(judge(Some("result != 0"), None, zero.clone()), Failed);
        assert_eq!(judge(Some("result == 0.0"), None, zero.clone()), Successful);
        assert_eq!(judge(Some("0 == result"), None, zero.clone()), Successful);
        assert_eq!(judge(None, Some("result == 1"), zero.clone()), Successful);
        assert_eq!(
            judge(None, Some("result == 1"), MetricValue::Number(1.0)),
            Failed,
            "a failure condition written with an int fires"
        );
        let list = MetricValue::List(vec![MetricValue::Number(1.0), MetricValue::Number(2.0)]);
        assert_eq!(
            judge(
                Some("result == [1, 2] && size(result) == 2"),
                None,
                list.clone()
            ),
            Successful
        );
        assert_eq!(
            judge(Some("result.exists(x, x == 2)"), None, list.clone()),
            Successful
        );
        assert_eq!(
            judge(Some("result.exists_one(x, x == 2)"), None, list),
            Successful
        );
        assert_eq!(
            judge(None, Some("result in [1, 2]"), zero.clone()),
            Successful
        );
        assert_eq!(
            judge(None, Some("result in [0, 1]"), zero.clone()),
            Failed,
            "`in` finds an int among doubles"
        );
        assert_eq!(
            judge(Some("'a' in {'a': 1}"), None, zero.clone()),
            Successful
        );
        assert_eq!(judge(Some("!(result in {1: 'x'})"), None, zero), Successful);
        let json = MetricValue::Json(serde_json::json!({"status": "ok", "errors": 0.0}));
        assert_eq!(
            judge(
                Some("result.status == 'ok' && result.errors == 0"),
                None,
                json
            ),
            Successful
        );
    }

    #[test]
    fn lists_and_json() {
        let list = MetricValue::List(vec![MetricValue::Number(1.0), MetricValue::Number(5.0)]);
        assert_eq!(
            judge(Some("result.all(x, x < 10)"), None, list.clone()),
            Successful
        );
        assert_eq!(
            judge(Some("result[1] == 5.0 && size(result) == 2"), None, list),
            Successful
        );
        let json = MetricValue::Json(serde_json::json!({"ok": true, "rate": 0.5}));
        assert_eq!(
            judge(Some("result.ok && result.rate < 1"), None, json),
            Successful
        );
    }

    /// A nested `all` over a long list is n² steps on the thread evaluating it: 5 000 values
    /// are 25 million steps, seconds of a runtime thread. Refused before evaluating, with a
    /// message; a single pass over the same list is fine, and a list past the size limit is
    /// refused whatever the condition.
    #[test]
    fn a_nested_macro_over_a_large_result_is_refused_not_evaluated() {
        let list = MetricValue::List((0..5_000).map(|i| MetricValue::Number(i as f64)).collect());
        let nested = Condition::compile("result.all(x, result.all(y, x <= y || x > y))").unwrap();
        let err = nested.eval(&list).unwrap_err();
        assert!(
            err.contains("would take about") && err.contains("5001 values"),
            "{err}"
        );
        let flat = Condition::compile("result.all(x, x >= 0)").unwrap();
        assert_eq!(flat.eval(&list), Ok(true));
        let huge = MetricValue::Json(serde_json::json!((0..20_000).collect::<Vec<_>>()));
        let err = flat.eval(&huge).unwrap_err();
        assert!(err.contains("20001 values"), "{err}");
        let small = MetricValue::List(vec![MetricValue::Number(1.0); 100]);
        assert_eq!(nested.eval(&small), Ok(true));
    }

    #[test]
    fn bad_input_gives_messages_not_panics() {
        let err = Conditions::compile(Some("result >"), None).unwrap_err();
        assert!(err.starts_with("successCondition:"), "{err}");
        assert!(
            err.starts_with("successCondition: 1:9: Syntax error") && !err.contains('\n'),
            "the position and the reason, on one line: {err}"
        );
        let err = Conditions::compile(None, Some("reslt > 1")).unwrap_err();
        assert!(err.contains("reslt"), "{err}");
        assert!(Condition::compile("  ").is_err());
        // A non-bool result and a type mismatch are evaluation errors.
        let c = Conditions::compile(Some("result + 1"), None).unwrap();
        assert!(c.judge(&MetricValue::Number(1.0)).is_err());
        let c = Conditions::compile(Some("result > 'a'"), None).unwrap();
        assert!(c.judge(&MetricValue::Number(1.0)).is_err());
        let c = Conditions::compile(Some("isNaN('x')"), None).unwrap();
        assert!(c.judge(&MetricValue::Number(1.0)).is_err());
    }
}
