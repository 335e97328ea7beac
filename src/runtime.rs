//! What the Rollout and AnalysisRun controllers share in how they run: who records their Events,
//! and what becomes of the results their reconciles leave on the controller's stream.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::telemetry::Metrics;

/// Events waiting for the API server beyond this are dropped (and counted), as client-go's
/// event broadcaster does with its queue of 1,000.
const QUEUED_EVENTS: usize = 1000;

/// Where the controllers' Events go. An Event is a courtesy: publishing one never waits for the
/// API server, so a reconcile (an abort, say) is never held up behind it. A task of its own sends
/// them in order, through a client with a request budget of its own (`--kube-event-qps`), so a
/// thousand rollouts stepping at once spend the main budget on their own state and not on Events.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    metrics: Arc<Metrics>,
}

impl Events {
    /// Starts the sender. Reported by `fledge`, with the pod's name (`POD_NAME`, set by the
    /// chart) as the instance, so Events say which replica wrote them.
    pub fn start(client: kube::Client, metrics: Arc<Metrics>) -> Events {
        let reporter = Reporter {
            controller: "fledge".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client, reporter);
        let (queue, mut queued) = mpsc::channel::<(Event, ObjectReference)>(QUEUED_EVENTS);
        tokio::spawn(async move {
            while let Some((event, reference)) = queued.recv().await {
                if let Err(error) = recorder.publish(&event, &reference).await {
                    warn!(%error, reason = %event.reason, "could not record event");
                }
            }
        });
        Events { queue, metrics }
    }

    /// Queues `event` about `reference`; drops it when the queue is full.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        if let Err(mpsc::error::TrySendError::Full((event, _))) =
            self.queue.try_send((event, reference))
        {
            debug!(reason = %event.reason, "event dropped: too many waiting");
            self.metrics.event_dropped();
        }
    }
}

/// Runs a controller's stream of results to its end. Reconcile errors were logged (and counted)
/// by the error policy; what is left to log are the controller's own: a watch that failed, an
/// object gone before its turn. `name` says which controller, in the log line.
pub async fn drain<T, E>(
    results: impl Stream<Item = Result<T, controller::Error<E, watcher::Error>>>,
    name: &'static str,
) where
    E: std::error::Error + 'static,
{
    results
        .for_each(|result| {
            if let Err(error) = result {
                match error {
                    controller::Error::ReconcilerFailed(..) => {}
                    other => warn!(error = %other, "{name}"),
                }
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::events::EventType;
    use tower_test::mock;

    use super::*;

    fn event(n: usize) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "StepCompleted".into(),
            note: Some(format!("step {n}")),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[tokio::test]
    async fn publishing_never_waits_for_the_api_server_and_drops_beyond_the_queue() {
        // An API server that takes the first request and never answers it.
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let metrics = Arc::new(Metrics::new());
        let events = Events::start(kube::Client::new(service, "default"), metrics.clone());
        let reference = ObjectReference {
            name: Some("app".into()),
            namespace: Some("default".into()),
            ..ObjectReference::default()
        };
        events.publish(event(0), reference.clone());
        let (request, _never_answered) =
            tokio::time::timeout(std::time::Duration::from_secs(10), handle.next_request())
                .await
                .expect("the first Event reaches the API server")
                .expect("a request");
        assert!(
            request.uri().path().contains("/events"),
            "{}",
            request.uri()
        );
        // The sender is stuck on the first; these fill the queue and the rest are dropped, and
        // none of it waits (a test that hung here would time out).
        for n in 1..=QUEUED_EVENTS + 5 {
            events.publish(event(n), reference.clone());
        }
        let text = metrics.encode();
        assert!(text.contains("fledge_events_dropped_total 5"), "{text}");
    }
}
