//! A pod as fledge's pod cache keeps it: its metadata and whether it is ready, nothing else.
//!
//! The cache holds every pod of fledge's ReplicaSets, one or more per Rollout, and only two
//! readers look at them: a pending restart (names, creation times, deletion, readiness) and the
//! role-metadata check (labels, annotations, owner). k8s-openapi's `Pod` has room for every field
//! of the API inline (2,176 bytes with nothing set) and parsing it builds the whole spec; this
//! type parses the metadata and the `Ready` condition and skips the rest of the JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(from = "Wire")]
pub struct CachedPod {
    pub metadata: ObjectMeta,
    /// Condition `Ready` is True.
    pub ready: bool,
}

/// The parts of a pod's JSON that are read; serde skips the others unparsed.
#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<WireStatus>,
}

#[derive(Deserialize)]
struct WireStatus {
    #[serde(default)]
    conditions: Vec<WireCondition>,
}

#[derive(Deserialize)]
struct WireCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

impl From<Wire> for CachedPod {
    fn from(w: Wire) -> Self {
        let ready = w.status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        CachedPod {
            metadata: w.metadata,
            ready,
        }
    }
}

super::namespaced_v1!(CachedPod, "Pod", "", "pods");

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{Resource, ResourceExt};
    use serde_json::json;

    fn pod(conditions: serde_json::Value) -> CachedPod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]},
            "status": {"phase": "Running", "conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn keeps_the_metadata_and_readiness_only() {
        let p = pod(json!([
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:00Z"},
        ]));
        assert!(p.ready);
        assert_eq!(p.name_any(), "web-1");
        assert_eq!(p.labels().get("app").map(String::as_str), Some("web"));
        assert!(!pod(json!([{"type": "Ready", "status": "False"}])).ready);
        assert!(!pod(json!([])).ready);
        let bare: CachedPod = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(!bare.ready);
    }

    #[test]
    fn is_read_and_watched_as_a_pod() {
        assert_eq!(
            CachedPod::url_path(&(), Some("ns")),
            "/api/v1/namespaces/ns/pods"
        );
        assert_eq!(CachedPod::api_version(&()), "v1");
    }
}
