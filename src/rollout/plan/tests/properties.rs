//! Property tests: random canary and blue-green rollouts driven to the end, with the invariants
//! of docs/design.md checked at every reconcile.

use proptest::prelude::*;

use super::*;
use crate::api::CanaryStep;

fn step() -> impl Strategy<Value = CanaryStep> {
    prop_oneof![
        4 => (0..=100i32).prop_map(w),
        1 => Just(pause_forever()),
        1 => (0..120u32).prop_map(|s| pause(&format!("{s}s"))),
        1 => (0..25i32).prop_map(scale_replicas),
        1 => (0..=100i32).prop_map(scale_weight),
        1 => Just(match_traffic()),
    ]
}

fn bound() -> impl Strategy<Value = Option<IntOrString>> {
    prop_oneof![
        Just(None),
        (0..5i32).prop_map(|n| Some(int(n))),
        (0..=100i32).prop_map(|p| Some(pct(p)))
    ]
}

fn request() -> impl Strategy<Value = RequestAction> {
    prop_oneof![
        Just(RequestAction::Abort),
        Just(RequestAction::Promote),
        Just(RequestAction::PromoteFull),
        Just(RequestAction::Pause),
        Just(RequestAction::Resume),
    ]
}

fn finished(sim: &Sim) -> bool {
    let s = sim.status();
    let back_on_stable = s.stable_revision.as_deref().is_some_and(|stable| {
        sim.world
            .replica_sets
            .iter()
            .all(|rs| rs.hash == stable || rs.replicas == 0)
    });
    (s.abort && s.phase == Some(Phase::Degraded) && back_on_stable)
        || (s.phase == Some(Phase::Healthy) && s.current_revision == s.stable_revision)
}

/// Unblocks a waiting rollout as a person (or the clock) would.
fn unblock(sim: &mut Sim, p: &Plan) {
    // An aborted rollout may keep pods for abortScaleDownDelaySeconds: the clock moves on.
    if p.status.abort && p.requeue_after.is_some() {
        sim.advance_to_requeue(p);
        return;
    }
    if p.status.phase != Some(Phase::Paused) {
        return;
    }
    if has_pause(&p.status, PauseReason::UserPaused) {
        sim.request(RequestAction::Resume);
    } else if p.requeue_after.is_some() {
        sim.advance_to_requeue(p);
    } else {
        sim.request(RequestAction::Promote);
    }
}

/// Reconciles `sim` until it finishes (at most `limit` times), filing each request at its
/// reconcile and checking `invariant` on (world before, plan, reconcile number) each time;
/// pods become available one at a time when `slow`.
fn drive(
    sim: &mut Sim,
    limit: usize,
    requests: &[(usize, RequestAction)],
    slow: bool,
    mut invariant: impl FnMut(&Sim, &Observed, &Plan, usize) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    for i in 0..limit {
        for (_, action) in requests.iter().filter(|(at, _)| *at == i) {
            sim.request(*action);
        }
        let before = sim.world.clone();
        let p = sim.reconcile();
        invariant(sim, &before, &p, i)?;
        if finished(sim) {
            return Ok(());
        }
        unblock(sim, &p);
        sim.sync_pods();
        if slow {
            ready_one(sim)
        } else {
            sim.pods_ready()
        }
    }
    Err(TestCaseError::fail(format!(
        "did not finish: {:#?}",
        sim.status()
    )))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn canary_rollouts_keep_their_invariants_and_finish(
        replicas in 0..20i32,
        steps in proptest::collection::vec(step(), 0..8),
        surge in bound(),
        unavailable in bound(),
        requests in proptest::collection::vec((0..40usize, request()), 0..4),
        slow_pods in any::<bool>(),
    ) {
        let mut b = RolloutBuilder::canary().replicas(replicas).steps(steps.clone());
        if let Some(s) = surge.clone() { b = b.max_surge(s); }
        if let Some(u) = unavailable.clone() { b = b.max_unavailable(u); }
        let rollout = b.build();
        let canary = rollout.spec.strategy.canary.clone().unwrap();
        let n = steps.len() as i32;
        let max_surge = scaled_value(surge.as_ref(), replicas, Limit::MaxSurge).unwrap();
        let max_unavailable = scaled_value(unavailable.as_ref(), replicas, Limit::MaxUnavailable).unwrap();
        let max_surge = if max_surge == 0 && max_unavailable == 0 { 1 } else { max_surge };
        let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));

        let mut sim = updating(rollout);
        drive(&mut sim, 400, &requests, slow_pods, |sim, before, p, i| {
            let s = &p.status;
            let label = format!("reconcile {i}: {p:#?}");

            if let Some(w) = s.canary_weight {
                prop_assert!((0..=100).contains(&w), "{}", label);
            }
            for a in &p.actions {
                if let Action::ApplyReplicaSet { replicas, .. } = a {
                    prop_assert!(*replicas >= 0, "{}", label);
                }
            }
            let in_steps = s.current_revision != s.stable_revision
                && !s.abort
                && s.current_step_index.unwrap_or(0) < n;
            let old = |h: &str| before.replica_sets.iter().find(|rs| rs.hash == h).cloned().unwrap_or_default();
            // Surge limits scaling up: a plan that grows a ReplicaSet stays within it. (After an
            // explicit setCanaryScale above it, the total comes down only as fast as
            // availability allows.)
            let grew = sim.world.replica_sets.iter().any(|rs| rs.replicas > old(&rs.hash).replicas);
            if in_steps && grew {
                let (c, st) = targets(&canary, s.current_step_index.unwrap_or(0), replicas);
                let total: i32 = sim.world.replica_sets.iter().map(|rs| rs.replicas).sum();
                prop_assert!(total <= (replicas + max_surge).max(c + st), "total {} {}", total, label);
            }
            if s.stable_revision.as_deref() == Some(h1.as_str()) && sim.size(&h1) < old(&h1).replicas {
                let available = old(&h1).available.min(sim.size(&h1)) + old(&h2).available.min(sim.size(&h2));
                prop_assert!(available >= replicas - max_unavailable, "available {} {}", available, label);
            }
            if s.abort && s.current_revision != s.stable_revision {
                // Back to the stable as a Deployment rolls back: the stable never shrinks,
                // the canary never grows, and no plan takes the available pods below
                // maxUnavailable (or below what there was, when it already was).
                prop_assert!(sim.size(&h1) >= old(&h1).replicas.min(replicas), "{}", label);
                prop_assert!(sim.size(&h2) <= old(&h2).replicas, "{}", label);
                let was = old(&h1).available + old(&h2).available;
                let available = old(&h1).available.min(sim.size(&h1)) + old(&h2).available.min(sim.size(&h2));
                prop_assert!(available >= was.min(replicas - max_unavailable), "available {} of {} {}", available, was, label);
                prop_assert_eq!(sim.service(STABLE_SVC), Some(h1.clone()));
            }
            Ok(())
        })?;
    }

    #[test]
    fn blue_green_rollouts_finish(
        replicas in 0..20i32,
        preview in proptest::option::of(0..25i32),
        auto in proptest::option::of(any::<bool>()),
        auto_seconds in 0..120i32,
        requests in proptest::collection::vec((0..30usize, request()), 0..3),
        slow_pods in any::<bool>(),
    ) {
        let mut b = RolloutBuilder::blue_green().replicas(replicas).auto_promotion_seconds(auto_seconds);
        if let Some(p) = preview { b = b.preview_replicas(p); }
        if let Some(a) = auto { b = b.auto_promotion(a); }
        let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
        let mut sim = updating(b.build());
        drive(&mut sim, 300, &requests, slow_pods, |sim, before, p, _| {
            let s = &p.status;
            // The active Service moves only to a fully available revision.
            let active = sim.service(ACTIVE_SVC).unwrap();
            if active == h2 {
                let rs = sim.rs(&h2).cloned().unwrap_or_default();
                prop_assert!(rs.available >= replicas && rs.replicas == replicas);
            } else {
                prop_assert_eq!(&active, &h1);
            }
            if s.abort && s.current_revision != s.stable_revision {
                // The aborted preview never grows, and is gone once abortScaleDownDelaySeconds
                // (30 s by default) is over.
                let was = before.replica_sets.iter().find(|rs| rs.hash == h2).map_or(0, |rs| rs.replicas);
                prop_assert!(sim.size(&h2) <= was);
                let since = s.aborted_at.as_ref().expect("aborted at").0;
                if sim.now >= since + secs(30) {
                    prop_assert_eq!(sim.size(&h2), 0);
                }
                prop_assert_eq!(sim.size(&h1), replicas);
            }
            Ok(())
        })?;
    }
}
