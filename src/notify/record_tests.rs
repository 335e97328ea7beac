//! Which notifications real plans make owed: the planner runs in a [`Sim`], and each reconcile's
//! plan goes through [`record`] as the controller does before it writes the status.

use super::*;
use crate::api::RequestAction;
use crate::api::analysis::{AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, MetricResult};
use crate::api::notification::{RolloutNotifications, Severity};
use crate::rollout::fixtures::*;

fn sub(channel: &str, events: &[NotificationEvent], severity: Option<Severity>) -> Subscription {
    Subscription {
        channel: channel.into(),
        cluster_scope: None,
        events: events.to_vec(),
        severity,
    }
}

fn subscribe(sim: &mut Sim, subs: Vec<Subscription>) {
    sim.rollout.spec.notifications = Some(RolloutNotifications {
        subscriptions: subs,
        skip_defaults: None,
    });
}

/// One reconcile as the controller makes it: plan, record, write. Returns the records added.
fn tick(sim: &mut Sim, failed: &[&AnalysisRun]) -> Vec<NotificationRecord> {
    let old = sim.rollout.status.clone().unwrap_or_default();
    let plan = sim.tick();
    let mut status = plan.status.clone();
    let dropped = record(
        &sim.rollout,
        &old,
        &mut status,
        &plan.events,
        &[],
        failed,
        sim.now,
    );
    assert!(dropped.is_empty());
    sim.rollout.status = Some(status.clone());
    status
        .notifications
        .into_iter()
        .filter(|r| !old.notifications.iter().any(|o| o.key == r.key))
        .collect()
}

fn settle(sim: &mut Sim, failed: &[&AnalysisRun]) -> Vec<NotificationRecord> {
    let mut all = Vec::new();
    for _ in 0..50 {
        let before = sim.rollout.status.clone();
        let added = tick(sim, failed);
        let quiet = added.is_empty() && before == sim.rollout.status;
        all.extend(added);
        if quiet {
            return all;
        }
    }
    panic!("no fixpoint");
}

fn events(records: &[NotificationRecord]) -> Vec<NotificationEvent> {
    records.iter().map(|r| r.event).collect()
}

#[test]
fn subscriptions_match_by_event_and_least_severity() {
    let all = sub("a", &[], None);
    assert!(NotificationEvent::ALL.iter().all(|e| all.wants(*e)));
    let errors = sub("a", &[], Some(Severity::Error));
    assert!(errors.wants(NotificationEvent::Aborted));
    assert!(!errors.wants(NotificationEvent::Paused));
    assert!(!errors.wants(NotificationEvent::Promoted));
    let some = sub("a", &[NotificationEvent::Promoted], Some(Severity::Warning));
    assert!(
        !some.wants(NotificationEvent::Promoted),
        "below the severity"
    );
    let some = sub("a", &[NotificationEvent::Paused], None);
    assert!(some.wants(NotificationEvent::Paused) && !some.wants(NotificationEvent::Aborted));
    assert_eq!(sub("a", &[], None).target(), "NotificationChannel/a");
    let mut cluster = sub("p", &[], None);
    cluster.cluster_scope = Some(true);
    assert_eq!(cluster.target(), "ClusterNotificationChannel/p");
}

#[test]
fn defaults_apply_unless_the_rollout_skips_them() {
    let mut rollout = RolloutBuilder::canary().build();
    let defaults = vec![sub("platform", &[], None)];
    assert_eq!(subscriptions(&rollout, &defaults).len(), 1);
    rollout.spec.notifications = Some(RolloutNotifications {
        subscriptions: vec![sub("team", &[], None)],
        skip_defaults: None,
    });
    assert_eq!(subscriptions(&rollout, &defaults).len(), 2);
    rollout.spec.notifications.as_mut().unwrap().skip_defaults = Some(true);
    let subs = subscriptions(&rollout, &defaults);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].channel, "team");
}

#[test]
fn a_canary_with_a_manual_pause_tells_each_event_once_with_the_promote_command() {
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(4)
            .steps([w(25), pause_forever(), w(50)])
            .build(),
    );
    subscribe(&mut sim, vec![sub("team", &[], None)]);
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    let added = settle(&mut sim, &[]);
    assert_eq!(
        events(&added),
        [
            NotificationEvent::NewRevision,
            NotificationEvent::StepCompleted,
            NotificationEvent::Paused,
        ]
    );
    let paused = &added[2];
    let attempt = sim.status().analysis_attempt.unwrap_or(0);
    assert_eq!(paused.key, format!("{v2}/{attempt}/Paused/1"));
    assert_eq!(
        paused.details.get("command").map(String::as_str),
        Some("kubectl fledge promote web -n shop")
    );
    assert!(
        paused
            .message
            .contains("kubectl fledge promote web -n shop"),
        "{}",
        paused.message
    );
    assert_eq!(paused.pending, ["NotificationChannel/team"]);
    assert_eq!(added[1].key, format!("{v2}/{attempt}/StepCompleted/0"));

    sim.request(RequestAction::Promote);
    let added = settle(&mut sim, &[]);
    assert_eq!(
        events(&added),
        [
            NotificationEvent::StepCompleted,
            NotificationEvent::Promoted
        ]
    );
    // The promote itself ended the pause (a PromoteRequested Event); the walk completed step 2.
    assert_eq!(added[0].details.get("step").map(String::as_str), Some("2"));
    // A fixpoint adds nothing, and every key is recorded once.
    assert!(tick(&mut sim, &[]).is_empty());
    let keys: Vec<&str> = sim
        .status()
        .notifications
        .iter()
        .map(|r| r.key.as_str())
        .collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique);
}

fn failed_run(name: &str) -> AnalysisRun {
    let metric: Metric = serde_yaml::from_str(
        "{name: errors, successCondition: result < 0.05, failureCondition: result >= 0.05, provider: {prometheus: {address: x, query: y}}}",
    )
    .unwrap();
    let mut run = AnalysisRun::new(
        name,
        AnalysisRunSpec {
            metrics: vec![metric],
            ..Default::default()
        },
    );
    run.status = Some(AnalysisRunStatus {
        phase: Some(AnalysisPhase::Failed),
        metric_results: vec![MetricResult {
            name: "errors".into(),
            phase: AnalysisPhase::Failed,
            measurements: vec![
                Measurement {
                    phase: AnalysisPhase::Successful,
                    value: Some("0.01".into()),
                    ..Default::default()
                },
                Measurement {
                    phase: AnalysisPhase::Failed,
                    value: Some("0.5".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    });
    run
}

#[test]
fn a_failed_analysis_pages_once_per_channel_with_the_metric_value_and_condition() {
    let mut sim = with_errors_template(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([w(50), analysis_step()])
            .build(),
    );
    subscribe(
        &mut sim,
        vec![
            // Everything: the failure itself, not the abort it causes as well.
            sub("team", &[], None),
            // Only aborts: the abort, carrying the failed metric.
            sub("pager", &[NotificationEvent::Aborted], None),
            // Only successes: nothing.
            sub("releases", &[NotificationEvent::Promoted], None),
        ],
    );
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    settle(&mut sim, &[]);
    let attempt = sim.status().analysis_attempt.unwrap_or(0);
    let name = crate::rollout::gates::run_name(
        "web",
        &v2,
        crate::rollout::gates::RunKind::Step(1),
        attempt,
    );
    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    let run = failed_run(&name);
    let added = tick(&mut sim, &[&run]);
    assert_eq!(
        events(&added),
        [
            NotificationEvent::AnalysisFailed,
            NotificationEvent::Aborted
        ]
    );
    let (failed, aborted) = (&added[0], &added[1]);
    assert_eq!(failed.pending, ["NotificationChannel/team"]);
    assert_eq!(aborted.pending, ["NotificationChannel/pager"]);
    for r in [failed, aborted] {
        assert_eq!(r.details.get("metric").map(String::as_str), Some("errors"));
        assert_eq!(r.details.get("value").map(String::as_str), Some("0.5"));
        assert_eq!(
            r.details.get("condition").map(String::as_str),
            Some("result >= 0.05")
        );
    }
    assert!(
        aborted.message.starts_with("aborted"),
        "{}",
        aborted.message
    );
    assert!(
        settle(&mut sim, &[&run]).is_empty(),
        "the abort is told once"
    );
}

#[test]
fn an_abort_request_says_who_asked() {
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([w(50), pause_forever()])
            .build(),
    );
    subscribe(&mut sim, vec![sub("pager", &[], Some(Severity::Error))]);
    sim.set_image("web:2");
    assert!(
        settle(&mut sim, &[]).is_empty(),
        "nothing at error severity yet"
    );
    sim.request(RequestAction::Abort);
    let added = tick(&mut sim, &[]);
    assert_eq!(events(&added), [NotificationEvent::Aborted]);
    assert!(
        added[0].message.contains("abort requested by alice"),
        "{}",
        added[0].message
    );
}

#[test]
fn blue_green_without_auto_promotion_waits_for_a_person() {
    let mut sim = Sim::healthy(RolloutBuilder::blue_green().auto_promotion(false).build());
    subscribe(
        &mut sim,
        vec![sub("team", &[NotificationEvent::Paused], None)],
    );
    sim.set_image("web:2");
    let added = settle(&mut sim, &[]);
    assert_eq!(events(&added), [NotificationEvent::Paused]);
    assert!(
        added[0]
            .message
            .contains("kubectl fledge promote web -n shop")
    );
}

#[test]
fn without_subscriptions_nothing_is_recorded() {
    let mut sim = Sim::healthy(RolloutBuilder::canary().steps([w(50)]).build());
    sim.set_image("web:2");
    assert!(settle(&mut sim, &[]).is_empty());
    assert!(sim.status().notifications.is_empty());
}

#[test]
fn records_are_bounded_delivered_first_and_owed_ones_reported_when_dropped() {
    let record = |i: usize, pending: bool| NotificationRecord {
        key: format!("r/{i}"),
        event: NotificationEvent::StepCompleted,
        revision: "r".into(),
        message: String::new(),
        details: BTreeMap::new(),
        time: Time(t0()),
        pending: if pending {
            vec!["NotificationChannel/a".into()]
        } else {
            vec![]
        },
        sent: Vec::new(),
        failed: Vec::new(),
    };
    let mut records: Vec<_> = (0..MAX_RECORDS).map(|i| record(i, i % 2 == 0)).collect();
    records.push(record(100, true));
    assert!(bound(&mut records).is_empty());
    assert_eq!(records.len(), MAX_RECORDS);
    assert!(
        !records.iter().any(|r| r.key == "r/1"),
        "the oldest delivered went"
    );
    let mut owed: Vec<_> = (0..MAX_RECORDS + 2).map(|i| record(i, true)).collect();
    let dropped = bound(&mut owed);
    assert_eq!(dropped.len(), 2);
    assert_eq!(owed[0].key, "r/2");
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let text = "é".repeat(MAX_MESSAGE_BYTES);
    let cut = capped(text);
    assert!(cut.len() <= MAX_MESSAGE_BYTES && cut.ends_with("..."));
}
