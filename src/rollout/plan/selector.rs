//! The pods' selector: the Rollout's own, or, for a Rollout with `workloadRef` that sets none,
//! the referenced Deployment's (as Argo Rollouts resolves it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::Rollout;
use crate::rollout::observe::Observed;

/// The selector fledge's ReplicaSets get (with the revision hash added), or the message of the
/// `InvalidSpec` condition when there is none to use.
pub(super) fn effective(rollout: &Rollout, observed: &Observed) -> Result<LabelSelector, String> {
    if let Some(own) = &rollout.spec.selector {
        // Admission checks an own template against the selector; a Deployment's only here.
        if let (Some(w), Ok(template)) = (&rollout.spec.workload_ref, &observed.template) {
            let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
            let matches = own
                .match_labels
                .iter()
                .flatten()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                return Err(format!(
                    "spec.selector.matchLabels: must match the pod template labels of                      workloadRef Deployment {:?}",
                    w.name
                ));
            }
        }
        return Ok(own.clone());
    }
    let Some(w) = &rollout.spec.workload_ref else {
        // Admission refuses this; a Rollout stored before the rule still gets a clear answer.
        return Err("spec.selector: required with template".into());
    };
    let ns = rollout.metadata.namespace.as_deref().unwrap_or_default();
    match &observed.workload_selector {
        Some(s) if !is_empty(s) => Ok(s.clone()),
        // A Deployment without a selector never passes the API server's validation; a cache
        // holding one is not trusted to select the pods.
        Some(_) => Err(format!(
            "spec.selector: not set, and workloadRef Deployment {:?} has no selector to use",
            w.name
        )),
        None => Err(format!(
            "spec.selector: not set, and workloadRef Deployment {:?} (whose selector would be \
             used) not found in namespace {ns:?}",
            w.name
        )),
    }
}

/// A selector that selects nothing in particular: every pod.
fn is_empty(s: &LabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}
