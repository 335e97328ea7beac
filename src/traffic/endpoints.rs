//! EndpointSlices, read because gateways and meshes route by them: a ReplicaSet counts a pod
//! available as soon as it is Ready, but the EndpointSlice controller lists it a moment later (or
//! a batch period later, on clusters that set one), and until then the gateway has no address for
//! it. Weight moved in that window meets a Service with no endpoint and fails requests.

use std::collections::{HashMap, HashSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
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

/// When each pod the cached slices list as ready was first seen listed, kept from the slices'
/// watch events since no field of a slice says so. The planner lets a pod carry weight only a
/// moment after that (see `ENDPOINT_SETTLE` in the planner's draft).
#[derive(Default)]
pub struct ListedSince {
    /// Per slice (namespace, name): its ready pods and when each was first seen listed; `None`
    /// for pods the first list of the watch already held.
    slices: HashMap<(String, String), HashMap<String, Option<Timestamp>>>,
    /// The slices a re-list has named so far; the others are gone once it is done.
    relisted: Option<HashSet<(String, String)>>,
    /// The first list is done: pods seen from now on are new.
    listed_once: bool,
}

impl ListedSince {
    /// Records one watch event, seen at `now`.
    pub fn record(&mut self, event: &Event<DynamicObject>, now: Timestamp) {
        match event {
            Event::Init => self.relisted = Some(HashSet::new()),
            Event::InitApply(slice) => {
                let since = self.listed_once.then_some(now);
                let key = self.update(slice, since);
                if let Some(seen) = &mut self.relisted {
                    seen.insert(key);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relisted.take() {
                    self.slices.retain(|k, _| seen.contains(k));
                }
                self.listed_once = true;
            }
            Event::Apply(slice) => {
                self.update(slice, Some(now));
            }
            Event::Delete(slice) => {
                self.slices.remove(&key_of(slice));
            }
        }
    }

    /// When pod `pod` was first seen listed as ready in slice `slice` (`None`: before the watch
    /// began, or not known).
    pub fn since(&self, slice: &DynamicObject, pod: &str) -> Option<Timestamp> {
        self.slices.get(&key_of(slice))?.get(pod).copied().flatten()
    }

    /// Keeps the times of pods still listed, and gives those newly listed `since`.
    fn update(&mut self, slice: &DynamicObject, since: Option<Timestamp>) -> (String, String) {
        let key = key_of(slice);
        let old = self.slices.remove(&key).unwrap_or_default();
        let pods = ready_pods(slice)
            .map(|p| {
                let t = old.get(&p).copied().unwrap_or(since);
                (p, t)
            })
            .collect();
        self.slices.insert(key.clone(), pods);
        key
    }
}

fn key_of(slice: &DynamicObject) -> (String, String) {
    (slice.namespace().unwrap_or_default(), slice.name_any())
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

    /// `slice()` listing `ready` pods as ready.
    fn listing(ready: &[&str]) -> DynamicObject {
        let mut s = slice();
        s.data["endpoints"] = ready
            .iter()
            .map(|p| serde_json::json!({"conditions": {"ready": true}, "targetRef": {"name": p}}))
            .collect();
        s
    }

    #[test]
    fn a_pod_is_listed_since_the_event_that_first_listed_it() {
        let (t0, t1, t2) = (
            Timestamp::from_second(100).unwrap(),
            Timestamp::from_second(101).unwrap(),
            Timestamp::from_second(102).unwrap(),
        );
        let mut l = ListedSince::default();
        l.record(&Event::Init, t0);
        l.record(&Event::InitApply(listing(&["a"])), t0);
        l.record(&Event::InitDone, t0);
        let a = listing(&["a"]);
        assert_eq!(l.since(&a, "a"), None, "listed before the watch began");
        l.record(&Event::Apply(listing(&["a", "b"])), t1);
        l.record(&Event::Apply(listing(&["a", "b"])), t2);
        assert_eq!(l.since(&a, "b"), Some(t1), "the first event that listed it");
        l.record(&Event::Apply(listing(&["a"])), t2);
        l.record(&Event::Apply(listing(&["a", "b"])), t2);
        assert_eq!(l.since(&a, "b"), Some(t2), "listed again after a gap");
        // A re-list (after the watch broke) keeps known pods and drops slices no longer there.
        l.record(&Event::Init, t2);
        l.record(&Event::InitApply(listing(&["a", "b", "c"])), t2);
        l.record(&Event::InitDone, t2);
        assert_eq!(l.since(&a, "b"), Some(t2));
        assert_eq!(l.since(&a, "c"), Some(t2), "new in a re-list: new");
        l.record(&Event::Init, t2);
        l.record(&Event::InitDone, t2);
        assert!(l.slices.is_empty());
        l.record(&Event::Apply(listing(&["a"])), t2);
        l.record(&Event::Delete(listing(&["a"])), t2);
        assert!(l.slices.is_empty());
    }
}
