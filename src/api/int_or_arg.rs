//! A whole number a template may fill from an argument, as Argo Rollouts allows for `count` and
//! the limits: `3`, or `"{{args.count}}"`, resolved when the run is created.

use serde::{Deserialize, Serialize};

/// The schema pattern a string form must match: a number, or one `{{args.NAME}}`.
pub const INT_OR_ARG_PATTERN: &str = r"^([0-9]+|\{\{ *args\.[^{} ]+ *\}\})$";

/// An integer, or text holding one (an argument not yet replaced, or a number written as a
/// string).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrArg {
    Int(i32),
    Text(String),
}

impl IntOrArg {
    /// The number; `None` for text that is not one (an argument not replaced yet). Run
    /// validation refuses such text once the arguments are in.
    pub fn value(&self) -> Option<i32> {
        match self {
            IntOrArg::Int(i) => Some(*i),
            IntOrArg::Text(t) => t.trim().parse().ok(),
        }
    }
}

impl From<i32> for IntOrArg {
    fn from(i: i32) -> Self {
        IntOrArg::Int(i)
    }
}

impl schemars::JsonSchema for IntOrArg {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrArg".into()
    }

    fn inline_schema() -> bool {
        true
    }

    // An integer of at least 0, or a string that is a number or an argument: anything else (a
    // boolean, a word, a negative number) is refused at admission.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "x-kubernetes-int-or-string": true,
            "minimum": 0,
            "pattern": INT_OR_ARG_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_and_arguments() {
        let read = |v: serde_json::Value| serde_json::from_value::<IntOrArg>(v);
        assert_eq!(read(serde_json::json!(3)).unwrap().value(), Some(3));
        assert_eq!(read(serde_json::json!("4")).unwrap().value(), Some(4));
        let arg = read(serde_json::json!("{{args.count}}")).unwrap();
        assert_eq!(arg.value(), None);
        assert!(read(serde_json::json!(true)).is_err());
        let pattern = regex::Regex::new(INT_OR_ARG_PATTERN).unwrap();
        for ok in ["0", "12", "{{args.count}}", "{{ args.count }}"] {
            assert!(pattern.is_match(ok), "{ok}");
        }
        for bad in ["-1", "lots", "{{args.a}}{{args.b}}", "1{{args.a}}", ""] {
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }
}
