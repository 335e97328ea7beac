//! Lint across objects: a gate (a canary step's analysis, a blue-green pre- or post-promotion
//! analysis) whose run can never be Successful, so the rollout waits there for a person. Offline,
//! only the templates in the same input are known; a template found elsewhere is not judged.

use super::lint::{FLEDGE, Finding};
use super::manifest::Document;
use crate::analysis::run::endless_metrics;
use crate::api::Rollout;
use crate::api::analysis::AnalysisTemplateSpec;

/// Warnings for the gates of `rollout` that wait on a template of `documents` with endless
/// metrics.
pub fn endless_gates(rollout: &Rollout, documents: &[Document]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (field, request) in crate::rollout::gates::references(rollout) {
        // Background analysis runs until the rollout ends: endless metrics are its normal case.
        if field == "strategy.canary.analysis" {
            continue;
        }
        for t in request.templates {
            let kind = if t.cluster_scope == Some(true) {
                "ClusterAnalysisTemplate"
            } else {
                "AnalysisTemplate"
            };
            // A namespaced template serves Rollouts of its own namespace only.
            let namespace = if kind == "AnalysisTemplate" {
                rollout.metadata.namespace.as_deref()
            } else {
                None
            };
            let Some(spec) = template(documents, kind, &t.template_name, namespace) else {
                continue;
            };
            let dry_run: Vec<_> = request
                .dry_run
                .iter()
                .chain(&spec.dry_run)
                .cloned()
                .collect();
            for metric in endless_metrics(&spec.metrics, &dry_run) {
                out.push(Finding::warning(
                    format!("spec.{field}"),
                    format!(
                        "{kind} {:?}: metric {metric:?} measures until its run is stopped (an \
                         interval with no count, or count 0), so the run can fail but never succeed and the rollout waits \
                         here for a promote; give the metric a count or a \
                         consecutiveSuccessLimit, or use it as background analysis",
                        t.template_name
                    ),
                ));
            }
        }
    }
    out
}

fn template(
    documents: &[Document],
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Option<AnalysisTemplateSpec> {
    let doc = documents.iter().find(|d| {
        d.api_version() == FLEDGE
            && d.kind() == kind
            && d.name() == name
            && d.value["metadata"]["namespace"].as_str() == namespace
    })?;
    serde_json::from_value(doc.value.get("spec")?.clone()).ok()
}
