//! Custom resource types. No I/O here: these are the shapes users write and the controller reports.

pub mod analysis;
pub mod anti_affinity;
pub mod conditions;
pub mod defaults;
pub mod duration;
pub mod gates;
pub mod int_or_arg;
pub mod mirror_match;
pub mod notification;
pub mod pod_metadata;
pub mod problem;
pub mod providers;
pub mod rollout;
pub mod scaled;
pub mod scope;

pub use analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
pub use anti_affinity::AntiAffinity;
pub use mirror_match::{MirrorMatch, StringMatch};
pub use notification::{ClusterNotificationChannel, NotificationChannel};
pub use pod_metadata::PodMetadata;
pub use problem::SpecProblem;
pub use rollout::*;
pub use scaled::{Limit, scaled_value};
pub use scope::Scope;

/// Label on every object fledge owns, naming the Rollout that owns it.
pub const ROLLOUT_LABEL: &str = "fledge.dev/rollout";
/// Label (the same key as Argo Rollouts) carrying a revision's pod-template hash, on ReplicaSets,
/// their pods and in the selectors of the stable/canary/active/preview Services.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Annotation on each ReplicaSet fledge creates: its revision number, one more than the highest
/// before it, for `kubectl fledge undo --to-revision`.
pub const REVISION_ANNOTATION: &str = "fledge.dev/revision";
/// Label selecting which controller instance handles a Rollout (`--instance-id`).
pub const INSTANCE_ID_LABEL: &str = "fledge.dev/instance-id";
/// Field manager for every server-side apply fledge does.
pub const FIELD_MANAGER: &str = "fledge";

/// Every CRD fledge serves, as one multi-document YAML stream: what `fledge crds` prints and
/// what `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let crds = [
        Rollout::crd(),
        AnalysisTemplate::crd(),
        ClusterAnalysisTemplate::crd(),
        AnalysisRun::crd(),
        NotificationChannel::crd(),
        ClusterNotificationChannel::crd(),
    ];
    let docs: Result<Vec<String>, _> = crds.iter().map(serde_yaml::to_string).collect();
    Ok(docs?.iter().map(|d| format!("---\n{d}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn crds_dir_is_up_to_date() {
        let generated = super::crds_yaml().expect("CRDs serialize");
        let committed = include_str!("../../crds/fledge.yaml");
        assert!(
            generated == committed,
            "crds/fledge.yaml is stale: run `make crds` (fledge crds > crds/fledge.yaml)"
        );
    }
}
