//! `kubectl fledge convert FILE|-`: Argo Rollouts (`Rollout`, `AnalysisTemplate`,
//! `ClusterAnalysisTemplate`) and Flagger (`Canary`, `MetricTemplate`) manifests into fledge
//! objects. Whatever does not map is named in a comment on the object it belongs to; where a gate
//! cannot be kept (an analysis this build cannot run), it becomes a manual pause, never nothing.
//! The output passes `kubectl fledge lint`.

mod argo;
pub mod expr;
pub mod flagger;
mod flagger_webhooks;
mod providers;

use std::fmt::Write;
use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::manifest::Document;
use crate::api::Rollout;

pub const API_VERSION: &str = "fledge.dev/v1alpha1";

/// One converted object and what of its source did not map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Converted {
    /// Where it came from, like `argoproj.io/v1alpha1 Rollout "web"`.
    pub source: String,
    /// The fledge object; None when nothing of the source could be converted.
    pub object: Option<Value>,
    /// One line per thing that did not map, with its field path in the source.
    pub notes: Vec<String>,
}

impl Converted {
    fn new(doc: &Document) -> Self {
        Converted {
            source: format!("{} {}", doc.api_version(), doc.title()),
            ..Default::default()
        }
    }

    fn note(&mut self, path: &str, message: impl AsRef<str>) {
        self.notes.push(format!("{path}: {}", message.as_ref()));
    }
}

/// Argo Rollouts' kinds. Its group, argoproj.io, is also Argo CD's (Application, AppProject,
/// ApplicationSet), Argo Workflows' and Argo Events': those are not Rollout objects.
const ARGO_ROLLOUTS_KINDS: [&str; 5] = [
    "Rollout",
    "AnalysisTemplate",
    "ClusterAnalysisTemplate",
    "AnalysisRun",
    "Experiment",
];

/// Whether an object is Argo Rollouts' or Flagger's: what `convert` reads (and converts, or names
/// as having no fledge equivalent). Anything else passes through it unchanged.
pub fn reads(api_version: &str, kind: &str) -> bool {
    match api_version.split('/').next().unwrap_or_default() {
        "argoproj.io" => ARGO_ROLLOUTS_KINDS.contains(&kind),
        "flagger.app" => true,
        _ => false,
    }
}

/// The kinds `convert` turns into fledge objects; other kinds it [`reads`] have no equivalent.
pub fn converts(api_version: &str, kind: &str) -> bool {
    let group = api_version.split('/').next().unwrap_or_default();
    matches!(
        (group, kind),
        (
            "argoproj.io",
            "Rollout" | "AnalysisTemplate" | "ClusterAnalysisTemplate"
        ) | ("flagger.app", "Canary" | "MetricTemplate")
    )
}

/// Why fledge has no equivalent of a kind `convert` reads but does not convert: one line.
pub fn not_run(api_version: &str, kind: &str) -> String {
    let group = api_version.split('/').next().unwrap_or_default();
    match (group, kind) {
        ("argoproj.io", "Experiment") => "Argo Rollouts Experiment: fledge does not run \
            Experiments (ReplicaSets side by side for a fixed time); run the candidate as a canary \
            Rollout with an analysis step instead"
            .into(),
        ("argoproj.io", "AnalysisRun") => "Argo Rollouts AnalysisRun: fledge does not run \
            AnalysisRuns from manifests, a Rollout creates them from its templates; convert the \
            AnalysisTemplate and name it in a step"
            .into(),
        (_, kind) => format!("{kind} has no fledge equivalent"),
    }
}

/// Converts every document it knows; other objects (Services, Deployments, an Argo CD
/// Application, ...) pass through unchanged so a whole application file converts in one go.
pub fn convert(documents: &[Document]) -> Result<String, String> {
    let mut out = Vec::new();
    let mut known = 0;
    for doc in documents {
        let group = doc.api_version().split('/').next().unwrap_or_default();
        if !reads(doc.api_version(), doc.kind()) {
            out.push(Converted {
                source: String::new(),
                object: Some(doc.value.clone()),
                notes: Vec::new(),
            });
            continue;
        }
        let converted = match (group, doc.kind()) {
            ("argoproj.io", "Rollout") => argo::rollout(doc),
            ("argoproj.io", "AnalysisTemplate" | "ClusterAnalysisTemplate") => {
                vec![argo::analysis_template(doc)]
            }
            ("flagger.app", "Canary") => flagger::canary(doc, documents),
            ("flagger.app", "MetricTemplate") => vec![flagger::metric_template(doc)],
            (_, kind) => vec![Converted {
                source: format!("{} {}", doc.api_version(), doc.title()),
                object: None,
                notes: vec![not_run(doc.api_version(), kind)],
            }],
        };
        known += 1;
        out.extend(converted);
    }
    if known == 0 {
        return Err(
            "nothing to convert: no Argo Rollouts (argoproj.io) or Flagger (flagger.app) object in the input"
                .into(),
        );
    }
    render(&out)
}

/// The YAML stream, each object with its comments above it.
pub fn render(objects: &[Converted]) -> Result<String, String> {
    let mut text = String::new();
    for c in objects {
        text.push_str("---\n");
        if !c.source.is_empty() {
            match &c.object {
                Some(o) => {
                    let _ = writeln!(
                        text,
                        "# {} {:?}, converted from {}.",
                        o["kind"].as_str().unwrap_or_default(),
                        o["metadata"]["name"].as_str().unwrap_or_default(),
                        c.source
                    );
                }
                None => {
                    let _ = writeln!(text, "# {} was not converted.", c.source);
                }
            }
        }
        if !c.notes.is_empty() {
            text.push_str("# Did not map as is:\n");
            for n in &c.notes {
                for (i, line) in n.lines().enumerate() {
                    let _ = writeln!(text, "#{} {line}", if i == 0 { " -" } else { "  " });
                }
            }
        }
        if let Some(o) = &c.object {
            text.push_str(&serde_yaml::to_string(o).map_err(|e| e.to_string())?);
        }
    }
    Ok(text)
}

/// True when this build's Rollout schema has the field at `path` (from `spec`), so conversions
/// of routing and analysis follow what the CRD accepts.
pub fn rollout_supports(path: &[&str]) -> bool {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        Rollout::crd()
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    });
    let mut node = &schema["properties"]["spec"];
    for key in path {
        if node["type"] == "array" {
            node = &node["items"];
        }
        node = &node["properties"][*key];
        if node.is_null() {
            return false;
        }
    }
    true
}

/// The metadata a converted object keeps: name, namespace, labels and annotations, without the
/// source controller's bookkeeping.
pub fn metadata(source: &Value, cluster_scoped: bool) -> Value {
    let m = &source["metadata"];
    let mut out = json!({"name": m["name"]});
    if !cluster_scoped && m["namespace"].is_string() {
        out["namespace"] = m["namespace"].clone();
    }
    if let Some(labels) = m["labels"].as_object().filter(|l| !l.is_empty()) {
        out["labels"] = Value::Object(labels.clone());
    }
    let annotations: serde_json::Map<String, Value> = m["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            !k.starts_with("rollout.argoproj.io/")
                && !k.starts_with("flagger.app/")
                && *k != "kubectl.kubernetes.io/last-applied-configuration"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !annotations.is_empty() {
        out["annotations"] = Value::Object(annotations);
    }
    out
}

/// A Go duration (`1m30s`, `1.5h`, `500ms`) or a number of seconds, in fledge's form (`1m30s`).
/// The bool says it was exact; fledge counts whole seconds, so a fraction is rounded up.
pub fn duration(value: &Value) -> Option<(String, bool)> {
    let nanos: u128 = match value {
        Value::Number(n) => u128::from(n.as_u64()?) * 1_000_000_000,
        Value::String(s) => go_duration_nanos(s)?,
        _ => return None,
    };
    let secs = nanos.div_ceil(1_000_000_000);
    let exact = nanos.is_multiple_of(1_000_000_000);
    let secs = u64::try_from(secs).ok()?;
    Some((
        super::timeline::human(std::time::Duration::from_secs(secs)),
        exact,
    ))
}

fn go_duration_nanos(s: &str) -> Option<u128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(total.round() as u128)
}

/// Copies the listed fields of `from` into `to` when present.
fn copy(from: &Value, to: &mut Value, fields: &[&str]) {
    for f in fields {
        if let Some(v) = from.get(*f).filter(|v| !v.is_null()) {
            to[*f] = v.clone();
        }
    }
}

/// Notes every field of `from` not in `known`, as `path.field: <why>`.
fn note_unknown(c: &mut Converted, from: &Value, path: &str, known: &[&str], why: &str) {
    for key in from.as_object().into_iter().flat_map(|m| m.keys()) {
        if !known.contains(&key.as_str()) {
            c.note(&format!("{path}.{key}"), why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_seconds_become_fledge_durations() {
        let d = |v: Value| duration(&v);
        assert_eq!(d(json!(40)), Some(("40s".into(), true)));
        assert_eq!(d(json!("1m30s")), Some(("1m30s".into(), true)));
        assert_eq!(d(json!("1.5h")), Some(("1h30m".into(), true)));
        assert_eq!(d(json!("1500ms")), Some(("2s".into(), false)));
        assert_eq!(d(json!("0")), Some(("0s".into(), true)));
        assert_eq!(d(json!("1d")), None);
        assert_eq!(d(json!(true)), None);
    }

    #[test]
    fn flagger_query_variables_become_arguments() {
        let (q, args) = flagger::query_to_args(
            "rate(x{ns=\"{{ namespace }}\", d=\"{{variables.direction}}\"}[{{ interval }}]) {{ namespace }}",
        );
        assert_eq!(
            q,
            "rate(x{ns=\"{{args.namespace}}\", d=\"{{args.direction}}\"}[{{args.interval}}]) {{args.namespace}}"
        );
        assert_eq!(args, ["namespace", "direction", "interval"]);
    }

    #[test]
    fn schema_support_follows_the_rollout_crd() {
        assert!(rollout_supports(&[
            "strategy",
            "canary",
            "steps",
            "setWeight"
        ]));
        assert!(rollout_supports(&["restartAt"]));
        assert!(!rollout_supports(&["strategy", "canary", "noSuchField"]));
    }
}
