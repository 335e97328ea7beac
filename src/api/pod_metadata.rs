//! Labels and annotations that follow a role (stable, canary, active, preview) rather than a
//! revision: Argo Rollouts' `canaryMetadata`/`stableMetadata` and `activeMetadata`/`previewMetadata`.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Annotation on a ReplicaSet: the role metadata (JSON) fledge last put on its pod template and
/// pods, so that what a role change must take off again is known without guessing.
pub const ROLE_METADATA_ANNOTATION: &str = "fledge.dev/role-metadata";

/// Labels and annotations put on the pods of one role while their revision holds it: on the
/// ReplicaSet's pod template (new pods) and, in place, on the pods that exist. When the revision
/// changes role (a promotion makes the canary the stable), they are replaced by the new role's.
/// The pod-template hash does not change, so pods are not recreated.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.labels) || !('rollouts-pod-template-hash' in self.labels)").message("role metadata must not set the rollouts-pod-template-hash label"))]
pub struct PodMetadata {
    /// Labels added to the pods. They must not change the labels the Rollout's selector matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "bounded_map")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "bounded_map")]
    pub annotations: BTreeMap<String, String>,
}

impl PodMetadata {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// A bound keeps CEL's cost estimate of the rule above within what the API server accepts.
fn bounded_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string"},
    })
}
