//! `fledge controller` runs the operator; `fledge crds` prints the CRDs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod heap;

use clap::{Parser, Subcommand};
use fledge::telemetry::{self, Health, LogFormat, Metrics};
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "fledge",
    version,
    about = "Progressive delivery for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the controller's flags costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Controller(ControllerArgs),
    /// Print every CRD fledge serves, as YAML.
    Crds,
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch one namespace only; all namespaces when unset.
    #[arg(long, env = "FLEDGE_NAMESPACE")]
    namespace: Option<String>,
    /// Handle only Rollouts labelled fledge.dev/instance-id=<id>.
    #[arg(long, env = "FLEDGE_INSTANCE_ID", value_parser = instance_id)]
    instance_id: Option<String>,
    /// Elect a leader through a Lease so only one replica writes.
    #[arg(long, env = "FLEDGE_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader-election Lease; defaults to the pod's namespace, else "default".
    #[arg(long, env = "FLEDGE_LEADER_NAMESPACE")]
    leader_namespace: Option<String>,
    /// Seconds a standby waits, from when it last saw the leader's Lease change, before taking
    /// it over.
    #[arg(long, env = "FLEDGE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds the leader keeps acting without a successful renewal; shorter than
    /// --lease-duration-seconds, so it stops before a standby may take over.
    #[arg(
        long,
        env = "FLEDGE_LEASE_RENEW_DEADLINE_SECONDS",
        default_value_t = 10
    )]
    lease_renew_deadline_seconds: u64,
    /// Seconds between attempts to acquire or renew the Lease; shorter than
    /// --lease-renew-deadline-seconds.
    #[arg(long, env = "FLEDGE_LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    lease_retry_period_seconds: u64,
    /// Address of /metrics.
    #[arg(long, env = "FLEDGE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(long, env = "FLEDGE_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// Rollouts reconciled at once.
    #[arg(long, env = "FLEDGE_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Queries per second to the API server.
    #[arg(long, env = "FLEDGE_KUBE_QPS", default_value_t = 50.0)]
    kube_qps: f32,
    /// Burst of queries to the API server.
    #[arg(long, env = "FLEDGE_KUBE_BURST", default_value_t = 100)]
    kube_burst: u32,
    /// Queries per second for Kubernetes Events, a budget of their own: Events never take
    /// requests from the Rollouts' own writes, and never hold up a reconcile.
    #[arg(long, env = "FLEDGE_KUBE_EVENT_QPS", default_value_t = 25.0)]
    kube_event_qps: f32,
    /// Burst of Kubernetes Event writes.
    #[arg(long, env = "FLEDGE_KUBE_EVENT_BURST", default_value_t = 100)]
    kube_event_burst: u32,
    /// Log format.
    #[arg(long, env = "FLEDGE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level filter, like "info" or "fledge=debug,info".
    #[arg(long, env = "FLEDGE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Run `job` analysis metrics as Jobs (needs rights on Jobs). When false, Jobs are not
    /// watched and a `job` metric's measurements fail with an error saying so.
    #[arg(long, env = "FLEDGE_JOB_PROVIDER", default_value_t = true, action = clap::ArgAction::Set)]
    job_provider: bool,
    /// Measure AnalysisRuns that no Rollout owns. When false, such a run ends in Error: whoever
    /// may create AnalysisRuns could otherwise send requests from the controller's network
    /// position.
    #[arg(long, env = "FLEDGE_ALLOW_STANDALONE_ANALYSIS_RUNS", default_value_t = false, action = clap::ArgAction::Set)]
    allow_standalone_analysis_runs: bool,
    /// Address ranges (comma-separated CIDRs) that analysis measurements never connect to,
    /// checked on the addresses a host resolves to and on every redirect. Empty: none.
    #[arg(long, env = "FLEDGE_ANALYSIS_DENIED_CIDRS", default_value = fledge::analysis::providers::network::DEFAULT_DENIED, value_parser = denied_cidrs)]
    analysis_denied_cidrs: fledge::analysis::providers::network::Denied,
    /// Subscriptions every Rollout has unless it sets `notifications.skipDefaults`: a JSON (or
    /// YAML) list like `[{"channel": "platform", "clusterScope": true, "severity": "error"}]`.
    /// Notifications connect under the same --analysis-denied-cidrs rules.
    #[arg(long, env = "FLEDGE_NOTIFICATION_DEFAULTS", default_value = "", value_parser = notification_defaults)]
    notification_defaults: NotificationDefaults,
}

/// The parsed `--notification-defaults` (a newtype: clap would read a Vec as repeated flags).
#[derive(Clone)]
struct NotificationDefaults(Vec<fledge::api::notification::Subscription>);

fn notification_defaults(s: &str) -> Result<NotificationDefaults, String> {
    fledge::notify::parse_defaults(s).map(NotificationDefaults)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match fledge::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fledge crds: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Controller(args) => {
            heap::tune();
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(controller(args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    eprintln!("fledge controller: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn controller(args: ControllerArgs) -> fledge::Result<()> {
    // One TLS stack: rustls with ring, installed before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    telemetry::init_tracing(args.log_format, &args.log_level)?;
    let timing = leader_timing(&args)?;

    let mut config = kube::Config::infer()
        .await
        .map_err(|e| fledge::Error::Config(e.to_string()))?;
    config.write_timeout = Some(Duration::from_secs(30));
    let event_client =
        fledge::client::build(config.clone(), args.kube_event_qps, args.kube_event_burst)?;
    let client = fledge::client::build(config, args.kube_qps, args.kube_burst)?;

    let metrics = Arc::new(Metrics::new());
    let events = fledge::runtime::Events::start(event_client, metrics.clone());
    let health = Arc::new(Health::default());
    tokio::spawn(heap::trim_periodically());
    tokio::spawn(telemetry::serve(
        args.metrics_addr,
        telemetry::metrics_router(metrics.clone()),
    ));
    tokio::spawn(telemetry::serve(
        args.health_addr,
        telemetry::health_router(health.clone()),
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let scope = fledge::api::Scope {
        namespace: args.namespace.clone(),
        instance_id: args.instance_id.clone(),
    };
    if !args.leader_elect {
        info!("leader election off");
        run_controllers(client, scope, &args, metrics, events, health, stop_rx).await;
        return Ok(());
    }

    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "fledge".into());
    let identity = format!("{identity}-{}", std::process::id());
    let lease_ns = args
        .leader_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let lease_name = match &args.instance_id {
        Some(id) => format!("fledge-controller-{id}"),
        None => "fledge-controller".into(),
    };
    let elector = fledge::leader::LeaderElector::new(
        client.clone(),
        &lease_ns,
        &lease_name,
        &identity,
        timing,
    );
    // A standby is healthy and ready: it has nothing to serve until it leads.
    health.set_ready(true);
    tokio::select! {
        r = elector.acquire() => r?,
        _ = stopped => return Ok(()),
    }
    health.set_ready(false);
    info!(%identity, lease = %lease_name, "became leader");
    let result = tokio::select! {
        // Losing the lease, or passing the renew deadline, means another replica may be writing
        // (or soon may): stop at once, and the pod restarts as a standby.
        lost = elector.renew_until_lost() => Err(lost),
        _ = run_controllers(client, scope, &args, metrics, events, health, stop_rx.clone()) => Ok(()),
    };
    if result.is_ok() {
        elector.release().await;
    }
    result
}

/// The Rollout and AnalysisRun controllers, side by side, until a stop is signalled.
async fn run_controllers(
    client: kube::Client,
    scope: fledge::api::Scope,
    args: &ControllerArgs,
    metrics: Arc<Metrics>,
    events: fledge::runtime::Events,
    health: Arc<Health>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let http = match fledge::analysis::providers::http_clients(args.analysis_denied_cidrs.clone()) {
        Ok(h) => h.verifying,
        Err(e) => {
            error!("{e}");
            return;
        }
    };
    let notify = fledge::notify::Options {
        defaults: args.notification_defaults.0.clone(),
        http,
    };
    tokio::join!(
        fledge::rollout::run(
            client.clone(),
            scope.clone(),
            args.concurrency,
            fledge::rollout::Reports {
                metrics: metrics.clone(),
                health,
                events: events.clone(),
            },
            notify,
            stopped(stop.clone()),
        ),
        fledge::analysis::controller::run(
            client,
            scope,
            args.concurrency,
            fledge::analysis::controller::Options {
                job_provider: args.job_provider,
                allow_standalone_runs: args.allow_standalone_analysis_runs,
                denied: args.analysis_denied_cidrs.clone(),
            },
            metrics,
            events,
            stopped(stop),
        ),
    );
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The leader-election timing from the flags, refused with the flags' names when the leader
/// could still be acting after a standby may take over.
fn leader_timing(args: &ControllerArgs) -> fledge::Result<fledge::leader::Timing> {
    fledge::leader::Timing::new(
        Duration::from_secs(args.lease_duration_seconds),
        Duration::from_secs(args.lease_renew_deadline_seconds),
        Duration::from_secs(args.lease_retry_period_seconds),
    )
    .map_err(|e| {
        fledge::Error::Leader(format!(
            "--lease-duration-seconds={}, --lease-renew-deadline-seconds={}, \
             --lease-retry-period-seconds={}: {e}",
            args.lease_duration_seconds,
            args.lease_renew_deadline_seconds,
            args.lease_retry_period_seconds
        ))
    })
}

fn denied_cidrs(s: &str) -> Result<fledge::analysis::providers::network::Denied, String> {
    let list = fledge::analysis::providers::network::parse_list(s)?;
    Ok(fledge::analysis::providers::network::Denied(Arc::new(list)))
}

/// An instance id becomes a label value and part of the Lease's name (`fledge-controller-<id>`),
/// so it must be a DNS label short enough for both; refusing it here beats a Lease that can never
/// be created. The chart's values schema applies the same rule.
fn instance_id(id: &str) -> Result<String, String> {
    let ok = !id.is_empty()
        && id.len() <= 45
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(
            "an instance id is 1 to 45 lowercase letters, digits and '-', starting and ending \
             with a letter or digit"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command, instance_id, leader_timing};
    use clap::Parser;

    fn timing(flags: &[&str]) -> fledge::Result<fledge::leader::Timing> {
        let cli = Cli::try_parse_from([&["fledge", "controller"], flags].concat()).expect("flags");
        let Command::Controller(args) = cli.command else {
            panic!("not the controller");
        };
        leader_timing(&args)
    }

    #[test]
    fn leader_timing_defaults_to_client_gos_and_refuses_a_deadline_past_the_lease() {
        assert_eq!(
            timing(&[]).expect("defaults"),
            fledge::leader::Timing::default()
        );
        let short = [
            "--lease-duration-seconds",
            "4",
            "--lease-renew-deadline-seconds",
            "3",
        ];
        let short = [&short[..], &["--lease-retry-period-seconds", "1"]].concat();
        assert!(timing(&short).is_ok());
        let error =
            timing(&["--lease-duration-seconds", "4"]).expect_err("deadline 10s > lease 4s");
        let message = error.to_string();
        assert!(
            message.contains("--lease-duration-seconds=4")
                && message.contains("--lease-renew-deadline-seconds=10")
                && message.contains("must be shorter than the lease duration"),
            "{message}"
        );
    }

    #[test]
    fn instance_ids_are_dns_labels_that_fit_a_lease_name() {
        for good in ["a", "team-a", "t1", &"x".repeat(45)] {
            assert_eq!(instance_id(good).as_deref(), Ok(good));
        }
        for bad in ["", "Team_A.x", "-a", "a-", "a.b", &"x".repeat(46)] {
            assert!(instance_id(bad).is_err(), "{bad:?}");
        }
    }
}
