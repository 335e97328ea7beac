//! Replica counts at the schema's maximum and beyond it: the replica arithmetic never overflows
//! (a panic in debug builds, a count wrapped to negative in release builds), and a count beyond
//! the maximum (a Rollout stored before the schema had one) is an InvalidSpec naming its field.

use proptest::prelude::*;

use crate::api::conditions as cond;
use crate::api::{Limit, scaled_value};
use crate::api::{MAX_REPLICAS, Phase, RequestAction, Rollout};
use crate::rollout::canary::{Bounds, next_sizes};
use crate::rollout::fixtures::*;
use crate::rollout::plan::{Action, plan};
use crate::traffic::Found;

/// 21_474_837 * 100 is the first product past i32::MAX: the smallest replica count whose 100%
/// overflowed.
const FIRST_OVERFLOW: i32 = 21_474_837;

#[test]
fn percentages_of_replica_counts_past_21_million_are_exact() {
    for total in [FIRST_OVERFLOW, i32::MAX] {
        assert_eq!(
            scaled_value(Some(&pct(100)), total, Limit::MaxSurge),
            Ok(total)
        );
        assert_eq!(
            scaled_value(Some(&pct(100)), total, Limit::MaxUnavailable),
            Ok(total)
        );
        assert_eq!(scaled_value(Some(&pct(0)), total, Limit::MaxSurge), Ok(0));
    }
    // Unset maxSurge is 25% rounded up, as Deployments do.
    assert_eq!(
        scaled_value(None, i32::MAX, Limit::MaxSurge),
        Ok(536_870_912)
    );
    assert_eq!(
        scaled_value(None, FIRST_OVERFLOW, Limit::MaxSurge),
        Ok(5_368_710)
    );
    assert_eq!(
        scaled_value(Some(&pct(50)), i32::MAX, Limit::MaxUnavailable),
        Ok(1_073_741_823)
    );
    assert_eq!(
        scaled_value(Some(&pct(1)), i32::MAX, Limit::MaxSurge),
        Ok(21_474_837)
    );
    assert_eq!(
        scaled_value(Some(&int(i32::MAX)), 3, Limit::MaxSurge),
        Ok(i32::MAX)
    );
}

proptest! {
    /// Any percentage of any count is the exact rounded fraction, between 0 and the count.
    #[test]
    fn a_percentage_of_any_replica_count_is_the_exact_rounded_fraction(
        total in 0..=i32::MAX,
        p in 0..=100i32,
        surge in any::<bool>(),
    ) {
        let exact = i128::from(total) * i128::from(p);
        let want = if surge { (exact + 99) / 100 } else { exact / 100 };
        let limit = if surge { Limit::MaxSurge } else { Limit::MaxUnavailable };
        let got = scaled_value(Some(&pct(p)), total, limit).unwrap();
        prop_assert_eq!(i128::from(got), want);
        prop_assert!((0..=total).contains(&got));
    }

    /// The sizes of one move stay between 0 and what is asked or observed, whatever the limits
    /// and whatever sizes ReplicaSets were given out of band.
    #[test]
    fn one_move_of_any_sizes_and_limits_stays_in_range(
        replicas in 0..=MAX_REPLICAS,
        surge in prop_oneof![Just(i32::MAX), 0..=i32::MAX],
        unavailable in prop_oneof![Just(i32::MAX), 0..=i32::MAX],
        c in prop_oneof![Just(i32::MAX), 0..=i32::MAX],
        s in prop_oneof![Just(i32::MAX), 0..=i32::MAX],
        c_target in 0..=MAX_REPLICAS,
        s_target in 0..=MAX_REPLICAS,
    ) {
        let b = Bounds { replicas, surge, unavailable };
        let (c2, s2) = next_sizes(b, (c, c), (s, s), (c_target, s_target));
        prop_assert!((0..=c_target).contains(&c2), "canary {}", c2);
        prop_assert!(s2 >= s_target.min(s) && s2 <= s.max(s_target), "stable {}", s2);
    }
}

#[test]
fn a_max_surge_of_i32_max_lets_the_canary_grow_at_once_without_overflowing() {
    let b = Bounds {
        replicas: 10,
        surge: i32::MAX,
        unavailable: 0,
    };
    assert_eq!(next_sizes(b, (0, 0), (10, 10), (10, 10)), (10, 10));
    // ReplicaSets scaled out of band to i32::MAX pods each: both come down to their sizes at
    // once, as the canary's 5 available pods and the stable's 5 keep 10 available.
    let b = Bounds {
        replicas: 10,
        surge: 1,
        unavailable: 0,
    };
    assert_eq!(
        next_sizes(b, (i32::MAX, i32::MAX), (i32::MAX, i32::MAX), (5, 5)),
        (5, 5)
    );
}

#[test]
fn a_canary_of_the_maximum_replicas_with_a_max_surge_of_i32_max_goes_through_every_weight() {
    let rollout = RolloutBuilder::canary()
        .replicas(MAX_REPLICAS)
        .max_surge(int(i32::MAX))
        .max_unavailable(pct(100))
        .steps([w(1), pause_forever(), w(100), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    for (canary, stable, weight) in [(10_000, 990_000, 1), (MAX_REPLICAS, 0, 100)] {
        sim.settle();
        assert_eq!(sim.status().phase, Some(Phase::Paused));
        assert_eq!(sim.sizes(&h2, &h1), (canary, stable));
        assert_eq!(sim.status().canary_weight, Some(weight));
        sim.request(RequestAction::Promote);
    }
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(h2.as_str()));
    assert_eq!(sim.status().replicas, Some(MAX_REPLICAS));
}

#[test]
fn a_routed_canary_of_the_maximum_replicas_with_dynamic_stable_scale_goes_through_every_weight() {
    let mut rollout = RolloutBuilder::canary()
        .replicas(MAX_REPLICAS)
        .gateway("web")
        .steps([w(1), pause_forever(), w(100), pause_forever()])
        .build();
    if let Some(c) = rollout.spec.strategy.canary.as_mut() {
        c.dynamic_stable_scale = Some(true);
    }
    let mut sim = Sim::new(rollout);
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    sim.set_image("web:2");
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    for (canary, weight) in [(10_000, 1), (MAX_REPLICAS, 100)] {
        sim.settle();
        assert_eq!(sim.status().phase, Some(Phase::Paused));
        assert_eq!(sim.size(&h2), canary);
        assert_eq!(sim.status().canary_weight, Some(weight));
        assert!(sim.size(&h1) <= MAX_REPLICAS);
        sim.request(RequestAction::Promote);
    }
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(h2.as_str()));
}

#[test]
fn blue_green_of_the_maximum_replicas_previews_and_switches() {
    let rollout = RolloutBuilder::blue_green()
        .replicas(MAX_REPLICAS)
        .preview_replicas(MAX_REPLICAS)
        .auto_promotion(false)
        .build();
    let mut sim = updating(rollout);
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    assert_eq!(sim.sizes(&h2, &h1), (MAX_REPLICAS, MAX_REPLICAS));
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(h2.as_str()));
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(h2.as_str()));
}

/// The InvalidSpec message of planning a new revision of `rollout` after `stored` changed it as
/// a Rollout stored before the schema had a maximum could be; checks that nothing was scaled.
fn invalid_spec_message(rollout: Rollout, stored: impl FnOnce(&mut Rollout)) -> String {
    let mut sim = updating(rollout);
    stored(&mut sim.rollout);
    let p = plan(&sim.rollout, &sim.world, sim.now);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyReplicaSet { .. })),
        "scaled with an invalid spec: {:#?}",
        p.actions
    );
    assert_eq!(p.status.phase, Some(Phase::Degraded));
    let c = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == cond::INVALID_SPEC && c.status == "True")
        .unwrap_or_else(|| panic!("no InvalidSpec: {:#?}", p.status));
    c.message.clone()
}

#[test]
fn replica_counts_beyond_the_maximum_stored_before_the_schema_had_one_are_an_invalid_spec() {
    let canary = || {
        RolloutBuilder::canary()
            .replicas(3)
            .steps([w(100), pause_forever()])
            .build()
    };
    for replicas in [MAX_REPLICAS + 1, FIRST_OVERFLOW, i32::MAX] {
        assert_eq!(
            invalid_spec_message(canary(), |r| r.spec.replicas = Some(replicas)),
            format!("replicas: must be at most {MAX_REPLICAS}, not {replicas}")
        );
    }
    assert_eq!(
        invalid_spec_message(canary(), |r| {
            r.spec.strategy.canary.as_mut().unwrap().steps[0] = scale_replicas(i32::MAX);
        }),
        format!(
            "strategy.canary.steps[0].setCanaryScale.replicas: must be at most {MAX_REPLICAS}, \
             not {}",
            i32::MAX
        )
    );
    let blue_green = RolloutBuilder::blue_green().replicas(3).build();
    assert_eq!(
        invalid_spec_message(blue_green, |r| {
            r.spec
                .strategy
                .blue_green
                .as_mut()
                .unwrap()
                .preview_replica_count = Some(FIRST_OVERFLOW);
        }),
        format!(
            "strategy.blueGreen.previewReplicaCount: must be at most {MAX_REPLICAS}, not \
             {FIRST_OVERFLOW}"
        )
    );
}

#[test]
fn replica_sets_scaled_out_of_band_to_i32_max_pods_are_counted_and_brought_back() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(rollout);
    sim.settle();
    let (h1, h2) = (hash_of("web:1"), hash_of("web:2"));
    assert_eq!(sim.sizes(&h2, &h1), (2, 2));
    for rs in &mut sim.world.replica_sets {
        rs.replicas = i32::MAX;
        rs.current = i32::MAX;
        rs.ready = i32::MAX;
        rs.available = i32::MAX;
    }
    let p = plan(&sim.rollout, &sim.world, sim.now);
    assert_eq!(p.status.replicas, Some(i32::MAX), "saturated, not wrapped");
    assert_eq!(p.status.available_replicas, Some(i32::MAX));
    // The canary comes back to its size; the stable keeps what availability needs and comes
    // back once the canary's extra pods are gone.
    assert!(
        p.actions.contains(&Action::ApplyReplicaSet {
            hash: h2.clone(),
            replicas: 2
        }),
        "{:#?}",
        p.actions
    );
    sim.settle();
    assert_eq!(sim.sizes(&h2, &h1), (2, 2));
    assert_eq!(sim.status().phase, Some(Phase::Paused));
}
