//! Measurements on tasks of their own, never in a reconcile: a provider that takes its whole
//! timeout (a black-hole URL, a slow Prometheus) holds one task, not a reconcile worker, so
//! every other run's gate goes on. A reconcile starts the measurements that are due and takes
//! the ones that have finished; a finished one wakes its run's reconcile through the channel
//! [`Pool::new`] returns. At most `at_once` measurements run together; the others wait for a
//! turn on their task. Conditions are evaluated on tokio's blocking pool, within
//! [`EVAL_TIMEOUT`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Semaphore;

use super::condition::Conditions;
use super::providers::MetricProvider;
use super::redact::Redactor;
use super::run::{self, Due};
use crate::api::analysis::{AnalysisPhase, AnalysisRun, AnalysisRunStatus, Measurement, Metric};

/// The longest the conditions may take over one result.
pub const EVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A finished measurement, for [`run::record`].
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub metric: String,
    pub provider: &'static str,
    pub measurement: Measurement,
}

/// Where a metric's results stood when its measurement started: a result is recorded only on a
/// status at the same mark, so it is never counted twice. Ordered: a status behind the mark has
/// not yet seen the write that started the measurement (the result waits for it); one ahead has
/// moved on (the result is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Mark {
    taken: i32,
    resuming: bool,
}

fn mark(status: &AnalysisRunStatus, metric: &str) -> Mark {
    let r = status.metric_results.iter().find(|r| r.name == metric);
    Mark {
        taken: r.map_or(0, |r| r.count + r.error),
        resuming: r
            .and_then(|r| r.measurements.last())
            .is_some_and(|m| m.phase == AnalysisPhase::Running),
    }
}

enum Slot {
    Measuring(Mark),
    Done(Mark, Finished),
}

/// (run uid, metric name).
type Key = (String, String);

/// The measurements in progress and finished, of every run.
#[derive(Clone)]
pub struct Pool<P> {
    provider: P,
    turns: Arc<Semaphore>,
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
    finished: mpsc::UnboundedSender<ObjectRef<AnalysisRun>>,
}

fn key(run: &AnalysisRun, metric: &str) -> Key {
    (run.uid().unwrap_or_default(), metric.to_string())
}

impl<P: MetricProvider + Clone + Send + Sync + 'static> Pool<P> {
    /// A pool measuring through `provider`, `at_once` at a time, and the runs to reconcile as
    /// their measurements finish.
    pub fn new(
        provider: P,
        at_once: usize,
    ) -> (Pool<P>, mpsc::UnboundedReceiver<ObjectRef<AnalysisRun>>) {
        let (finished, woken) = mpsc::unbounded();
        let pool = Pool {
            provider,
            turns: Arc::new(Semaphore::new(at_once.max(1))),
            slots: Arc::default(),
            finished,
        };
        (pool, woken)
    }

    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The measurements of `run` that have finished since they started on a status like
    /// `status`, kept until [`Pool::recorded`]: a write lost to a conflict offers them again
    /// rather than measuring again. One that started on a later status (this copy of the run is
    /// stale) waits for the next look; one that started on an earlier status (another write has
    /// moved on, so it is recorded already or was never wanted) is dropped.
    pub fn take(&self, run: &AnalysisRun, status: &AnalysisRunStatus) -> Vec<Finished> {
        let uid = run.uid().unwrap_or_default();
        let mut slots = self.slots.lock().expect("measurement slots");
        slots.retain(|(u, m), slot| {
            !(*u == uid && matches!(slot, Slot::Done(at, _) if mark(status, m) > *at))
        });
        slots
            .iter()
            .filter_map(|((u, m), slot)| match slot {
                Slot::Done(at, finished) if *u == uid && mark(status, m) == *at => {
                    Some(finished.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Lets go of `finished` results of `run` once a status holding them is written (or needed
    /// no write): until then [`Pool::take`] offers them again.
    pub fn recorded(&self, run: &AnalysisRun, finished: &[Finished]) {
        let uid = run.uid().unwrap_or_default();
        let mut slots = self.slots.lock().expect("measurement slots");
        for f in finished {
            let k = (uid.clone(), f.metric.clone());
            if matches!(slots.get(&k), Some(Slot::Done(_, done)) if done == f) {
                slots.remove(&k);
            }
        }
    }

    /// True while a measurement of `metric` of `run` is running or waiting to be taken.
    pub fn busy(&self, run: &AnalysisRun, metric: &str) -> bool {
        self.slots
            .lock()
            .expect("measurement slots")
            .contains_key(&key(run, metric))
    }

    /// Starts measuring each of `due` not being measured already, and returns at once.
    /// `status` must be one the API server has (written, or needing no write): a result waits
    /// for a status at least as far as the one it started on.
    pub fn start(
        &self,
        run: &Arc<AnalysisRun>,
        metrics: &[Metric],
        status: &AnalysisRunStatus,
        due: &[Due],
        redactor: &Redactor,
    ) {
        for d in due {
            let Some(metric) = metrics.iter().find(|m| m.name == d.metric) else {
                continue;
            };
            let k = key(run, &d.metric);
            let at = mark(status, &d.metric);
            {
                let mut slots = self.slots.lock().expect("measurement slots");
                if slots.contains_key(&k) {
                    continue;
                }
                slots.insert(k.clone(), Slot::Measuring(at));
            }
            let conditions = Conditions::compile(
                metric.success_condition.as_deref(),
                metric.failure_condition.as_deref(),
            )
            .unwrap_or_default();
            let task = Task {
                provider: self.provider.clone(),
                turns: self.turns.clone(),
                run: run.clone(),
                metric: metric.clone(),
                resume: d.resume.clone(),
                conditions,
                redactor: redactor.clone(),
            };
            let slots = self.slots.clone();
            let finished = self.finished.clone();
            tokio::spawn(async move {
                let run = task.run.clone();
                let done = task.measure().await;
                let mut slots = slots.lock().expect("measurement slots");
                // Forgotten (the run ended) or replaced: nobody wants this one.
                if matches!(slots.get(&k), Some(Slot::Measuring(a)) if *a == at) {
                    // A Job looked at again and still running wakes nobody: its next change
                    // (or the recheck) does, else the run would look at it in a loop.
                    let news = !(at.resuming && done.measurement.phase == AnalysisPhase::Running);
                    slots.insert(k, Slot::Done(at, done));
                    if news {
                        let _ = finished.unbounded_send(ObjectRef::from_obj(&*run));
                    }
                }
            });
        }
    }

    /// Drops what is known of `run`'s measurements: it ended or is gone.
    pub fn forget(&self, run: &AnalysisRun) {
        let uid = run.uid().unwrap_or_default();
        self.slots
            .lock()
            .expect("measurement slots")
            .retain(|(u, _), _| *u != uid);
    }
}

struct Task<P> {
    provider: P,
    turns: Arc<Semaphore>,
    run: Arc<AnalysisRun>,
    metric: Metric,
    resume: Option<Measurement>,
    conditions: Conditions,
    redactor: Redactor,
}

impl<P: MetricProvider> Task<P> {
    async fn measure(self) -> Finished {
        let _turn = self.turns.acquire_owned().await;
        let started = self
            .resume
            .as_ref()
            .and_then(|m| m.started_at.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        let outcome = self
            .provider
            .measure(&self.run, &self.metric, self.resume.as_ref())
            .await;
        let conditions = self.conditions;
        let judged = tokio::time::timeout(
            EVAL_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                run::measurement(outcome, &conditions, started, Timestamp::now())
            }),
        )
        .await;
        let error = |message: String| Measurement {
            phase: AnalysisPhase::Error,
            message: Some(message),
            started_at: Some(Time(started)),
            finished_at: Some(Time(Timestamp::now())),
            ..Default::default()
        };
        let mut measurement = match judged {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => error(format!("evaluating the conditions failed: {e}")),
            Err(_) => error(format!(
                "evaluating the conditions took longer than {}s: simplify them or narrow the \
                 result",
                EVAL_TIMEOUT.as_secs()
            )),
        };
        self.redactor.measurement(&mut measurement);
        Finished {
            metric: self.metric.name.clone(),
            provider: self.metric.provider.kind(),
            measurement,
        }
    }
}

/// The Rollout that owns `run` as its controller, by name and uid: only such runs are measured
/// unless standalone runs are allowed (`--allow-standalone-analysis-runs`).
pub fn owning_rollout(run: &AnalysisRun) -> Option<(String, String)> {
    run.owner_references()
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "Rollout"
                && o.api_version.starts_with("fledge.dev/")
        })
        .map(|o| (o.name.clone(), o.uid.clone()))
}

/// Why a run nobody's Rollout owns is not measured.
pub const STANDALONE_REFUSED: &str = "this AnalysisRun is not owned by a Rollout, and this \
     installation measures only runs that a Rollout creates (--allow-standalone-analysis-runs \
     is false): a run created directly would be measured from the controller's network position";

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::json;
    use tokio::sync::Notify;

    use super::*;
    use crate::analysis::value::{MetricValue, Outcome};
    use crate::api::analysis::MetricProvider as ProviderSpec;

    /// Answers 1 at once, except for metric "slow", which answers once the test lets it.
    #[derive(Clone)]
    struct Fake {
        release: Arc<Notify>,
    }

    impl MetricProvider for Fake {
        async fn measure(
            &self,
            _: &AnalysisRun,
            metric: &Metric,
            _: Option<&Measurement>,
        ) -> Outcome {
            if metric.name == "slow" {
                self.release.notified().await;
            }
            Outcome::Value(MetricValue::Number(1.0))
        }

        async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
            Ok(())
        }
    }

    fn run(uid: &str) -> Arc<AnalysisRun> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": uid, "namespace": "web", "uid": uid},
                "spec": {"metrics": []},
            }))
            .unwrap(),
        )
    }

    fn metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            success_condition: Some("result == 1".into()),
            provider: ProviderSpec {
                web: Some(Default::default()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn due(name: &str) -> Vec<Due> {
        vec![Due {
            metric: name.into(),
            resume: None,
        }]
    }

    /// A slow provider and a fast one in one pool with room for both: the fast run's
    /// measurement finishes and wakes its run while the slow one is still out, and starting
    /// either never waited for a provider.
    #[tokio::test]
    async fn a_slow_measurement_does_not_hold_up_a_fast_one() {
        let release = Arc::new(Notify::new());
        let (pool, mut woken) = Pool::new(
            Fake {
                release: release.clone(),
            },
            4,
        );
        let (a, b) = (run("a"), run("b"));
        let none = AnalysisRunStatus::default();
        let metrics = [metric("slow"), metric("fast")];
        pool.start(&a, &metrics, &none, &due("slow"), &Redactor::default());
        pool.start(&b, &metrics, &none, &due("fast"), &Redactor::default());
        let quick = Duration::from_secs(10);
        let first = tokio::time::timeout(quick, woken.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.name, "b");
        let got = pool.take(&b, &none);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].measurement.phase, AnalysisPhase::Successful);
        assert!(pool.take(&a, &none).is_empty());
        assert!(pool.busy(&a, "slow"), "still measuring");
        pool.start(&a, &metrics, &none, &due("slow"), &Redactor::default());
        release.notify_one();
        let second = tokio::time::timeout(quick, woken.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.name, "a");
        let got = pool.take(&a, &none);
        assert_eq!(got.len(), 1, "started once, not twice");
        pool.recorded(&a, &got);
        assert!(!pool.busy(&a, "slow"));
    }

    /// A pool whose measurement of "fast" of run "a", started on `status`, has finished.
    async fn finished_fast(status: &AnalysisRunStatus) -> (Pool<Fake>, Arc<AnalysisRun>) {
        let (pool, mut woken) = Pool::new(
            Fake {
                release: Arc::new(Notify::new()),
            },
            1,
        );
        let a = run("a");
        pool.start(
            &a,
            &[metric("fast")],
            status,
            &due("fast"),
            &Redactor::default(),
        );
        tokio::time::timeout(Duration::from_secs(10), woken.next())
            .await
            .unwrap();
        (pool, a)
    }

    /// A status with one result of "fast" recorded.
    fn one_fast_result() -> AnalysisRunStatus {
        let mut s = AnalysisRunStatus::default();
        s.metric_results.push(crate::api::analysis::MetricResult {
            name: "fast".into(),
            count: 1,
            ..Default::default()
        });
        s
    }

    /// A result that finished on a status another write has moved on from is dropped.
    #[tokio::test]
    async fn a_result_for_a_status_that_moved_on_is_dropped() {
        let (pool, a) = finished_fast(&AnalysisRunStatus::default()).await;
        assert!(pool.take(&a, &one_fast_result()).is_empty());
        assert!(!pool.busy(&a, "fast"));
    }

    /// A copy of the run older than the status the measurement started on (the cache has not
    /// seen the write yet) leaves the result for the next look.
    #[tokio::test]
    async fn a_result_waits_for_a_stale_copy_to_catch_up() {
        let written = one_fast_result();
        let (pool, a) = finished_fast(&written).await;
        assert!(pool.take(&a, &AnalysisRunStatus::default()).is_empty());
        assert!(pool.busy(&a, "fast"), "kept");
        assert_eq!(pool.take(&a, &written).len(), 1);
    }

    /// A result whose status write was lost (a 409 from a copy of the run that had not yet seen
    /// the write before it) is offered again on the next look, not measured a second time; once
    /// its status is written it is gone.
    #[tokio::test]
    async fn a_result_is_kept_until_its_status_is_written() {
        let none = AnalysisRunStatus::default();
        let (pool, a) = finished_fast(&none).await;
        let first = pool.take(&a, &none);
        assert_eq!(first.len(), 1);
        assert_eq!(
            pool.take(&a, &none),
            first,
            "the write was lost: offered again"
        );
        pool.recorded(&a, &first);
        assert!(pool.take(&a, &none).is_empty());
        assert!(!pool.busy(&a, "fast"));
    }

    #[test]
    fn only_a_rollout_controller_owner_counts() {
        let mut r: AnalysisRun = (*run("a")).clone();
        assert_eq!(owning_rollout(&r), None);
        r.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({
                "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout", "name": "web",
                "uid": "u1", "controller": true,
            }))
            .unwrap(),
        ]);
        assert_eq!(owning_rollout(&r), Some(("web".into(), "u1".into())));
        r.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Rollout", "name": "web", "uid": "u1",
                "controller": true,
            }))
            .unwrap(),
        ]);
        assert_eq!(owning_rollout(&r), None);
    }
}
