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

    /// `self` plus, valued empty, the keys of `roles` it does not set: as the `previous` of a
    /// write, it also takes those keys off pods that carry them.
    pub fn with_keys_of<'a>(&self, roles: impl IntoIterator<Item = &'a PodMetadata>) -> Self {
        let mut out = self.clone();
        for role in roles {
            for key in role.labels.keys() {
                out.labels.entry(key.clone()).or_default();
            }
            for key in role.annotations.keys() {
                out.annotations.entry(key.clone()).or_default();
            }
        }
        out
    }

    /// Whether a pod with `labels` and `annotations` is not as this record (the role metadata of
    /// its ReplicaSet) wants: it lacks one of its entries, or carries a key of one of `roles` that
    /// the record does not set. The latter is a pod created from a template read before a role
    /// was taken off; only looking for missing entries would leave it the old role's label for
    /// good. No role key is also a template key (spec checks), so such a key is always stray.
    pub fn out_of_role<'a>(
        &self,
        roles: impl IntoIterator<Item = &'a PodMetadata> + Clone,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> bool {
        let lacks = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
            want.iter().any(|(k, v)| have.get(k) != Some(v))
        };
        let stray = |pick: fn(&PodMetadata) -> &BTreeMap<String, String>,
                     have: &BTreeMap<String, String>| {
            roles.clone().into_iter().any(|role| {
                pick(role)
                    .keys()
                    .any(|k| !pick(self).contains_key(k) && have.contains_key(k))
            })
        };
        lacks(&self.labels, labels)
            || lacks(&self.annotations, annotations)
            || stray(|m| &m.labels, labels)
            || stray(|m| &m.annotations, annotations)
    }
}

/// A strategy's role metadata: that of the stable (canary) or active (blue-green) revision, and
/// that of the new revision until it is promoted.
pub fn roles(strategy: &super::Strategy) -> (Option<&PodMetadata>, Option<&PodMetadata>) {
    match (&strategy.canary, &strategy.blue_green) {
        (Some(c), _) => (c.stable_metadata.as_ref(), c.canary_metadata.as_ref()),
        (None, Some(b)) => (b.active_metadata.as_ref(), b.preview_metadata.as_ref()),
        (None, None) => (None, None),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> PodMetadata {
        PodMetadata {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn a_pod_is_out_of_role_when_it_lacks_the_record_or_keeps_another_role_key() {
        let canary = labels(&[("track", "canary")]);
        let stable = PodMetadata::default();
        let none = BTreeMap::new();
        let pod = |m: &PodMetadata| m.labels.clone();
        // The stable's record is empty; a pod still carrying the canary's label is stray.
        assert!(stable.out_of_role([&canary], &pod(&canary), &none));
        assert!(!stable.out_of_role([&canary], &pod(&stable), &none));
        assert!(canary.out_of_role([&canary], &pod(&stable), &none));
        assert!(!canary.out_of_role([&canary], &pod(&canary), &none));
        // Labels the template or someone else sets are not role keys: left alone.
        assert!(!stable.out_of_role([&canary], &pod(&labels(&[("app", "web")])), &none));
    }
}
