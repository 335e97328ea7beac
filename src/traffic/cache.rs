//! Caches of the routing objects, one per kind, started the first time a Rollout needs that kind.
//!
//! Routing APIs are CRDs a cluster may not have (Istio, SMI, even Gateway API), so fledge does not
//! watch a kind until a Rollout names it, and a kind whose API is not served is checked again only
//! after a while: the Rollout gets an `InvalidSpec` saying which CRD is missing, and picks up by
//! itself once it is installed. A change of a cached object wakes the Rollouts that route through
//! it, so a gateway rejecting a route is seen at once, without polling.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::{Found, Kind, ObjectKey, endpoints};
use crate::api::Rollout;

/// How long a kind whose API is not served is left alone before it is checked again.
const RECHECK_AFTER: Duration = Duration::from_secs(30);
/// How long the first list of a new kind may take before reconciles go on without it.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

enum State {
    Ready(Store<DynamicObject>),
    Unavailable { message: String, since: Instant },
}

/// The routing-object caches of one controller.
#[derive(Clone)]
pub struct RouteCaches {
    client: Client,
    namespace: Option<String>,
    rollouts: Store<Rollout>,
    states: Arc<RwLock<HashMap<Kind, State>>>,
    /// Serializes starting caches: a kind is started once, and kube's `Store::wait_until_ready`
    /// keeps a single waker.
    starting: Arc<tokio::sync::Mutex<()>>,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Rollout>>,
    /// When the cached EndpointSlices first listed each ready pod.
    listed: Arc<std::sync::Mutex<endpoints::ListedSince>>,
}

impl RouteCaches {
    /// The caches, and the stream of Rollouts to reconcile when a routing object changes.
    pub fn new(
        client: Client,
        namespace: Option<String>,
        rollouts: Store<Rollout>,
    ) -> (
        Self,
        futures::channel::mpsc::UnboundedReceiver<ObjectRef<Rollout>>,
    ) {
        let (wake, rx) = futures::channel::mpsc::unbounded();
        (
            RouteCaches {
                client,
                namespace,
                rollouts,
                states: Arc::default(),
                starting: Arc::default(),
                wake,
                listed: Arc::default(),
            },
            rx,
        )
    }

    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        let ar = kind.api_resource();
        match &self.namespace {
            Some(ns) if !kind.cluster_wide() => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Makes sure each of `kinds` has a synced cache, or is known to be unavailable.
    pub async fn ensure(&self, kinds: &[Kind]) {
        for &kind in kinds {
            if self.fresh(kind) {
                continue;
            }
            let _guard = self.starting.lock().await;
            if self.fresh(kind) {
                continue;
            }
            let state = self.start(kind).await;
            self.states
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kind, state);
        }
    }

    /// A kind that has a cache, or was found unavailable a short while ago.
    fn fresh(&self, kind: Kind) -> bool {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        match states.get(&kind) {
            Some(State::Ready(_)) => true,
            Some(State::Unavailable { since, .. }) => since.elapsed() < RECHECK_AFTER,
            None => false,
        }
    }

    async fn start(&self, kind: Kind) -> State {
        let api = self.api(kind);
        let gv = kind.api_version();
        // One cheap request tells whether the API is served and readable.
        if let Err(error) = api.list_metadata(&ListParams::default().limit(1)).await {
            let message = match &error {
                kube::Error::Api(s) if s.code == 404 => format!(
                    "the {} API ({gv}) is not served by this cluster: install its CRD",
                    kind.name()
                ),
                kube::Error::Api(s) if s.code == 403 => format!(
                    "fledge may not list {} ({gv}): grant it list, watch{}",
                    kind.api_resource().plural,
                    if kind.read_only() { "" } else { " and patch" }
                ),
                other => format!("listing {} ({gv}): {other}", kind.name()),
            };
            warn!(kind = kind.name(), %message, "routing API unavailable");
            return State::Unavailable {
                message,
                since: Instant::now(),
            };
        }
        let writer = reflector::store::Writer::<DynamicObject>::new(kind.api_resource());
        let store = writer.as_reader();
        let changes = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(move |o: &mut DynamicObject| {
                o.metadata.managed_fields = None;
                if let Some(a) = o.metadata.annotations.as_mut() {
                    a.remove("kubectl.kubernetes.io/last-applied-configuration");
                }
                if kind == Kind::EndpointSlice {
                    endpoints::slim(o);
                }
            })
            .inspect({
                // Before the store has it, so a cached slice's pods always have their times.
                let listed = self.listed.clone();
                move |event| {
                    if let (Kind::EndpointSlice, Ok(event)) = (kind, event) {
                        let mut listed = listed.lock().unwrap_or_else(|e| e.into_inner());
                        listed.record(event, Timestamp::now());
                    }
                }
            })
            .reflect(writer)
            .touched_objects();
        let (rollouts, wake) = (self.rollouts.clone(), self.wake.clone());
        tokio::spawn(async move {
            futures::pin_mut!(changes);
            while let Some(change) = changes.next().await {
                let Ok(obj) = change else { continue };
                for r in routing_through(&rollouts, kind, &obj) {
                    if wake.unbounded_send(r).is_err() {
                        return;
                    }
                }
            }
        });
        match tokio::time::timeout(SYNC_TIMEOUT, store.wait_until_ready()).await {
            Ok(Ok(())) => info!(kind = kind.name(), "routing cache synced"),
            _ => warn!(
                kind = kind.name(),
                "routing cache not synced in time; going on"
            ),
        }
        State::Ready(store)
    }

    /// The object `key` in `namespace`, as cached.
    pub fn get(&self, namespace: &str, key: &ObjectKey) -> Found {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        match states.get(&key.kind) {
            // Not in a cache that holds no full list yet is not "missing".
            Some(State::Ready(store)) if store.wait_until_ready().now_or_never().is_none() => {
                Found::NoApi(format!("the {} cache has not synced yet", key.kind.name()))
            }
            Some(State::Ready(store)) => {
                let r = ObjectRef::new_with(&key.name, key.kind.api_resource());
                let r = if key.kind == Kind::GatewayClass {
                    r
                } else {
                    r.within(namespace)
                };
                match store.get(&r) {
                    Some(obj) => match serde_json::to_value(obj.as_ref()) {
                        Ok(v) => Found::Object(v),
                        Err(e) => Found::NoApi(format!("unreadable object: {e}")),
                    },
                    None => Found::Missing,
                }
            }
            Some(State::Unavailable { message, .. }) => Found::NoApi(message.clone()),
            None => Found::NoApi(format!("the {} cache is not started", key.kind.name())),
        }
    }

    /// The pods the EndpointSlices of Service `service` in `namespace` list as ready, each with
    /// when it was first seen listed (`None`: before the watch began), or why they cannot be read
    /// (the cache is not started, not synced, or the API is not readable).
    pub fn ready_pods(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<Vec<(String, Option<Timestamp>)>, String> {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        let store = match states.get(&Kind::EndpointSlice) {
            Some(State::Ready(store)) if store.wait_until_ready().now_or_never().is_some() => store,
            Some(State::Ready(_)) => {
                return Err("the EndpointSlice cache has not synced yet".into());
            }
            Some(State::Unavailable { message, .. }) => return Err(message.clone()),
            None => return Err("the EndpointSlice cache is not started".into()),
        };
        let listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        Ok(store
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(namespace))
            .filter(|s| endpoints::service_of(s) == Some(service))
            .flat_map(|s| {
                endpoints::ready_pods(s)
                    .map(|p| {
                        let since = listed.since(s, &p);
                        (p, since)
                    })
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// Whether a kind is unavailable, or its cache has not synced yet, so that reconciles retry
    /// it later.
    pub fn unavailable(&self, kind: Kind) -> bool {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        match states.get(&kind) {
            Some(State::Unavailable { .. }) => true,
            Some(State::Ready(store)) => store.wait_until_ready().now_or_never().is_none(),
            None => false,
        }
    }
}

/// The Rollouts in `obj`'s namespace whose routers read it.
fn routing_through(
    rollouts: &Store<Rollout>,
    kind: Kind,
    obj: &DynamicObject,
) -> Vec<ObjectRef<Rollout>> {
    if kind == Kind::GatewayClass {
        // What a gateway implements changed (rare): every Rollout on Gateway API routes looks
        // again, so a mirror step held for a missing feature goes on once the class lists it.
        return rollouts
            .state()
            .iter()
            .filter(|r| {
                r.spec
                    .strategy
                    .canary
                    .as_ref()
                    .and_then(|c| c.traffic_routing.as_ref())
                    .is_some_and(|t| t.gateway_api.is_some())
            })
            .map(|r| ObjectRef::from(r.as_ref()))
            .collect();
    }
    let ns = obj.namespace();
    if kind == Kind::EndpointSlice {
        // A Service's endpoints changed: the Rollouts that route to it look again.
        let Some(service) = endpoints::service_of(obj) else {
            return Vec::new();
        };
        return rollouts
            .state()
            .iter()
            .filter(|r| r.metadata.namespace == ns)
            .filter(|r| {
                r.spec
                    .strategy
                    .canary
                    .as_ref()
                    .is_some_and(|c| c.traffic_routing.is_some())
            })
            .filter(|r| {
                crate::rollout::observe::referenced_services(r)
                    .iter()
                    .any(|(_, name)| name == service)
            })
            .map(|r| ObjectRef::from(r.as_ref()))
            .collect();
    }
    let key = ObjectKey {
        kind,
        name: obj.name_any(),
    };
    rollouts
        .state()
        .iter()
        .filter(|r| r.metadata.namespace == ns)
        .filter(|r| {
            let Some(routing) = r
                .spec
                .strategy
                .canary
                .as_ref()
                .and_then(|c| c.traffic_routing.as_ref())
            else {
                return false;
            };
            super::routers(routing, &r.name_any())
                .iter()
                .any(|router| router.reads().contains(&key))
        })
        .map(|r| ObjectRef::from(r.as_ref()))
        .collect()
}
