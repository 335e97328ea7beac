//! The canary step machine. Called by [`super::plan`]; pure.
//!
//! Without a traffic router the canary's weight is its share of the available pods, so every
//! step is a pair of ReplicaSet sizes, reached within `maxSurge` / `maxUnavailable`.

use crate::api::{CanaryStep, CanaryStrategy, PauseReason};
use crate::traffic::{TrafficState, routes_after};

use super::gates::{Gate, RunKind, gate, hold};
use super::plan::{Action, Draft};
use super::webhook_gates;
use crate::api::gates::GateType;

pub(crate) fn plan(d: &mut Draft, current: &str) {
    let canary = d.spec.strategy.canary.clone().unwrap_or_default();
    let n = canary.steps.len() as i32;
    let stable = d
        .status
        .stable_revision
        .clone()
        .unwrap_or_else(|| current.to_string());
    let r = d.replicas;

    if current == stable {
        // Nothing in flight: the stable revision at full size, both Services on it, and the
        // routes back to the stable Service alone. After a revert, the abandoned canary may
        // still carry traffic: the routes give it back to the stable first, as far as the
        // stable's available pods carry it, and its pods go only after that, as the stable's
        // become available.
        d.status.current_step_index = Some(n);
        d.status.canary_weight = Some(100);
        let serving = d.canary_service_revision().filter(|h| *h != stable);
        if let Some(h) = &serving {
            d.canary_subset_to(h);
        }
        let default = TrafficState::default();
        let clear = match &serving {
            Some(h) if d.routing.is_some() => {
                let state = reachable(d, default.clone(), &default, h, &stable);
                d.route(&state) && state == default && d.gateways_have_read(h, None)
            }
            _ => {
                d.route(&default);
                true
            }
        };
        let delayed = d.status.scale_down_at.as_ref().is_some_and(|t| t.0 > d.now);
        let others: Vec<String> = d
            .observed
            .replica_sets
            .iter()
            .filter(|rs| rs.hash != stable && rs.replicas > 0 && !delayed)
            .map(|rs| rs.hash.clone())
            .collect();
        if !clear {
            d.scale(&stable, r);
            d.pin(canary.stable_service.as_ref(), &stable);
            d.held.extend(serving);
            return;
        }
        fall_back(d, &stable, &others);
        d.pin(canary.stable_service.as_ref(), &stable);
        if d.routing.is_some() || d.available(&stable) > 0 || others.is_empty() {
            d.pin(canary.canary_service.as_ref(), &stable);
            if serving.is_some() {
                d.canary_subset_to(&stable);
                d.route(&default);
            }
        } else {
            d.held.extend(serving);
        }
        return;
    }

    d.pin(canary.stable_service.as_ref(), &stable);
    if d.routing.is_some() {
        routed(d, &canary, current, &stable);
        return;
    }
    if d.status.abort {
        // Without a router the canary's pods carry traffic: the stable comes back and the
        // canary goes as a Deployment would roll back, never below maxUnavailable.
        fall_back(d, &stable, &[current.to_string()]);
        d.status.canary_weight = Some(share(d.available(current), d.available(&stable)));
        stable_behind_canary_service(d, &canary, current, &stable);
        return;
    }
    d.pin(canary.canary_service.as_ref(), current);

    let walked = walk(d, &canary, current, |d, i| {
        // Without a router only a weight needs the pods in place; a scale takes effect with
        // the next weight.
        if canary.steps[i as usize].set_weight.is_none() {
            return true;
        }
        let (c, s) = targets(&canary, i, r);
        d.settled(current, c) && d.settled(&stable, s)
    });
    // Held at a gate before step `i`: the sizes of the steps before it.
    let at = match walked {
        Walk::Abort => return plan(d, current),
        Walk::Promote => return promote(d, &canary, current, &stable),
        Walk::Stopped(i) => i,
        Walk::Held(i) => i - 1,
    };

    let (c, s) = targets(&canary, at, r);
    let surge = d.settings.max_surge;
    let unavailable = d.settings.max_unavailable;
    // Available pods that stay once each ReplicaSet is down to its size: pods it still has to
    // remove may be available ones.
    let observed = |hash: &str| {
        d.replica_set(hash).map_or((0, 0), |rs| {
            (
                rs.replicas,
                rs.available - (rs.current - rs.replicas).max(0),
            )
        })
    };
    let (c_next, s_next) = next_sizes(
        Bounds {
            replicas: r,
            surge,
            unavailable,
        },
        observed(current),
        observed(&stable),
        (c, s),
    );
    d.scale(current, c_next);
    d.scale(&stable, s_next);
    d.status.canary_weight = Some(share(d.available(current), d.available(&stable)));
}

/// After an abort, once the canary (revision `current`) is asked for no pods, the canary Service
/// (and subset) selects the stable's pods again, as when nothing is in flight: it never selects a
/// revision without pods. Until then it keeps the canary's, for debugging.
fn stable_behind_canary_service(
    d: &mut Draft,
    canary: &CanaryStrategy,
    current: &str,
    stable: &str,
) {
    if d.asked(current) == 0 && d.available(stable) > 0 {
        d.pin(canary.canary_service.as_ref(), stable);
        d.canary_subset_to(stable);
    }
}

/// Back to `stable` at full size without losing availability, as a Deployment rolls back: the
/// stable grows within `maxSurge`; the `others` lose their unavailable pods at once (they carry
/// no traffic), and their available ones only as far as `maxUnavailable` allows, counting the
/// stable's pods once they are available.
fn fall_back(d: &mut Draft, stable: &str, others: &[String]) {
    let r = d.replicas;
    let bounds = Bounds {
        replicas: r,
        surge: d.settings.max_surge,
        unavailable: d.settings.max_unavailable,
    };
    // The stable's available pods that stay once it is down to its size.
    let stable_now = d.replica_set(stable).map_or((0, 0), |rs| {
        (
            rs.replicas,
            (rs.available - (rs.current - rs.replicas).max(0)).max(0),
        )
    });
    // Scaled down, a ReplicaSet removes its pods that are not available first.
    let mut sorted: Vec<(i32, i32, String)> = others
        .iter()
        .filter_map(|h| d.replica_set(h))
        .map(|rs| {
            (
                rs.available.min(rs.replicas).max(0),
                rs.replicas,
                rs.hash.clone(),
            )
        })
        .collect();
    sorted.sort();
    let available: i32 = sorted.iter().map(|(a, ..)| a).sum();
    let (s_next, o_next) = next_sizes(bounds, stable_now, (available, available), (r, 0));
    d.scale(stable, s_next);
    let mut remove = available - o_next;
    for (available, size, hash) in sorted {
        let take = remove.min(available);
        remove -= take;
        d.scale(&hash, size.min(available) - take);
        d.held.insert(hash);
    }
}

/// `want`, limited so that traffic moves only onto available pods that the Services' endpoints
/// list (see [`Draft::routable`]), in both directions: the canary (revision `serving`, which the
/// canary Service selects) gets no more weight than those pods carry, and no header or mirror
/// route without one; the weight comes back to the stable only as far as the stable's pods carry
/// it, and the header routes `in_force` stay while it has none.
pub(crate) fn reachable(
    d: &mut Draft,
    want: TrafficState,
    in_force: &TrafficState,
    serving: &str,
    stable: &str,
) -> TrafficState {
    let r = d.replicas;
    let mut state = want;
    let services = d.spec.strategy.canary.as_ref();
    let (canary_svc, stable_svc) = (
        services.and_then(|c| c.canary_service.as_ref()),
        services.and_then(|c| c.stable_service.as_ref()),
    );
    let canary_pods = d.routable(canary_svc, serving);
    let stable_pods = d.routable(stable_svc, stable);
    // Look again when a pod listed just now may carry its share.
    let next = d.next_settled(canary_svc).into_iter();
    if let Some(at) = next.chain(d.next_settled(stable_svc)).min() {
        d.requeue_at(at);
    }
    state.weight = state.weight.min(capacity(canary_pods, r));
    if let Some(now) = d.routed_weight()
        && state.weight < now
    {
        state.weight = state.weight.max(now.min(100 - capacity(stable_pods, r)));
    }
    if canary_pods == 0 {
        state.header_routes.clear();
        state.mirror_routes.clear();
    } else if stable_pods == 0 {
        for h in &in_force.header_routes {
            if !state.header_routes.iter().any(|x| x.name == h.name) {
                state.header_routes.push(h.clone());
            }
        }
    }
    state
}

/// Where walking the steps stopped.
enum Walk {
    /// At this step, not done yet.
    Stopped(i32),
    /// Past the last step, or a full promotion.
    Promote,
    /// An analysis failed: the rollout aborts.
    Abort,
    /// Before this step (past the last: before promotion), at a webhook gate that has not
    /// answered yes: the step's sizes and traffic wait too.
    Held(i32),
}

/// Completes steps from the current one for as long as each is done, with or without a router:
/// pauses and analyses the same way, and a sizing step when `sized(d, i)` says so.
fn walk(
    d: &mut Draft,
    canary: &CanaryStrategy,
    current: &str,
    sized: impl Fn(&mut Draft, i32) -> bool,
) -> Walk {
    let n = canary.steps.len() as i32;
    let mut i = d.status.current_step_index.unwrap_or(0).clamp(0, n);
    if background(d, canary, current, i) || webhook_gates::rollback(d, current) {
        return Walk::Abort;
    }
    let mut held = false;
    loop {
        if d.user_paused() || d.has_pause(PauseReason::InconclusiveAnalysis) {
            break;
        }
        if !d.status.promote_full && confirm_before(d, canary, current, i) {
            held = true;
            break;
        }
        if d.status.promote_full || i >= n {
            d.status.current_step_index = Some(n);
            return Walk::Promote;
        }
        let step = &canary.steps[i as usize];
        if let Some(pause) = &step.pause {
            let start = d.pause(PauseReason::CanaryPauseStep);
            let Some(duration) = pause.duration.as_deref() else {
                break; // until promoted
            };
            // validate() parsed every duration already.
            let seconds = crate::api::duration::parse(duration).map_or(0, |d| d.as_secs());
            let end = d.after_seconds(start, i32::try_from(seconds).unwrap_or(i32::MAX));
            if d.now < end {
                d.requeue_at(end);
                break;
            }
            d.unpause(PauseReason::CanaryPauseStep);
        } else if let Some(a) = &step.analysis {
            let g = gate(d, current, RunKind::Step(i), a.into());
            if hold(d, g) {
                if d.status.abort {
                    // Failed: the abort path puts all traffic back on stable in this plan.
                    d.status.current_step_index = Some(i);
                    return Walk::Abort;
                }
                break;
            }
        } else if !sized(d, i) {
            break;
        }
        d.event(
            "StepCompleted",
            format!("step {i} ({}) completed", describe(step)),
        );
        i += 1;
    }
    let started_at = d.status.current_step_index.unwrap_or(0);
    d.status.current_step_index = Some(i);
    // Steps done in this plan may have reached `startingStep`.
    if i != started_at && background(d, canary, current, i) {
        return Walk::Abort;
    }
    if held {
        Walk::Held(i)
    } else {
        Walk::Stopped(i)
    }
}

/// The confirm gates before step `i` (past the last step: before promotion): true while one
/// holds the rollout there.
fn confirm_before(d: &mut Draft, canary: &CanaryStrategy, current: &str, i: i32) -> bool {
    if d.spec.gates.is_empty() {
        return false;
    }
    let n = canary.steps.len() as i32;
    if i == 0 && webhook_gates::confirm(d, current, GateType::ConfirmRollout, None) {
        return true;
    }
    if i >= n {
        return webhook_gates::confirm(d, current, GateType::ConfirmPromotion, None);
    }
    let before = canary.steps[..i as usize]
        .iter()
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0);
    let raises = canary.steps[i as usize]
        .set_weight
        .is_some_and(|w| w > before);
    raises && webhook_gates::confirm(d, current, GateType::ConfirmTrafficIncrease, Some(i))
}

/// Background analysis runs beside the steps from `startingStep`; a full promotion skips it.
/// Returns true when it failed and the rollout is to abort.
fn background(d: &mut Draft, canary: &CanaryStrategy, current: &str, i: i32) -> bool {
    let Some(a) = &canary.analysis else {
        return false;
    };
    if d.status.promote_full || i < d.settings.analysis_starting_step {
        return false;
    }
    let g = gate(d, current, RunKind::Background, a.into());
    if g != Gate::Waiting {
        hold(d, g);
    }
    d.status.abort
}

/// After the last step (or a full promotion): the canary goes to full size, then takes over the
/// stable Service. The old stable keeps its pods until `scaleDownDelaySeconds` has passed, so no
/// Service is ever left without ready pods.
fn promote(d: &mut Draft, canary: &CanaryStrategy, current: &str, stable: &str) {
    let r = d.replicas;
    d.scale(current, r);
    if !d.settled(current, r) {
        d.status.canary_weight = Some(share(d.available(current), d.available(stable)));
        return;
    }
    let delay = d.settings.scale_down_delay_seconds;
    if d.replica_set(stable).is_some_and(|rs| rs.replicas > 0) {
        d.delay_scale_down(delay);
    }
    d.pin(canary.stable_service.as_ref(), current);
    d.status.stable_revision = Some(current.to_string());
    d.status.promote_full = false;
    d.status.canary_weight = Some(100);
    d.unpause(PauseReason::CanaryPauseStep);
    d.event("Promoted", format!("revision {current} promoted to stable"));
}

/// (canary, stable) pod counts the steps up to `i` ask for, without a traffic router. The stable
/// keeps the pods the traffic weight leaves it, at least one while the weight is below 100; an
/// explicit canary scale smaller than the weight leaves the stable the rest, so the rollout never
/// runs fewer than `replicas` pods.
pub(crate) fn targets(canary: &CanaryStrategy, i: i32, replicas: i32) -> (i32, i32) {
    let done = &canary.steps[..((i + 1).max(0) as usize).min(canary.steps.len())];
    let weight = done.iter().rev().find_map(|s| s.set_weight).unwrap_or(0);
    // In i64: 100% of more than 21_474_836 replicas overflows an i32 product.
    let by_weight =
        |w: i32| i32::try_from((i64::from(replicas) * i64::from(w) + 99) / 100).unwrap_or(i32::MAX);
    let scale = done.iter().rev().find_map(|s| s.set_canary_scale.as_ref());
    let canary_pods = match scale {
        Some(sc) if sc.match_traffic_weight != Some(true) => sc
            .replicas
            .map(|n| n.clamp(0, replicas))
            .or(sc.weight.map(by_weight))
            .unwrap_or(by_weight(weight)),
        _ => by_weight(weight),
    };
    // A weight short of 100 keeps a stable pod, as Argo Rollouts does: with few replicas the
    // rounded-up share would otherwise move every pod, and so all traffic, to the canary, and an
    // abort would have no stable pod to fall back on until a new one started.
    let floor = i32::from(weight > 0 && weight < 100 && replicas > 0);
    (
        canary_pods,
        (replicas - by_weight(weight).min(canary_pods)).max(floor),
    )
}

/// The surge and availability limits of an update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub replicas: i32,
    pub surge: i32,
    pub unavailable: i32,
}

/// One move towards (canary, stable) `target` sizes from the observed (size, available) of each.
/// Scaling the stable down keeps at least `replicas - unavailable` pods available; then scaling
/// the canary up stays within `replicas + surge` pods, or the target's total when an explicit
/// `setCanaryScale` asks for more (else the target could never be reached). Shrinking the canary
/// or growing the stable is always safe and happens at once. The stable shrinks first so that
/// the next plan, made once these sizes are applied, finds nothing more to do.
pub(crate) fn next_sizes(
    b: Bounds,
    canary: (i32, i32),
    stable: (i32, i32),
    target: (i32, i32),
) -> (i32, i32) {
    // Both limits at 0 would forbid every move; Deployments reject that, we allow one surge pod.
    let surge = if b.surge == 0 && b.unavailable == 0 {
        1
    } else {
        b.surge
    };
    let (mut c, c_avail) = canary;
    let (mut s, s_avail) = stable;
    let (c_target, s_target) = target;
    if c > c_target {
        c = c_target;
    }
    if s < s_target {
        s = s_target;
    }
    if s > s_target {
        let min_available = b.replicas - b.unavailable;
        // In i64, here and below: maxSurge may be any i32, and ReplicaSets scaled out of band
        // may hold up to i32::MAX pods each. Each result lies between two i32 sizes.
        let available = i64::from(c_avail.min(c)) + i64::from(s_avail.min(s));
        let removable = (available - i64::from(min_available)).max(0);
        s = (i64::from(s) - removable).max(i64::from(s_target)) as i32;
    }
    if c < c_target {
        let cap = (i64::from(b.replicas) + i64::from(surge))
            .max(i64::from(c_target) + i64::from(s_target));
        let room = (cap - i64::from(c) - i64::from(s)).max(0);
        c = (i64::from(c) + room).min(i64::from(c_target)) as i32;
    }
    (c, s)
}

/// The canary's share of available pods, in percent.
fn share(canary: i32, stable: i32) -> i32 {
    let total = f64::from(canary) + f64::from(stable);
    if total == 0.0 {
        return 0;
    }
    (f64::from(canary) * 100.0 / total).round() as i32
}

fn describe(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        format!("setWeight {w}")
    } else if let Some(p) = &step.pause {
        match &p.duration {
            Some(d) => format!("pause {d}"),
            None => "pause".into(),
        }
    } else if let Some(h) = &step.set_header_route {
        format!("setHeaderRoute {}", h.name)
    } else if let Some(m) = &step.set_mirror_route {
        format!("setMirrorRoute {}", m.name)
    } else if step.analysis.is_some() {
        "analysis".into()
    } else {
        "setCanaryScale".into()
    }
}

/// The canary machine with a traffic router: pods and traffic are separate. The canary gets the
/// pods its weight (or `setCanaryScale`) asks for while the stable keeps its own, and the routers
/// give the canary no more traffic than its available pods carry.
fn routed(d: &mut Draft, canary: &CanaryStrategy, current: &str, stable: &str) {
    let r = d.replicas;
    let n = canary.steps.len() as i32;
    let serving = d
        .canary_service_revision()
        .unwrap_or_else(|| current.to_string());
    d.canary_subset_to(&serving);
    let default = TrafficState::default();
    if d.status.abort {
        // Traffic first, in this very reconcile, as far as the stable's available pods carry it
        // (dynamicStableScale may have left it few); the canary's pods stay a while for
        // debugging, and at least until the routes send them nothing.
        d.scale(stable, r);
        let i = d.status.current_step_index.unwrap_or(0).clamp(0, n);
        let in_force = traffic_after(canary, i, r, r);
        let state = reachable(d, default.clone(), &in_force, &serving, stable);
        let clear = d.route(&state) && state == default;
        d.status.canary_weight = Some(state.weight);
        if !clear && serving != current {
            d.held.insert(serving);
        }
        // A delay of 0 keeps them until the next revision, as in Argo Rollouts.
        let delay = d.settings.abort_scale_down_delay_seconds;
        if delay == 0 {
            return;
        }
        let since = d.status.aborted_at.as_ref().map_or(d.now, |t| t.0);
        let until = d.after_seconds(since, delay);
        if d.now < until {
            d.requeue_at(until);
        } else if clear && d.gateways_have_read(current, Some(until)) {
            d.scale(current, 0);
            stable_behind_canary_service(d, canary, current, stable);
        }
        return;
    }
    if serving != current && serving != stable {
        // A canary replaced in flight: its traffic (weight, header and mirror routes) goes back
        // to the stable before the canary Service moves to the new revision and its pods go.
        let state = reachable(d, default.clone(), &default, &serving, stable);
        if !(d.route(&state) && state == default && d.gateways_have_read(&serving, None)) {
            d.held.insert(serving);
            d.scale(stable, r);
            // The new revision's own steps size it: the routes in force are the old canary's.
            let i = d.status.current_step_index.unwrap_or(0).clamp(0, n);
            d.scale(current, at_least_min_pods(d, own_pods(d, canary, i)));
            d.status.canary_weight = Some(state.weight);
            return;
        }
    }
    d.pin(canary.canary_service.as_ref(), current);
    d.canary_subset_to(current);

    if d.routing.as_ref().is_some_and(|t| t.rejected.is_some()) {
        // A gateway refuses a route: shifting more traffic could not be verified. Hold here.
        d.pause(PauseReason::TrafficRouteNotAccepted);
        d.status.canary_weight = d.routed_weight();
        return;
    }
    d.unpause(PauseReason::TrafficRouteNotAccepted);

    // setWeight, setCanaryScale, setHeaderRoute, setMirrorRoute: done once the pods are there
    // and the routing objects hold the step's traffic.
    let walked = walk(d, canary, current, |d, i| {
        if d.hold_unsupported_mirror(&canary.steps[i as usize]) {
            return false;
        }
        let (c, s) = routed_targets(d, canary, i);
        let full = traffic_after(canary, i, c, r);
        d.settled(current, c) && d.settled(stable, s) && holds(d, &full)
    });
    // A hold ends once the step is passed (a promote) or the class lists the feature.
    let held_at_mirror = matches!(walked, Walk::Stopped(i)
        if canary.steps.get(i as usize).and_then(|s| d.mirror_hold(s)).is_some());
    if !held_at_mirror {
        d.unpause(PauseReason::MirrorNotSupported);
    }
    // Held at a gate before step `i`: the pods and traffic of the steps before it.
    let i = match walked {
        Walk::Abort => return plan(d, current),
        Walk::Promote => return promote_routed(d, canary, current, stable, n),
        Walk::Stopped(i) => i,
        Walk::Held(i) => i - 1,
    };

    let (c, s) = routed_targets(d, canary, i);
    d.scale(current, c);
    d.scale(stable, s);
    let want = traffic_after(canary, i, c, r);
    // Never more traffic than the available pods carry.
    let state = reachable(d, want.clone(), &want, current, stable);
    d.route(&state);
    d.status.canary_weight = Some(d.routed_weight().unwrap_or(state.weight));
}

/// True when the routing objects hold `state` now (no write is needed for it).
fn holds(d: &Draft, state: &TrafficState) -> bool {
    d.route_writes(state).is_empty()
}

/// (canary, stable) pods for the steps up to `i` with a router: the canary's from its weight or
/// `setCanaryScale`; the stable's at full size, or, with `dynamicStableScale`, what the traffic
/// the routes still send it needs.
fn routed_targets(d: &Draft, canary: &CanaryStrategy, i: i32) -> (i32, i32) {
    let r = d.replicas;
    let mut c = own_pods(d, canary, i);
    // Header or mirror routes in force, even ones the steps no longer ask for, keep a pod.
    if d.routes_extra() {
        c = c.max(r.min(1));
    }
    // The canary keeps the pods the traffic the routes still send it needs: they go only once
    // the routes have moved it (back to the stable, as fast as the stable's pods allow).
    let routed = d.routed_weight().unwrap_or(0).clamp(0, 100);
    c = c.max((r * routed + 99) / 100);
    let c = at_least_min_pods(d, c);
    if canary.dynamic_stable_scale != Some(true) {
        return (c, r);
    }
    let wanted = traffic_after(canary, i, c, r).weight;
    // The stable shrinks only for traffic that has really moved.
    let moved = d.routed_weight().unwrap_or(0).min(wanted);
    (c, at_least_min_pods(d, (r * (100 - moved) + 99) / 100))
}

/// The canary pods the steps up to `i` ask for with a router, before `minPodsPerReplicaSet`:
/// its weight's or `setCanaryScale`'s, and one while the steps have a header or mirror route in
/// force (one is applied only once the canary has an available pod), even before any weight.
fn own_pods(d: &Draft, canary: &CanaryStrategy, i: i32) -> i32 {
    let r = d.replicas;
    let (c, _) = targets(canary, i, r);
    let done = ((i + 1).max(0) as usize).min(canary.steps.len());
    let (headers, mirrors) = routes_after(&canary.steps, done);
    if headers.is_empty() && mirrors.is_empty() {
        c
    } else {
        c.max(r.min(1))
    }
}

/// `minPodsPerReplicaSet`: a ReplicaSet asked for any pods is asked for at least that many, so
/// the traffic it carries never rests on fewer.
fn at_least_min_pods(d: &Draft, pods: i32) -> i32 {
    if pods > 0 {
        pods.max(d.settings.min_pods_per_replica_set)
    } else {
        pods
    }
}

/// The traffic the steps up to and including `i` ask for, the weight capped by what `pods`
/// canary pods provision.
fn traffic_after(canary: &CanaryStrategy, i: i32, pods: i32, replicas: i32) -> TrafficState {
    let done = ((i + 1).max(0) as usize).min(canary.steps.len());
    let weight = canary.steps[..done]
        .iter()
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0);
    let (header_routes, mirror_routes) = routes_after(&canary.steps, done);
    TrafficState {
        weight: weight.min(capacity(pods, replicas)),
        header_routes,
        mirror_routes,
    }
}

/// The share of traffic, in percent, that `pods` of `replicas` can carry.
fn capacity(pods: i32, replicas: i32) -> i32 {
    if replicas <= 0 {
        return 100;
    }
    (i64::from(pods.max(0)) * 100 / i64::from(replicas)).min(100) as i32
}

/// After the last step: the canary at full size, then, in one plan, the routes back to the stable
/// Service alone (header and mirror routes out) and the stable Service switched to the new pods.
fn promote_routed(d: &mut Draft, canary: &CanaryStrategy, current: &str, stable: &str, n: i32) {
    let r = d.replicas;
    d.scale(current, r);
    if !d.settled(current, r) {
        let (c, _) = targets(canary, n - 1, r);
        let want = traffic_after(canary, n - 1, c.max(d.available(current)), r);
        let state = reachable(d, want.clone(), &want, current, stable);
        d.route(&state);
        d.status.canary_weight = Some(d.routed_weight().unwrap_or(state.weight));
        return;
    }
    let delay = d.settings.scale_down_delay_seconds;
    if d.replica_set(stable).is_some_and(|rs| rs.replicas > 0) {
        d.delay_scale_down(delay);
    }
    // The stable Service moves to the new pods (all available) first, and then the routes go
    // back to it alone: traffic never meets a Service without available pods, even when
    // dynamicStableScale left the old stable none. route() puts its writes first, so the pin is
    // moved ahead of them.
    d.pin(canary.stable_service.as_ref(), current);
    d.stable_subset_to(current);
    d.route(&TrafficState::default());
    if let Some(at) = d.actions.iter().position(|a| {
        matches!(a, Action::PinService { name, .. } if Some(name) == canary.stable_service.as_ref())
    }) {
        let pin = d.actions.remove(at);
        d.actions.insert(0, pin);
    }
    d.status.stable_revision = Some(current.to_string());
    d.status.promote_full = false;
    d.status.canary_weight = Some(100);
    d.unpause(PauseReason::CanaryPauseStep);
    d.event("Promoted", format!("revision {current} promoted to stable"));
}
