//! How a mirror route's conditions (method, path, headers; alternatives OR'ed) become a router's
//! matches. A mirror rule is the user's weighed rule narrowed by the conditions: each of the
//! rule's own matches meets each alternative, so a mirror never takes a request the rule would
//! not have sent to the stable Service. Where a router cannot express a condition, or fledge
//! cannot tell which requests both the rule and the condition match, the answer is an error
//! naming the field (an `InvalidSpec`), never a wider mirror.

use serde_json::{Value, json};

use crate::api::{HeaderRouteMatch, MirrorMatch, SetMirrorRoute, StringMatch};

/// The methods an HTTPRoute's `method` field accepts (Gateway API's HTTPMethod enum).
const GATEWAY_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Gateway API caps a rule's `matches` at 64.
const GATEWAY_MAX_MATCHES: usize = 64;

/// One condition on a method or a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Exact(String),
    Prefix(String),
    Regex(String),
}

impl Cond {
    pub fn of(m: &StringMatch) -> Option<Cond> {
        match (&m.exact, &m.prefix, &m.regex) {
            (Some(e), _, _) => Some(Cond::Exact(e.clone())),
            (_, Some(p), _) => Some(Cond::Prefix(p.clone())),
            (_, _, Some(r)) => Some(Cond::Regex(r.clone())),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Cond::Exact(_) => "exact",
            Cond::Prefix(_) => "prefix",
            Cond::Regex(_) => "regex",
        }
    }

    /// A path prefix every path has.
    fn is_everything(&self) -> bool {
        matches!(self, Cond::Prefix(p) if p.trim_end_matches('/').is_empty())
    }
}

/// What a rule's own condition and a mirror's have in common.
#[derive(Debug, PartialEq, Eq)]
pub enum Meet {
    /// The requests matching both are those matching this one.
    Both(Cond),
    /// No request matches both.
    Never,
    /// fledge cannot tell (a regular expression meets something else).
    Unknown,
}

/// Whether `value` starts with `prefix`: by whole path elements (Gateway API's PathPrefix) or
/// by characters (Istio's prefix).
fn under(value: &str, prefix: &str, elements: bool) -> bool {
    if !elements {
        return value.starts_with(prefix);
    }
    let p = prefix.trim_end_matches('/');
    let v = value.trim_end_matches('/');
    v == p || v.starts_with(&format!("{p}/"))
}

/// The meet of the rule's condition `base` (none: everything) and the mirror's `want`.
pub fn meet(base: Option<&Cond>, want: &Cond, elements: bool) -> Meet {
    use Cond::*;
    let Some(base) = base.filter(|b| !b.is_everything()) else {
        return Meet::Both(want.clone());
    };
    if base == want || want.is_everything() {
        return Meet::Both(base.clone());
    }
    match (base, want) {
        (Exact(b), Exact(w)) => {
            if b == w {
                Meet::Both(base.clone())
            } else {
                Meet::Never
            }
        }
        (Prefix(b), Exact(w)) | (Exact(w), Prefix(b)) => {
            if under(w, b, elements) {
                Meet::Both(Exact(w.clone()))
            } else {
                Meet::Never
            }
        }
        (Prefix(b), Prefix(w)) => {
            if under(w, b, elements) {
                Meet::Both(want.clone())
            } else if under(b, w, elements) {
                Meet::Both(base.clone())
            } else {
                Meet::Never
            }
        }
        _ => Meet::Unknown,
    }
}

fn describe(c: &Cond) -> String {
    match c {
        Cond::Exact(v) | Cond::Prefix(v) | Cond::Regex(v) => format!("{} {v:?}", c.kind()),
    }
}

/// Meets the rule's condition and the mirror's, where either is set; `Ok(None)` when no request
/// matches both. `field` names the mirror's condition, `what` the rule's, for messages.
fn combine(
    base: Option<Cond>,
    want: Option<&StringMatch>,
    elements: bool,
    field: &str,
    what: &str,
) -> Result<Option<Option<Cond>>, String> {
    let Some(want) = want.and_then(Cond::of) else {
        return Ok(Some(base));
    };
    match meet(base.as_ref(), &want, elements) {
        Meet::Both(c) => Ok(Some(Some(c))),
        Meet::Never => Ok(None),
        Meet::Unknown => Err(format!(
            "{field}: {what} already matches {}; fledge cannot tell which requests both it and \
             {} match, so the mirror is not written (use the same condition, or one without a \
             regular expression)",
            base.as_ref().map(describe).unwrap_or_default(),
            describe(&want)
        )),
    }
}

/// The alternatives of `route`, each with the field it was written in.
fn alternatives(route: &SetMirrorRoute) -> Vec<(String, MirrorMatch)> {
    route
        .alternatives()
        .into_iter()
        .enumerate()
        .map(|(i, a)| (route.alternative_field(i), a))
        .collect()
}

fn gateway_path(c: &Cond) -> Value {
    let (kind, value) = match c {
        Cond::Exact(v) => ("Exact", v),
        Cond::Prefix(v) => ("PathPrefix", v),
        Cond::Regex(v) => ("RegularExpression", v),
    };
    json!({"type": kind, "value": value})
}

fn gateway_path_of(m: &Value) -> Option<Cond> {
    let value = m.pointer("/path/value")?.as_str()?.to_string();
    match m.pointer("/path/type").and_then(Value::as_str) {
        Some("Exact") => Some(Cond::Exact(value)),
        Some("RegularExpression") => Some(Cond::Regex(value)),
        _ => Some(Cond::Prefix(value)),
    }
}

/// What a Gateway API route cannot express of alternative `alt`.
fn gateway_refuses(alt: &MirrorMatch, field: &str, grpc: bool) -> Option<String> {
    if grpc {
        for (set, name) in [
            (alt.method.is_some(), "method"),
            (alt.path.is_some(), "path"),
        ] {
            if set {
                return Some(format!(
                    "{field}.{name}: a GRPCRoute has no HTTP {name} to match; match gRPC calls \
                     by headers only"
                ));
            }
        }
        return None;
    }
    if let Some(m) = alt.method.as_ref().and_then(Cond::of) {
        match &m {
            Cond::Exact(v) if GATEWAY_METHODS.contains(&v.as_str()) => {}
            Cond::Exact(v) => {
                return Some(format!(
                    "{field}.method.exact: an HTTPRoute matches one of {} exactly, not {v:?}",
                    GATEWAY_METHODS.join(", ")
                ));
            }
            other => {
                return Some(format!(
                    "{field}.method.{}: an HTTPRoute matches methods exactly only",
                    other.kind()
                ));
            }
        }
    }
    match alt.path.as_ref().and_then(Cond::of) {
        Some(c @ (Cond::Exact(_) | Cond::Prefix(_))) => match &c {
            Cond::Exact(v) | Cond::Prefix(v) if !v.starts_with('/') => Some(format!(
                "{field}.path.{}: an HTTPRoute path starts with \"/\", not {v:?}",
                c.kind()
            )),
            _ => None,
        },
        _ => None,
    }
}

/// The route's own matches under `key`; none means every request, which is one empty match.
fn own_matches(base: &Value, key: &str) -> Vec<Value> {
    base.get(key)
        .and_then(Value::as_array)
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})])
}

/// The matches of the mirror rule made from user rule `base` of a Gateway API route: each of
/// the rule's matches with each alternative. `Ok(None)`: the mirror takes none of the rule's
/// requests, so no rule is added (a rule with no matches would match every request).
pub fn gateway_rule_matches(
    base: &Value,
    route: &SetMirrorRoute,
    grpc: bool,
) -> Result<Option<Vec<Value>>, String> {
    let own = own_matches(base, "matches");
    let alts = alternatives(route);
    if alts.is_empty() {
        return Ok(Some(own));
    }
    let mut out = Vec::new();
    for (field, alt) in &alts {
        if let Some(why) = gateway_refuses(alt, field, grpc) {
            return Err(why);
        }
        for m in &own {
            let mut m = m.clone();
            if !grpc {
                let method = m
                    .get("method")
                    .and_then(Value::as_str)
                    .map(|s| Cond::Exact(s.into()));
                let Some(method) = combine(
                    method,
                    alt.method.as_ref(),
                    false,
                    &format!("{field}.method"),
                    "the route's rule",
                )?
                else {
                    continue;
                };
                let Some(path) = combine(
                    gateway_path_of(&m),
                    alt.path.as_ref(),
                    true,
                    &format!("{field}.path"),
                    "the route's rule",
                )?
                else {
                    continue;
                };
                if let Some(Cond::Exact(v)) = method {
                    m["method"] = v.into();
                }
                if let Some(p) = path {
                    m["path"] = gateway_path(&p);
                }
            }
            if !alt.headers.is_empty()
                && let Some(obj) = m.as_object_mut()
            {
                let headers = obj
                    .entry("headers")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = headers.as_array_mut() {
                    list.extend(super::gateway::header_matches(&alt.headers));
                }
            }
            out.push(m);
        }
    }
    if out.len() > GATEWAY_MAX_MATCHES {
        return Err(format!(
            ": the mirror rule would need {} matches (each of the rule's matches with each \
             alternative); Gateway API allows {GATEWAY_MAX_MATCHES}",
            out.len()
        ));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// An Istio StringMatch.
fn istio_string(c: &Cond) -> Value {
    match c {
        Cond::Exact(v) => json!({"exact": v}),
        Cond::Prefix(v) => json!({"prefix": v}),
        Cond::Regex(v) => json!({"regex": v}),
    }
}

fn istio_cond(v: Option<&Value>) -> Option<Cond> {
    let v = v?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    text("exact")
        .map(Cond::Exact)
        .or_else(|| text("prefix").map(Cond::Prefix))
        .or_else(|| text("regex").map(Cond::Regex))
}

/// The `match` list of the mirror route made from HTTP route `base` of a VirtualService: each
/// of its matches with each alternative. `Ok(None)`: the mirror takes none of its requests.
pub fn istio_route_matches(
    base: &Value,
    route: &SetMirrorRoute,
    header: impl Fn(&HeaderRouteMatch) -> Value,
) -> Result<Option<Vec<Value>>, String> {
    let own = own_matches(base, "match");
    let alts = alternatives(route);
    if alts.is_empty() {
        return Ok(Some(own));
    }
    let mut out = Vec::new();
    for (field, alt) in &alts {
        for m in &own {
            let mut m = m.clone();
            let what = "the VirtualService's HTTP route";
            let Some(method) = combine(
                istio_cond(m.get("method")),
                alt.method.as_ref(),
                false,
                &format!("{field}.method"),
                what,
            )?
            else {
                continue;
            };
            let Some(uri) = combine(
                istio_cond(m.get("uri")),
                alt.path.as_ref(),
                false,
                &format!("{field}.path"),
                what,
            )?
            else {
                continue;
            };
            if let Some(c) = method {
                m["method"] = istio_string(&c);
            }
            if let Some(c) = uri {
                m["uri"] = istio_string(&c);
            }
            for c in &alt.headers {
                m["headers"][&c.header_name] = header(c);
            }
            out.push(m);
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

#[cfg(test)]
#[path = "mirror_match_tests.rs"]
mod tests;
