//! Logs, Prometheus metrics and health probes.
//!
//! Everything an operator of fledge looks at from outside the cluster API lives here, so the
//! controller code only ever calls a handful of methods and never touches an encoder or a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::{Error, Result};

/// The content type Prometheus negotiates for the OpenMetrics text format.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reconcile latency buckets in seconds: a cache-only no-op takes ~1ms, a reconcile that waits
/// on several API round trips can take seconds, and anything past 10s is an incident anyway.
const RECONCILE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How log lines are rendered.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Installs the global tracing subscriber.
///
/// `level` is an `EnvFilter` directive such as `info` or `fledge=debug,info`. `RUST_LOG`, when
/// set, wins: it is the knob people reach for first when debugging a running pod.
pub fn init_tracing(format: LogFormat, level: &str) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| Error::Telemetry(format!("invalid RUST_LOG {directives:?}: {e}")))?,
        _ => EnvFilter::try_new(level)
            .map_err(|e| Error::Telemetry(format!("invalid log level {level:?}: {e}")))?,
    };
    // Colours only on a terminal: logs captured to files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| Error::Telemetry(format!("installing tracing subscriber: {e}")))
}

/// Label set for reconcile failures; `reason` is a short, bounded error kind, never a message,
/// so the series count stays small.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    reason: String,
}

/// Label set for the rollouts-by-phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

/// Label set for analysis measurements: the provider and the measurement's phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MeasurementLabels {
    provider: String,
    phase: String,
}

/// Label set for notifications: the channel type, the event and what became of the message
/// (`sent`, `failed`, `dropped`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    r#type: String,
    event: String,
    result: String,
}

/// Label set for the build info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The controller's Prometheus metrics and the registry that exports them.
///
/// Metric handles are cheap `Arc` clones internally, so `Metrics` is shared as `Arc<Metrics>`
/// between the controller and the `/metrics` endpoint.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_duration_seconds: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    rollouts: Family<PhaseLabels, Gauge>,
    analysis_runs: Family<PhaseLabels, Counter>,
    analysis_measurements: Family<MeasurementLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    events_dropped: Counter,
    // `fledge_build_info` is set once in `new` and lives on in the registry; no field needed.
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric, with `fledge_build_info` already set.
    pub fn new() -> Self {
        let mut registry = Registry::default();

        let reconciles = Counter::default();
        registry.register(
            "fledge_reconcile",
            "Reconciliations started",
            reconciles.clone(),
        );

        let reconcile_duration_seconds = Histogram::new(RECONCILE_BUCKETS);
        registry.register(
            "fledge_reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration_seconds.clone(),
        );

        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "fledge_reconcile_errors",
            "Reconciliations that failed, by reason",
            reconcile_errors.clone(),
        );

        let rollouts = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "fledge_rollouts",
            "Rollouts currently in each phase",
            rollouts.clone(),
        );

        let analysis_runs = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "fledge_analysis_runs",
            "AnalysisRuns that ended, by phase",
            analysis_runs.clone(),
        );

        let analysis_measurements = Family::<MeasurementLabels, Counter>::default();
        registry.register(
            "fledge_analysis_measurements",
            "Analysis measurements taken, by provider and phase",
            analysis_measurements.clone(),
        );

        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "fledge_notifications",
            "Notifications by channel type, event and result (sent, failed, dropped)",
            notifications.clone(),
        );

        let events_dropped = Counter::default();
        registry.register(
            "fledge_events_dropped",
            "Kubernetes Events dropped because too many were waiting for the API server",
            events_dropped.clone(),
        );

        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "fledge_build_info",
            "Build information; the value is always 1",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);

        Self {
            registry,
            reconciles,
            reconcile_duration_seconds,
            reconcile_errors,
            rollouts,
            analysis_runs,
            analysis_measurements,
            notifications,
            events_dropped,
        }
    }

    /// Counts an Event dropped because too many were waiting for the API server.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// Counts one notification to a channel of `kind` about `event` that ended as `result`.
    pub fn notification(&self, kind: &str, event: &str, result: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                r#type: kind.to_owned(),
                event: event.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts an AnalysisRun that ended in `phase`.
    pub fn analysis_run_ended(&self, phase: &str) {
        self.analysis_runs
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .inc();
    }

    /// Counts one measurement by `provider` that came out `phase`.
    pub fn measurement(&self, provider: &str, phase: &str) {
        self.analysis_measurements
            .get_or_create(&MeasurementLabels {
                provider: provider.to_owned(),
                phase: phase.to_owned(),
            })
            .inc();
    }

    /// Counts a reconcile now and records its duration when the returned guard is dropped.
    ///
    /// Counting at the start means a reconcile that hangs still shows up in the rate; a guard
    /// rather than an explicit `finish()` means early returns via `?` are measured too.
    pub fn reconcile_timer(&self) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            histogram: self.reconcile_duration_seconds.clone(),
            start: Instant::now(),
        }
    }

    /// Counts one failed reconcile under `reason`.
    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Sets the rollout count of every phase given.
    ///
    /// Phases not listed keep their previous value; callers that want a phase to drop to zero
    /// must pass it with 0, so that a partial update can never silently erase a series.
    pub fn set_rollouts_by_phase(&self, counts: &[(String, i64)]) {
        for (phase, count) in counts {
            self.rollouts
                .get_or_create(&PhaseLabels {
                    phase: phase.clone(),
                })
                .set(*count);
        }
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; only a broken label encoder could get here, and a
            // scrape is better served by a partial body than by taking the endpoint down.
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

/// Guard returned by [`Metrics::reconcile_timer`]; observes the elapsed time on drop.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// Readiness state shared between the controller and the `/readyz` probe.
///
/// Liveness is unconditional (the process answering is the signal); readiness flips once the
/// controller has synced its caches, so a rollout of fledge itself waits for a working pod.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the process ready or not ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` currently answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
}

/// `GET /healthz` and `GET /readyz`.
pub fn health_router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// Serves `router` on `addr` until the listener fails.
pub async fn serve(addr: SocketAddr, router: Router) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Telemetry(format!("binding {addr}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "serving HTTP");
    axum::serve(listener, router)
        .await
        .map_err(|e| Error::Telemetry(format!("serving on {addr}: {e}")))
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, &'static str) {
    if health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_contains_metrics_after_timer_and_error() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_timer());
        metrics.reconcile_error("ApplyFailed");
        metrics.set_rollouts_by_phase(&[("Progressing".to_owned(), 2)]);
        metrics.analysis_run_ended("Failed");
        metrics.measurement("prometheus", "Error");
        metrics.measurement("prometheus", "Error");

        let text = metrics.encode();
        assert!(
            text.contains("fledge_analysis_runs_total{phase=\"Failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "fledge_analysis_measurements_total{provider=\"prometheus\",phase=\"Error\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("fledge_reconcile_total 1"), "{text}");
        assert!(
            text.contains("fledge_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("fledge_reconcile_duration_seconds_bucket{le=\"10.0\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fledge_reconcile_errors_total{reason=\"ApplyFailed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fledge_rollouts{phase=\"Progressing\"} 2"),
            "{text}"
        );
        let build = format!(
            "fledge_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn unlisted_phases_keep_their_value() {
        let metrics = Metrics::new();
        metrics.set_rollouts_by_phase(&[("Paused".to_owned(), 3), ("Healthy".to_owned(), 1)]);
        metrics.set_rollouts_by_phase(&[("Healthy".to_owned(), 0)]);

        let text = metrics.encode();
        assert!(
            text.contains("fledge_rollouts{phase=\"Paused\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("fledge_rollouts{phase=\"Healthy\"} 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn readyz_flips_from_503_to_200() {
        let health = Arc::new(Health::default());
        assert_eq!(
            readyz(State(health.clone())).await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        );
        health.set_ready(true);
        assert_eq!(readyz(State(health)).await, (StatusCode::OK, "ok"));
    }

    /// Sends one HTTP/1.1 request over a blocking socket, so the test needs no HTTP client.
    fn http_get(addr: SocketAddr, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("write request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        response
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routers_answer_over_http() {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let router = metrics_router(metrics).merge(health_router(health.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move { axum::serve(listener, router).await });

        let get = |path: &'static str| tokio::task::spawn_blocking(move || http_get(addr, path));

        let healthz = get("/healthz").await.expect("join");
        assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
        assert!(healthz.ends_with("ok"), "{healthz}");

        let not_ready = get("/readyz").await.expect("join");
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.ends_with("not ready"), "{not_ready}");
        health.set_ready(true);
        let ready = get("/readyz").await.expect("join");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

        let scrape = get("/metrics").await.expect("join");
        assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
        assert!(
            scrape
                .to_ascii_lowercase()
                .contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{scrape}"
        );
        assert!(scrape.contains("fledge_build_info"), "{scrape}");

        server.abort();
    }
}
