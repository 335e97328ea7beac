//! `kubectl fledge lint FILE|-`: offline checks of fledge manifests with the rules the cluster
//! applies: the CRD's schema and CEL rules (evaluated client-side by kube), then the controller's
//! own spec checks ([`crate::rollout::spec_checks`]). Every problem names its field path.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::manifest::Document;
use crate::api::Rollout;

/// How bad a finding is: errors fail `lint` (exit 1), warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Field path from the object's root, like `spec.strategy.canary.steps[1].pause.duration`.
    pub path: String,
    pub message: String,
}

impl Finding {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What lint found in one document.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub title: String,
    /// False for objects lint does not know (a Service, a Deployment): they are skipped.
    pub checked: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

pub const FLEDGE: &str = "fledge.dev/v1alpha1";

/// Lints every document of a stream, and each Rollout's gates against the templates beside it.
pub fn lint(documents: &[Document]) -> Vec<Report> {
    documents
        .iter()
        .map(|doc| {
            let mut report = lint_document(doc);
            if doc.api_version() == FLEDGE
                && doc.kind() == "Rollout"
                && report.errors() == 0
                && let Ok(rollout) = serde_json::from_value::<Rollout>(doc.value.clone())
            {
                let gates = super::lint_gates::endless_gates(&rollout, documents);
                report.findings.extend(gates);
            }
            report
        })
        .collect()
}

/// Lints one document, by its kind.
pub fn lint_document(doc: &Document) -> Report {
    let (api_version, kind) = (doc.api_version(), doc.kind());
    let mut checked = true;
    let findings = match (api_version, kind) {
        (FLEDGE, "Rollout") => rollout(&doc.value),
        (FLEDGE, "AnalysisTemplate" | "ClusterAnalysisTemplate") => {
            let crd = if kind == "AnalysisTemplate" {
                crate::api::AnalysisTemplate::crd()
            } else {
                crate::api::ClusterAnalysisTemplate::crd()
            };
            let mut findings = crd_findings(&crd, &doc.value);
            for f in super::lint_analysis::template(&doc.value) {
                // The schema may have said it already.
                if !findings.iter().any(|g| g.path == f.path) {
                    findings.push(f);
                }
            }
            findings
        }
        (FLEDGE, "NotificationChannel") => {
            crd_findings(&crate::api::NotificationChannel::crd(), &doc.value)
        }
        (FLEDGE, "ClusterNotificationChannel") => {
            crd_findings(&crate::api::ClusterNotificationChannel::crd(), &doc.value)
        }
        // Made by the controller, not written by people.
        (FLEDGE, "AnalysisRun") => {
            checked = false;
            Vec::new()
        }
        (v, k) if v.starts_with("fledge.dev/") => match k {
            "Rollout" | "AnalysisTemplate" | "ClusterAnalysisTemplate" | "AnalysisRun" => {
                vec![Finding::error(
                    "apiVersion",
                    format!("{v:?} is not served: use {FLEDGE}"),
                )]
            }
            "" => vec![Finding::error("kind", "required field is missing")],
            _ => vec![Finding::error(
                "kind",
                format!(
                    "{k:?} is not a fledge kind: {FLEDGE} serves Rollout, AnalysisTemplate, \
                     ClusterAnalysisTemplate and AnalysisRun"
                ),
            )],
        },
        // Argo Rollouts or Flagger; other argoproj.io objects (an Argo CD Application) are
        // skipped like any object that is not fledge's.
        (v, k) if super::convert::converts(v, k) => vec![Finding::error(
            "apiVersion",
            format!("{v} {k} is not a fledge object: `kubectl fledge convert` converts it"),
        )],
        // Nothing to check, and nothing to convert: say why, once.
        (v, k) if super::convert::reads(v, k) => {
            checked = false;
            vec![Finding::warning("", super::convert::not_run(v, k))]
        }
        ("", _) | (_, "") => vec![Finding::error(
            if api_version.is_empty() {
                "apiVersion"
            } else {
                "kind"
            },
            "required field is missing",
        )],
        _ => {
            checked = false;
            Vec::new()
        }
    };
    Report {
        title: doc.title(),
        checked,
        findings,
    }
}

/// A Rollout: metadata, the CRD's schema and CEL rules, then the controller's spec checks.
fn rollout(value: &Value) -> Vec<Finding> {
    let mut out = metadata(value);
    let admission = crd_findings(&Rollout::crd(), value);
    let admitted = admission.is_empty();
    out.extend(admission);
    // The controller's checks need the typed object; when admission already found type errors
    // it may not deserialize, and those errors say what to fix first.
    match serde_json::from_value::<Rollout>(value.clone()) {
        Ok(r) => {
            for p in crate::rollout::spec_checks::problems(&r.spec) {
                let path = format!("spec.{}", p.path);
                // The schema's pattern may have said it already.
                if !out.iter().any(|f| f.path == path) {
                    out.push(Finding::error(path, p.message));
                }
            }
        }
        Err(e) if admitted => out.push(Finding::error("spec", e.to_string())),
        Err(_) => {}
    }
    out
}

/// `metadata.name` is what kubectl needs to apply an object.
fn metadata(value: &Value) -> Vec<Finding> {
    match value["metadata"]["name"].as_str() {
        None => vec![Finding::error("metadata.name", "required field is missing")],
        Some(name) if !is_dns_subdomain(name) => vec![Finding::error(
            "metadata.name",
            format!(
                "{name:?} must be lower-case letters, digits, '-' and '.', at most 253 characters"
            ),
        )],
        Some(_) => Vec::new(),
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// What admission would say about `value` given `crd`: the structural schema checks, then the
/// CEL validation rules evaluated client-side by kube (the same rules the API server runs).
pub fn crd_findings(crd: &CustomResourceDefinition, value: &Value) -> Vec<Finding> {
    let Some(schema) = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
    else {
        return Vec::new();
    };
    // Every object has these, whether or not the CRD's schema spells them out.
    let Some(schema) = with_object_meta(schema) else {
        return Vec::new();
    };
    // The status is the controller's; a manifest's status is ignored on create.
    let mut object = value.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    let mut found = Vec::new();
    super::schema_check::check(&schema, &object, "", &mut found);
    let mut out: Vec<Finding> = found
        .into_iter()
        .map(|(path, message)| Finding::error(path, message))
        .collect();
    let ill_typed = !out.is_empty();
    if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, &object, None) {
        for e in errors.iter() {
            // A rule that could not even run over an ill-typed field would only repeat the
            // schema's complaint less clearly.
            if ill_typed && e.kind != kube::core::cel::ErrorKind::ValidationFailure {
                continue;
            }
            let path = e.field_path.trim_start_matches('.').to_string();
            // Rule messages name their field themselves; say it once.
            let message = e
                .message
                .strip_prefix(&format!("{path}: "))
                .unwrap_or(&e.message)
                .to_string();
            out.push(Finding::error(path, message));
        }
    }
    out
}

fn with_object_meta(mut schema: Value) -> Option<Value> {
    let props = schema.get_mut("properties")?.as_object_mut()?;
    for (key, s) in [
        ("apiVersion", serde_json::json!({"type": "string"})),
        ("kind", serde_json::json!({"type": "string"})),
        (
            "metadata",
            serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        ),
    ] {
        props.entry(key).or_insert(s);
    }
    Some(schema)
}

/// The text `lint` prints for `reports` of `source`, and its exit code.
pub fn render(source: &str, reports: &[Report]) -> (String, u8) {
    let mut text = String::new();
    let (mut errors, mut warnings) = (0, 0);
    for r in reports {
        for f in &r.findings {
            let level = match f.severity {
                Severity::Error => {
                    errors += 1;
                    "error"
                }
                Severity::Warning => {
                    warnings += 1;
                    "warning"
                }
            };
            let _ = if f.path.is_empty() {
                writeln!(text, "{source}: {}: {level}: {}", r.title, f.message)
            } else {
                writeln!(
                    text,
                    "{source}: {}: {level}: {}: {}",
                    r.title, f.path, f.message
                )
            };
        }
    }
    let checked = reports.iter().filter(|r| r.checked).count();
    let skipped: Vec<&str> = reports
        .iter()
        .filter(|r| !r.checked)
        .map(|r| r.title.as_str())
        .collect();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = write!(
        text,
        "{source}: {} checked, {}, {}",
        plural(checked, "object"),
        plural(errors, "error"),
        plural(warnings, "warning"),
    );
    if !skipped.is_empty() {
        let _ = write!(text, " (skipped: {})", skipped.join(", "));
    }
    text.push('\n');
    // An empty input is a mistake (a wrong path, an empty pipe); a file of Services or of Argo CD
    // and Flux objects only is not: there is nothing of fledge's in it to be wrong.
    let code = if errors > 0 || reports.is_empty() {
        super::exit::FAILED
    } else {
        super::exit::OK
    };
    if checked == 0 && errors == 0 {
        let not_run: Vec<&str> = reports
            .iter()
            .filter(|r| r.findings.iter().any(|f| f.severity == Severity::Warning))
            .map(|r| r.title.as_str())
            .collect();
        if !not_run.is_empty() && not_run.len() == reports.len() {
            text.push_str(&format!(
                "{source}: holds only kinds fledge does not run ({}): nothing to check\n",
                not_run.join(", ")
            ));
        } else {
            text.push_str(&format!(
                "{source}: no Rollout, AnalysisTemplate or ClusterAnalysisTemplate found\n"
            ));
        }
    }
    (text, code)
}
