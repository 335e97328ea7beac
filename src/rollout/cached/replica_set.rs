//! A ReplicaSet as fledge's cache keeps it: the fields a plan reads, and the pod template as
//! the JSON it came in.
//!
//! A plan reads a ReplicaSet's labels, annotations, replicas and status; the template only
//! matters when fledge writes the ReplicaSet again, because a server-side apply carries every
//! field fledge owns (`act.rs`). k8s-openapi's `ReplicaSet` has room for every field of the API
//! inline (2,288 bytes with nothing set) and a parsed template is the largest part of its heap:
//! a small ReplicaSet took 8.1 KiB cached that way. Here its template is kept as compact JSON
//! (about 0.5 KiB for one container) and parsed again only for a write.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Deserializer};

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct CachedReplicaSet {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Spec,
    #[serde(default)]
    pub status: Status,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pod template, as compact JSON.
    #[serde(default, deserialize_with = "compact")]
    template: Option<Box<str>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub replicas: i32,
    pub ready_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
}

/// The JSON of a value, without its spaces. Read through `Value` rather than borrowed raw: a
/// watch event's object may reach this through serde's buffered content, which has no raw text.
fn compact<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<str>>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.map(|v| v.to_string().into_boxed_str()))
}

impl CachedReplicaSet {
    /// The pod template, parsed. None when it has none or it does not parse (the API server
    /// sent it, so neither happens outside tests).
    pub fn template(&self) -> Option<PodTemplateSpec> {
        serde_json::from_str(self.spec.template.as_deref()?).ok()
    }
}

super::namespaced_v1!(CachedReplicaSet, "ReplicaSet", "apps", "replicasets");

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use serde_json::json;

    fn wire() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "minReadySeconds": 5,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1", "ports": [{"containerPort": 80}]}]},
                },
            },
            "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 3},
        })
    }

    #[test]
    fn keeps_what_a_plan_reads_and_the_template_as_sent() {
        let rs: CachedReplicaSet = serde_json::from_value(wire()).unwrap();
        assert_eq!(rs.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(rs.spec.replicas, Some(2));
        assert_eq!(
            rs.spec
                .selector
                .match_labels
                .as_ref()
                .and_then(|l| l.get("app")),
            Some(&"web".to_string())
        );
        assert_eq!(
            (
                rs.status.replicas,
                rs.status.ready_replicas,
                rs.status.available_replicas
            ),
            (2, Some(1), Some(1))
        );
        let full: ReplicaSet = serde_json::from_value(wire()).unwrap();
        assert_eq!(rs.template(), full.spec.unwrap().template);
    }

    #[test]
    fn reads_a_replica_set_without_spec_or_status() {
        let rs: CachedReplicaSet =
            serde_json::from_value(json!({"metadata": {"name": "web-1"}})).unwrap();
        assert_eq!(rs.spec, Spec::default());
        assert_eq!(rs.template(), None);
        assert_eq!(rs.status.replicas, 0);
    }

    #[test]
    fn is_read_and_watched_as_a_replica_set() {
        use kube::Resource;
        assert_eq!(
            CachedReplicaSet::url_path(&(), Some("ns")),
            "/apis/apps/v1/namespaces/ns/replicasets"
        );
    }

    /// kube reads watch events as `{"type": ..., "object": ...}` into an adjacently tagged enum,
    /// which serde may buffer before the object is read.
    #[test]
    fn reads_from_a_watch_event() {
        let line = json!({"type": "ADDED", "object": wire()}).to_string();
        let event: kube::core::WatchEvent<CachedReplicaSet> = serde_json::from_str(&line).unwrap();
        let kube::core::WatchEvent::Added(rs) = event else {
            panic!("an Added event")
        };
        assert!(rs.template().is_some());
        let reordered = format!(
            r#"{{"object": {}, "type": "MODIFIED"}}"#,
            serde_json::to_string(&wire()).unwrap()
        );
        let event: kube::core::WatchEvent<CachedReplicaSet> =
            serde_json::from_str(&reordered).unwrap();
        assert!(matches!(event, kube::core::WatchEvent::Modified(rs) if rs.template().is_some()));
    }
}
