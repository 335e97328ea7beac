//! EndpointSlices, read because gateways and meshes route by them: a ReplicaSet counts a pod
//! available as soon as it is Ready, but the EndpointSlice controller lists it a moment later (or
//! a batch period later, on clusters that set one), and until then the gateway has no address for
//! it. Weight moved in that window meets a Service with no endpoint and fails requests.

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::Value;

/// The label the EndpointSlice controller puts on each slice: the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service `slice` belongs to.
pub fn service_of(slice: &DynamicObject) -> Option<&str> {
    slice.labels().get(SERVICE_NAME_LABEL).map(String::as_str)
}

/// Drops all but what [`ready_pods`] and [`service_of`] read, before the slice is cached: a slice
/// holds up to a hundred endpoints with addresses, zones, hints and node names.
pub fn slim(slice: &mut DynamicObject) {
    let service = service_of(slice).map(str::to_string);
    slice.metadata.labels = service.map(|s| [(SERVICE_NAME_LABEL.to_string(), s)].into());
    slice.metadata.annotations = None;
    slice.metadata.managed_fields = None;
    slice.metadata.owner_references = None;
    let endpoints: Vec<Value> = slice.data["endpoints"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    serde_json::json!({
                        "conditions": {"ready": e["conditions"]["ready"].clone()},
                        "targetRef": {"name": e["targetRef"]["name"].clone()},
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    slice.data = serde_json::json!({ "endpoints": endpoints });
}

/// The names of the pods `slice` lists as ready. A missing `ready` (unknown, says the API) counts
/// as not ready: Traefik skips such endpoints, and the EndpointSlice controller always sets it.
pub fn ready_pods(slice: &DynamicObject) -> impl Iterator<Item = String> + '_ {
    slice.data["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["ready"] == Value::Bool(true))
        .filter_map(|e| e["targetRef"]["name"].as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice() -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-canary-x7k2p",
                "namespace": "shop",
                "labels": {
                    SERVICE_NAME_LABEL: "web-canary",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web-canary", "uid": "u"}],
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.1.0.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
                 "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-6f9c-abcde", "namespace": "shop"}},
                {"addresses": ["10.1.0.6"], "conditions": {"ready": false, "serving": false, "terminating": false},
                 "targetRef": {"kind": "Pod", "name": "web-6f9c-fghij", "namespace": "shop"}},
                {"addresses": ["10.1.0.7"], "conditions": {},
                 "targetRef": {"kind": "Pod", "name": "web-6f9c-klmno", "namespace": "shop"}},
                {"addresses": ["10.1.0.8"], "conditions": {"ready": true}},
            ],
        }))
        .unwrap()
    }

    #[test]
    fn only_pods_listed_ready_count() {
        let s = slice();
        assert_eq!(service_of(&s), Some("web-canary"));
        assert_eq!(ready_pods(&s).collect::<Vec<_>>(), vec!["web-6f9c-abcde"]);
    }

    #[test]
    fn a_slimmed_slice_reads_the_same() {
        let mut s = slice();
        slim(&mut s);
        assert_eq!(service_of(&s), Some("web-canary"));
        assert_eq!(ready_pods(&s).collect::<Vec<_>>(), vec!["web-6f9c-abcde"]);
        assert!(s.data.get("ports").is_none());
        assert!(s.metadata.owner_references.is_none());
    }

    #[test]
    fn a_slice_without_endpoints_lists_no_pod() {
        let mut s = slice();
        s.data = serde_json::json!({"addressType": "IPv4"});
        assert_eq!(ready_pods(&s).count(), 0);
        slim(&mut s);
        assert_eq!(ready_pods(&s).count(), 0);
    }
}
