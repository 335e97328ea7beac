//! Delivery: a queue and a task per channel, so a slow or dead service never holds a reconcile
//! nor another channel. Each message is read again from the Rollout before it is sent (it is
//! sent only while its record still owes it to the channel), sent at the channel's rate, retried
//! with backoff a bounded number of times, and then marked sent or failed in the Rollout's status
//! by a write guarded by the resourceVersion it read.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::payload::Message;
use super::send::{self, Failure};
use crate::api::notification::{NotificationRecord, Subscription};
use crate::api::{Rollout, RolloutStatus};
use crate::telemetry::Metrics;

/// Tries per message before it is given up as failed.
pub const MAX_ATTEMPTS: u32 = 8;
/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Messages a channel may send at once before its rate applies.
const BURST: f64 = 5.0;

/// One message owed to one channel.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Job {
    namespace: String,
    rollout: String,
    key: String,
    target: String,
}

impl Job {
    /// The channel's queue: a namespaced channel is one per namespace.
    fn queue(&self) -> String {
        if self.target.starts_with("ClusterNotificationChannel/") {
            self.target.clone()
        } else {
            format!("{}/{}", self.namespace, self.target)
        }
    }
}

/// Sends what Rollouts' statuses owe. One per controller (the leader).
pub struct Notifier {
    client: kube::Client,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    events: crate::runtime::Events,
    /// The controller's default subscriptions (`--notification-defaults`).
    pub defaults: Vec<Subscription>,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    in_flight: Mutex<HashSet<Job>>,
    stopping: AtomicBool,
    /// Messages between the start of their send and the write that records it.
    sending: AtomicUsize,
}

impl Notifier {
    pub fn new(
        client: kube::Client,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
        events: crate::runtime::Events,
        defaults: Vec<Subscription>,
    ) -> Arc<Notifier> {
        Arc::new(Notifier {
            client,
            http,
            metrics,
            events,
            defaults,
            queues: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
            sending: AtomicUsize::new(0),
        })
    }

    /// Queues every message `status` owes that is not queued yet. Never waits.
    pub fn offer(self: &Arc<Self>, namespace: &str, rollout: &str, status: Option<&RolloutStatus>) {
        let Some(status) = status else { return };
        for r in &status.notifications {
            for target in &r.pending {
                let job = Job {
                    namespace: namespace.to_string(),
                    rollout: rollout.to_string(),
                    key: r.key.clone(),
                    target: target.clone(),
                };
                if !self.in_flight.lock().expect("lock").insert(job.clone()) {
                    continue;
                }
                let mut queues = self.queues.lock().expect("lock");
                let queue = queues.entry(job.queue()).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(self.clone().work(rx));
                    tx
                });
                if queue.send(job.clone()).is_err() {
                    self.in_flight.lock().expect("lock").remove(&job);
                }
            }
        }
    }

    /// Stops sending, and waits (a little) for the messages already sent to be recorded, so a
    /// normal restart sends none of them again.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn work(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut bucket = Bucket::new();
        while let Some(job) = rx.recv().await {
            if !self.stopping.load(Ordering::SeqCst) {
                self.deliver(&job, &mut bucket).await;
            }
            self.in_flight.lock().expect("lock").remove(&job);
        }
    }

    async fn deliver(&self, job: &Job, bucket: &mut Bucket) {
        let api: Api<Rollout> = Api::namespaced(self.client.clone(), &job.namespace);
        let (rollout, record) = match owed(&api, job).await {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(e) => {
                // The next reconcile offers it again.
                debug!(rollout = %job.rollout, error = %e, "notification: cannot read the rollout");
                return;
            }
        };
        let message = Message::from_record(&job.namespace, &job.rollout, &record);
        let event = record.event.as_str();
        let mut kind = "unknown";
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let sent = match send::resolve(&self.client, &job.namespace, &job.target).await {
                Ok(resolved) => {
                    kind = resolved.config.kind.as_str();
                    bucket.take(resolved.config.rate_per_minute).await;
                    self.sending.fetch_add(1, Ordering::SeqCst);
                    let sent = send::send(&self.http, &resolved, &message).await;
                    if sent.is_err() {
                        self.sending.fetch_sub(1, Ordering::SeqCst);
                    }
                    sent
                }
                Err(f) => Err(f),
            };
            match sent {
                Ok(answer) => break Ok(answer),
                Err(Failure { text, retry: true }) if attempt < MAX_ATTEMPTS => {
                    let wait = backoff(attempt);
                    debug!(rollout = %job.rollout, channel = %job.target, %event, attempt, error = %text, ?wait, "notification not delivered, retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(f) => break Err(f.text),
            }
        };
        match result {
            Ok(answer) => {
                let marked = self.mark(&api, job, true).await;
                self.sending.fetch_sub(1, Ordering::SeqCst);
                self.metrics.notification(kind, event, "sent");
                info!(rollout = %job.rollout, namespace = %job.namespace, channel = %job.target, %event, key = %job.key, status = answer.status, attempt, "notification sent");
                if let Err(e) = marked {
                    warn!(rollout = %job.rollout, channel = %job.target, error = %e, "notification sent but not recorded");
                }
            }
            Err(text) => {
                self.metrics.notification(kind, event, "failed");
                let note = format!(
                    "{event} notification to {} ({kind}) failed after {attempt} attempt(s): {text}",
                    job.target
                );
                warn!(rollout = %job.rollout, namespace = %job.namespace, "{note}");
                let warning = Event {
                    type_: EventType::Warning,
                    reason: "NotificationFailed".into(),
                    note: Some(note),
                    action: "Notify".into(),
                    secondary: None,
                };
                self.events.publish(warning, rollout.object_ref(&()));
                if let Err(e) = self.mark(&api, job, false).await {
                    warn!(rollout = %job.rollout, channel = %job.target, error = %e, "notification failure not recorded");
                }
            }
        }
    }

    /// Moves the channel from `pending` to `sent` (or `failed`) in the record, retrying when the
    /// Rollout changed meanwhile.
    async fn mark(&self, api: &Api<Rollout>, job: &Job, delivered: bool) -> Result<(), String> {
        for _ in 0..10 {
            let rollout = match fresh(api, &job.rollout).await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            let mut records = rollout
                .status
                .as_ref()
                .map(|s| s.notifications.clone())
                .unwrap_or_default();
            let Some(r) = records.iter_mut().find(|r| r.key == job.key) else {
                return Ok(());
            };
            if !r.pending.contains(&job.target) {
                return Ok(());
            }
            r.pending.retain(|t| *t != job.target);
            if delivered {
                r.sent.push(job.target.clone());
            } else {
                r.failed.push(job.target.clone());
            }
            let patch: json_patch::Patch = serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": rollout.resource_version()},
                {"op": "replace", "path": "/status/notifications", "value": records},
            ]))
            .map_err(|e| e.to_string())?;
            match api
                .patch_status(
                    &job.rollout,
                    &PatchParams::default(),
                    &Patch::Json::<()>(patch),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the Rollout kept changing".into())
    }
}

/// The Rollout and the record, when the record still owes the message to the channel.
async fn owed(
    api: &Api<Rollout>,
    job: &Job,
) -> Result<Option<(Rollout, NotificationRecord)>, kube::Error> {
    let Some(rollout) = fresh(api, &job.rollout).await? else {
        return Ok(None);
    };
    let record = rollout
        .status
        .as_ref()
        .and_then(|s| s.notifications.iter().find(|r| r.key == job.key))
        .filter(|r| r.pending.contains(&job.target))
        .cloned();
    Ok(record.map(|r| (rollout, r)))
}

/// The Rollout as the API server has it now, not as the watch cache last saw it (a cache behind
/// a delivery just recorded would send it again). A list by name, not a get: the controller's
/// role has list and watch on Rollouts, never get.
async fn fresh(api: &Api<Rollout>, name: &str) -> Result<Option<Rollout>, kube::Error> {
    let params = kube::api::ListParams::default().fields(&format!("metadata.name={name}"));
    Ok(api.list(&params).await?.items.into_iter().next())
}

/// 1s, 2s, 4s, ... up to [`MAX_BACKOFF`].
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(10)).min(MAX_BACKOFF)
}

/// A token bucket: [`BURST`] messages at once, then the channel's rate.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tokens: BURST,
            last: Instant::now(),
        }
    }

    async fn take(&mut self, per_minute: i32) {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let burst = BURST.min(f64::from(per_minute.max(1)));
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(burst);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.last = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_retries_outlast_a_30s_outage() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
        let waited: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(waited > Duration::from_secs(60), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_a_burst_through_then_keeps_the_rate() {
        let mut b = Bucket::new();
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            b.take(60).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        b.take(60).await;
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }
}
