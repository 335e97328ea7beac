//! kstatus conditions and the log line of a plan.

use super::*;

// 13. kstatus (also checked at every reconcile of every Sim).

#[test]
fn kstatus_conditions_follow_the_phase_and_generation() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = Sim::healthy(rollout);
    let s = sim.status();
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(s, cond::READY).0, "True");
    assert_eq!(condition(s, cond::RECONCILING).0, "False");
    assert_eq!(
        condition(s, cond::AVAILABLE),
        ("True", cond::REASON_AVAILABLE)
    );

    sim.set_image("web:2");
    let p = sim.reconcile();
    assert_eq!(p.status.observed_generation, Some(2));
    assert_eq!(condition(&p.status, cond::READY).0, "False");
    assert_eq!(
        condition(&p.status, cond::RECONCILING),
        ("True", cond::REASON_PROGRESSING)
    );
    sim.settle();
    let s = sim.status();
    assert_eq!(s.phase, Some(Phase::Paused));
    assert_eq!(
        condition(s, cond::RECONCILING),
        ("True", cond::REASON_PAUSED)
    );
    assert_eq!(condition(s, cond::PAUSED).0, "True");
    assert_eq!(condition(s, cond::STALLED).0, "False");
}

/// Logs name each write in a few words: a route's whole document never goes to the info log.
#[test]
fn action_summaries_are_short_and_leave_out_bodies() {
    let key = crate::traffic::ObjectKey {
        kind: crate::traffic::Kind::HttpRoute,
        name: "web".into(),
    };
    let actions = vec![
        Action::ApplyRoute {
            key,
            body: serde_json::json!({"spec": {"rules": [{"backendRefs": [{"name": "web-canary", "weight": 20}]}]}}),
        },
        Action::ApplyReplicaSet {
            hash: "abc".into(),
            replicas: 3,
        },
    ];
    assert_eq!(
        crate::rollout::plan::summary(&actions),
        r#"apply HTTPRoute "web"; scale abc to 3"#
    );
}
