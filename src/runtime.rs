//! What the Rollout and AnalysisRun controllers share in how they run: who records their Events,
//! and what becomes of the results their reconciles leave on the controller's stream.

use futures::{Stream, StreamExt};
use kube::runtime::controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tracing::warn;

/// The recorder of a controller's Events: reported by `fledge`, with the pod's name (`POD_NAME`,
/// set by the chart) as the instance, so Events say which replica wrote them.
pub fn recorder(client: kube::Client) -> Recorder {
    let reporter = Reporter {
        controller: "fledge".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Recorder::new(client, reporter)
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
