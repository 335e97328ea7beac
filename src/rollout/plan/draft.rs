//! The plan under construction: one mutable `Draft` that the steps of `plan()` and the strategy
//! machines share, with the helpers they decide through (scale, pin, route, pause, events).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::validate::pending_writes;
use super::{Action, PlanEvent};
use crate::api::{PauseReason, RolloutSpec, RolloutStatus};
use crate::rollout::observe::{Observed, ObservedReplicaSet};
use crate::traffic::{ObjectKey, Target, TrafficRouter, TrafficState};

/// How long the EndpointSlices must have listed a pod before it carries weight. A gateway learns
/// of the pod from its own watch of the slices, and that watch may deliver the slice after the
/// route's new weight (two watches, no order between them): in that window the gateway has no
/// address for the share and answers 503. A second covers a local gateway's lag many times over.
pub const ENDPOINT_SETTLE: SignedDuration = SignedDuration::from_secs(1);

/// How long the pods of a revision the routes no longer send traffic to wait, at most, for a
/// gateway that has not reported reading the routes (see [`Draft::gateways_have_read`]).
pub const GATEWAY_READ_SECONDS: i32 = 60;

/// The plan under construction, shared by the strategy machines.
pub(crate) struct Draft<'a> {
    pub spec: &'a RolloutSpec,
    pub rollout_name: String,
    pub namespace: String,
    pub observed: &'a Observed,
    pub now: Timestamp,
    /// Desired pods.
    pub replicas: i32,
    /// The spec's other numbers, defaults filled in.
    pub settings: super::Settings,
    pub status: RolloutStatus,
    /// The `status.gatewayWaitSince` the plan started from (see [`Draft::gateways_have_read`]).
    pub gateway_wait_since: Option<Timestamp>,
    pub actions: Vec<Action>,
    pub events: Vec<PlanEvent>,
    pub requeue_at: Option<Timestamp>,
    /// The traffic routers, when the canary has `trafficRouting`.
    pub routing: Option<Routing>,
    /// AnalysisRuns a gate asked for in this plan; others still running are terminated.
    pub wanted_runs: Vec<(String, crate::rollout::gates::RunKind)>,
    /// Old revisions whose size the strategy decided in this plan (they may still carry traffic,
    /// or keep the rollout available): not scaled down by the history clean-up.
    pub held: BTreeSet<String>,
}

/// The routers of a Rollout and what they need to render.
pub(crate) struct Routing {
    pub routers: Vec<Box<dyn TrafficRouter>>,
    pub target: Target,
    /// Why traffic may not move now (a gateway rejected a route), quoted in the status.
    pub rejected: Option<String>,
}

impl Draft<'_> {
    pub fn replica_set(&self, hash: &str) -> Option<&ObservedReplicaSet> {
        self.observed.replica_sets.iter().find(|rs| rs.hash == hash)
    }

    /// Pods of revision `hash` that are available.
    pub fn available(&self, hash: &str) -> i32 {
        self.replica_set(hash).map_or(0, |rs| rs.available)
    }

    /// The pods of revision `hash` that traffic sent to Service `service` can reach: its
    /// available pods, but no more than the Service's EndpointSlices have listed as ready for
    /// [`ENDPOINT_SETTLE`], since that is what gateways route by, and they list a pod a moment
    /// after its ReplicaSet counts it.
    pub fn routable(&self, service: Option<&String>, hash: &str) -> i32 {
        let available = self.available(hash);
        let (Some(service), Some(rs)) = (service, self.replica_set(hash)) else {
            return available;
        };
        let Some(pods) = self.observed.endpoints.get(service) else {
            return available;
        };
        // A ReplicaSet names its pods after itself.
        let prefix = format!("{}-", rs.name);
        let listed = pods
            .iter()
            .filter(|p| p.name.starts_with(&prefix))
            .filter(|p| p.since.is_none_or(|t| t + ENDPOINT_SETTLE <= self.now))
            .count();
        available.min(i32::try_from(listed).unwrap_or(i32::MAX))
    }

    /// When the next pod that Service `service`'s EndpointSlices list, but not for
    /// [`ENDPOINT_SETTLE`] yet, may carry weight.
    pub fn next_settled(&self, service: Option<&String>) -> Option<Timestamp> {
        let pods = self.observed.endpoints.get(service?)?;
        pods.iter()
            .filter_map(|p| p.since.map(|t| t + ENDPOINT_SETTLE))
            .filter(|at| *at > self.now)
            .min()
    }

    /// True when revision `hash` has exactly `replicas` pods asked for, exactly that many exist
    /// and all are available. A scale-down is done only once its pods are gone: until then the
    /// old pods still take their share of the traffic.
    pub fn settled(&self, hash: &str, replicas: i32) -> bool {
        match self.replica_set(hash) {
            Some(rs) => {
                rs.replicas == replicas && rs.current == replicas && rs.available >= replicas
            }
            None => replicas == 0,
        }
    }

    /// Scales revision `hash` to `replicas` (creating its ReplicaSet when needed); no action when
    /// it is already there. A later call for the same revision replaces an earlier one.
    pub fn scale(&mut self, hash: &str, replicas: i32) {
        self.actions
            .retain(|a| !matches!(a, Action::ApplyReplicaSet { hash: h, .. } if h == hash));
        let unchanged = match self.replica_set(hash) {
            Some(rs) => rs.replicas == replicas,
            None => replicas == 0,
        };
        if !unchanged {
            self.actions.push(Action::ApplyReplicaSet {
                hash: hash.to_string(),
                replicas,
            });
        }
    }

    /// The pods revision `hash` is asked for once this plan is applied.
    pub fn asked(&self, hash: &str) -> i32 {
        self.actions
            .iter()
            .find_map(|a| match a {
                Action::ApplyReplicaSet { hash: h, replicas } if h == hash => Some(*replicas),
                _ => None,
            })
            .unwrap_or_else(|| self.replica_set(hash).map_or(0, |rs| rs.replicas))
    }

    /// Old revisions keep their pods until `seconds` from now.
    pub fn delay_scale_down(&mut self, seconds: i32) {
        let at = self.after_seconds(self.now, seconds);
        self.status.scale_down_at = Some(Time(at));
    }

    /// Points Service `name` at revision `hash`, unless it already is.
    pub fn pin(&mut self, name: Option<&String>, hash: &str) {
        let Some(name) = name else { return };
        self.actions
            .retain(|a| !matches!(a, Action::PinService { name: n, .. } if n == name));
        if self.observed.services.get(name) != Some(&Some(hash.to_string())) {
            self.actions.push(Action::PinService {
                name: name.clone(),
                hash: hash.to_string(),
            });
        }
    }

    pub fn requeue_at(&mut self, at: Timestamp) {
        self.requeue_at = Some(self.requeue_at.map_or(at, |t| t.min(at)));
    }

    pub fn event(&mut self, reason: &'static str, message: impl Into<String>) {
        self.events.push(PlanEvent {
            warning: false,
            reason,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, reason: &'static str, message: impl Into<String>) {
        self.events.push(PlanEvent {
            warning: true,
            reason,
            message: message.into(),
        });
    }

    pub fn has_pause(&self, reason: PauseReason) -> bool {
        self.status
            .pause_conditions
            .iter()
            .any(|p| p.reason == reason)
    }

    /// Adds a pause condition (once) and returns when it started.
    pub fn pause(&mut self, reason: PauseReason) -> Timestamp {
        if let Some(p) = self
            .status
            .pause_conditions
            .iter()
            .find(|p| p.reason == reason)
        {
            return p.start_time.0;
        }
        self.status
            .pause_conditions
            .push(crate::api::PauseCondition {
                reason,
                start_time: Time(self.now),
            });
        self.now
    }

    pub fn unpause(&mut self, reason: PauseReason) {
        self.status.pause_conditions.retain(|p| p.reason != reason);
    }

    /// Paused by a person: a `pause` request or `spec.paused`.
    pub fn user_paused(&self) -> bool {
        self.spec.paused == Some(true) || self.has_pause(PauseReason::UserPaused)
    }

    /// Makes the routing objects hold `state`: writes where they do not yet, ahead of every other
    /// action (an abort's weight 0 goes out before any scaling). Returns true when they hold it
    /// already, which is when a step that set it is done.
    pub fn route(&mut self, state: &TrafficState) -> bool {
        let actions = self.route_writes(state);
        let held = actions.is_empty();
        let objects = &self.observed.traffic;
        let unreported = self
            .routing
            .iter()
            .flat_map(|r| &r.routers)
            .find(|r| r.unreported(objects));
        if !held && let Some(r) = unreported {
            let what = r
                .reads()
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            self.warning(
                "RouteNotReported",
                format!("{what} has no status from any gateway: fledge cannot tell whether traffic follows its weights"),
            );
        }
        // Only this routing's own earlier writes are replaced: the writes that give a retired
        // route back to the stable (see `retire_routing`) stay.
        let own: BTreeSet<ObjectKey> = self
            .routing
            .iter()
            .flat_map(|r| &r.routers)
            .flat_map(|r| r.reads())
            .collect();
        self.actions.retain(|a| match a {
            Action::ApplyRoute { key, .. } | Action::DeleteRoute { key } => !own.contains(key),
            _ => true,
        });
        self.actions.splice(0..0, actions);
        held
    }

    /// A gateway has not read the routing objects as they stand yet (see
    /// [`TrafficRouter::lagging`]).
    fn gateways_lag(&self) -> bool {
        let objects = &self.observed.traffic;
        self.routing
            .iter()
            .flat_map(|r| &r.routers)
            .any(|r| r.lagging(objects))
    }

    /// Whether the pods of revision `hash`, which the routes now send nothing to, may go: at once
    /// when it is asked for none, else once every gateway that reports on the routes has read
    /// them as they stand (until then it may still send the revision its old share), or
    /// [`GATEWAY_READ_SECONDS`] after `since` (by default when this wait began, kept in
    /// `status.gatewayWaitSince`), since a gateway's report may never catch up: an uninstalled
    /// gateway leaves its entry in the route's status for ever. Asks to look again when the wait
    /// ends.
    pub fn gateways_have_read(&mut self, hash: &str, since: Option<Timestamp>) -> bool {
        if self.asked(hash) == 0 || !self.gateways_lag() {
            return true;
        }
        let since = since.unwrap_or_else(|| {
            let since = self.gateway_wait_since.unwrap_or(self.now);
            self.status.gateway_wait_since = Some(Time(since));
            since
        });
        let deadline = self.after_seconds(since, GATEWAY_READ_SECONDS);
        if self.now >= deadline {
            self.status.gateway_wait_since = None;
            return true;
        }
        self.requeue_at(deadline);
        false
    }

    /// The writes that would make the routing objects hold `state`; none when they do.
    pub fn route_writes(&self, state: &TrafficState) -> Vec<Action> {
        let Some(routing) = &self.routing else {
            return Vec::new();
        };
        let objects = &self.observed.traffic;
        let state = &self.writable(state);
        let mut writes = Vec::new();
        for router in &routing.routers {
            // check() passed in validate(), so a render error here is a state the objects
            // cannot take (e.g. too many header conditions); it leaves them as they are.
            if let Ok(w) = router.render(objects, &routing.target, state) {
                writes.extend(w);
            }
        }
        pending_writes(objects, writes)
    }

    /// The revision the canary Service selects now, if it is pinned; without a canary Service,
    /// the one the canary subset does (`subset_pins.rs`).
    pub fn canary_service_revision(&self) -> Option<String> {
        let canary = self.spec.strategy.canary.as_ref()?;
        match &canary.canary_service {
            Some(name) => self.observed.services.get(name).cloned().flatten(),
            None => self.canary_subset_revision(),
        }
    }

    /// The canary weight the routing objects carry now, as read back from them.
    pub fn routed_weight(&self) -> Option<i32> {
        let routing = self.routing.as_ref()?;
        routing
            .routers
            .iter()
            .filter(|r| r.carries_weight())
            .map(|r| r.verify(&self.observed.traffic, &routing.target).weight)
            .next()
            .flatten()
    }

    /// Whether the routing objects carry a header or mirror route now, as read back.
    pub fn routes_extra(&self) -> bool {
        let Some(routing) = &self.routing else {
            return false;
        };
        routing.routers.iter().any(|r| {
            let read = r.verify(&self.observed.traffic, &routing.target);
            !read.header_routes.is_empty() || !read.mirror_routes.is_empty()
        })
    }

    pub fn after_seconds(&self, from: Timestamp, seconds: i32) -> Timestamp {
        from.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            seconds.max(0),
        )))
        .unwrap_or(Timestamp::MAX)
    }
}
