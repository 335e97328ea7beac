//! Values that came from Secrets, taken out of every text a run shows: measurement messages and
//! values, the run's message (and so its Events), logs. A Secret's value can reach such a text
//! as it is, or as it was written into a URL, query or condition (percent-encoded, escaped),
//! or quoted by an error message (`{:?}`); every one of those forms is replaced. Pure.

use crate::analysis::value::Outcome;
use crate::api::analysis::Measurement;

/// What a Secret's value is shown as.
pub const REDACTED: &str = "[redacted]";

/// The texts to take out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redactor {
    /// Longest first, so a form containing another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Redacts each of `values` and the forms it takes in URLs, JSON and quoted messages.
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut r = Redactor::default();
        for v in values {
            r.add(&v);
        }
        r
    }

    /// Adds `value` and its encoded forms.
    pub fn add(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        let debug = format!("{value:?}");
        let json = serde_json::Value::String(value.to_string()).to_string();
        let forms = [
            value.to_string(),
            debug[1..debug.len() - 1].to_string(),
            json[1..json.len() - 1].to_string(),
            super::quote::percent_encode(value),
            form_encode(value),
            value.to_lowercase(),
        ];
        for f in forms {
            if !f.is_empty() && !self.secrets.contains(&f) {
                self.secrets.push(f);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret form replaced by [`REDACTED`].
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// A measurement as it may be shown: value, message and provider details redacted.
    pub fn measurement(&self, m: &mut Measurement) {
        if self.is_empty() {
            return;
        }
        for t in [&mut m.value, &mut m.message].into_iter().flatten() {
            *t = self.text(t);
        }
        for v in m.metadata.values_mut() {
            *v = self.text(v);
        }
    }

    /// An outcome's messages redacted, and the strings of a JSON value: what a provider hands
    /// on when it sent a Secret (a header) that the answer may echo.
    pub fn outcome(&self, o: Outcome) -> Outcome {
        if self.is_empty() {
            return o;
        }
        match o {
            Outcome::NoData(m) => Outcome::NoData(self.text(&m)),
            Outcome::Error(m) => Outcome::Error(self.text(&m)),
            Outcome::Decided(p, m) => Outcome::Decided(p, self.text(&m)),
            Outcome::Value(v) => Outcome::Value(self.value(v)),
            Outcome::Running(meta) => {
                Outcome::Running(meta.into_iter().map(|(k, v)| (k, self.text(&v))).collect())
            }
        }
    }

    fn value(&self, v: crate::analysis::value::MetricValue) -> crate::analysis::value::MetricValue {
        use crate::analysis::value::MetricValue as V;
        match v {
            V::Number(n) => V::Number(n),
            V::List(items) => V::List(items.into_iter().map(|i| self.value(i)).collect()),
            V::Json(j) => V::Json(self.json(j)),
        }
    }

    fn json(&self, j: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match j {
            J::String(s) => J::String(self.text(&s)),
            J::Array(items) => J::Array(items.into_iter().map(|i| self.json(i)).collect()),
            J::Object(map) => J::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// `application/x-www-form-urlencoded`, as a GET's query string carries a PromQL query.
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"*-._".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_taken_out() {
        let r = Redactor::new(["to ken\"/x".to_string()]);
        for shown in [
            "GET http://h/q?t=to%20ken%22%2Fx failed",
            "query=up%7Bt%3D%22to+ken%22%2Fx%22%7D",
            r#"condition "result == \"to ken\"/x\"" failed"#,
            "raw to ken\"/x here",
        ] {
            let out = r.text(shown);
            assert!(out.contains(REDACTED), "{shown} -> {out}");
            assert!(!out.contains("ken"), "{shown} -> {out}");
        }
        let mut m = Measurement {
            value: Some("{\"echo\":\"to ken\\\"/x\"}".into()),
            message: Some("x to ken\"/x".into()),
            ..Default::default()
        };
        r.measurement(&mut m);
        assert!(!format!("{m:?}").contains("ken"), "{m:?}");
        assert_eq!(Redactor::default().text("a"), "a");
        assert!(Redactor::new([String::new()]).is_empty());
    }
}
