//! What a provider measured, before the conditions judge it.

/// A measured value. Numbers stay `f64` so NaN and infinities (which JSON cannot hold) reach the
/// conditions as they are.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A scalar, or a one-element vector.
    Number(f64),
    /// A vector of several elements.
    List(Vec<MetricValue>),
    /// A JSON value (the web provider).
    Json(serde_json::Value),
}

impl std::fmt::Display for MetricValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricValue::Number(n) if n.is_nan() => f.write_str("NaN"),
            MetricValue::Number(n) if n.is_infinite() => {
                f.write_str(if *n > 0.0 { "+Inf" } else { "-Inf" })
            }
            MetricValue::Number(n) => write!(f, "{n}"),
            MetricValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            MetricValue::Json(j) => write!(f, "{j}"),
        }
    }
}

/// What one measurement gave, before judging.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A value for the conditions.
    Value(MetricValue),
    /// The query answered nothing: Inconclusive, never a success.
    NoData(String),
    /// The provider failed (unreachable, bad answer): counts towards `consecutiveErrorLimit`.
    Error(String),
    /// The provider decided itself (a Job succeeded or failed).
    Decided(crate::api::analysis::AnalysisPhase, String),
    /// Still in progress (a Job running); `metadata` lets the next reconcile find it.
    Running(std::collections::BTreeMap<String, String>),
}

#[cfg(test)]
mod tests {
    use super::MetricValue::*;

    #[test]
    fn displays_like_json_with_nan() {
        assert_eq!(Number(0.5).to_string(), "0.5");
        assert_eq!(Number(f64::NAN).to_string(), "NaN");
        assert_eq!(List(vec![Number(1.0), Number(2.5)]).to_string(), "[1,2.5]");
        assert_eq!(Json(serde_json::json!({"a": 1})).to_string(), r#"{"a":1}"#);
    }
}
