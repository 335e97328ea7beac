//! `fledge-pod-agent`: makes the local cluster's KWOK pods answer real requests.
//!
//! KWOK pods have no containers. `hack/cluster.sh up` gives the fake nodes a private pod range
//! that exists only inside a network namespace it creates (a veth pair, and a host route to the
//! range through it), and starts this agent. The agent watches every pod, and for each pod whose
//! IP is in that range:
//!
//! - puts the IP on the namespace's end of the veth (`ip -n <netns> addr add <ip>/32`);
//! - answers HTTP on it: one listener per port, bound to 0.0.0.0 inside the namespace, serves every
//!   pod IP from this one process; the address a connection came in on says which pod it is for;
//! - once that address answers through the host route (as any client would reach it), marks the
//!   pod Ready in its status. KWOK runs with pod stages (hack/kwok-pod-stages.yaml) that give a
//!   pod its IP and phase Running but leave Ready False, so a pod is Ready only once it answers;
//! - after the pod is deleted, keeps answering as that pod for a grace period (as a real pod with a
//!   preStop hook would, while the gateway learns the endpoint is gone), then drops the address.
//!
//! Each response says which pod answered, in headers and a JSON body: `x-fledge-pod`,
//! `x-fledge-namespace`, `x-fledge-revision` (the `rollouts-pod-template-hash` label, or a
//! Deployment's `pod-template-hash`) and `x-fledge-image` (the first container's image). The first
//! container's env vars choose the behaviour, so a bad release is really bad:
//! - `ERROR_RATE`: share of requests answered 500, 0..=1 (exact: every n-th request, spread evenly);
//! - `LATENCY_MS`: added latency of every answer, in milliseconds;
//! - `STARTUP_MS`: how long the pod takes to start, in milliseconds: its readiness check
//!   (`/healthz`) fails until then, so it turns Ready that much later, as an application that
//!   warms up does.
//!
//! On `--grpc-ports` (default 9090) every pod answers gRPC over cleartext HTTP/2 (h2c, what a
//! gateway speaks to a GRPCRoute's backends): `grpc.health.v1.Health/Check` answers SERVING, with
//! the same `x-fledge-*` headers as initial metadata; `ERROR_RATE` fails calls with INTERNAL and
//! `LATENCY_MS` delays them, and they count with the HTTP requests. It is a hand-written unary
//! handler on the `h2` crate (grpc.rs), not a gRPC framework: one method,
//! no codegen, and nothing added to the operator's binary.
//!
//! With `--standalone` it is instead the program of one pod of a real cluster, so the e2e tests
//! can run there too (docs/dataplane.md): it answers HTTP and gRPC on 0.0.0.0 as the pod named
//! by its env (`POD_NAME`, `POD_NAMESPACE`, `FLEDGE_REVISION`, `FLEDGE_IMAGE`, from the downward
//! API), with its own `ERROR_RATE` and `LATENCY_MS`; no netns, no API access.
//!
//! On `--control-addr` (host loopback) it serves `/pods` (JSON: every pod it serves and the
//! requests each got, so tests can see mirrored traffic clients never see) and `/metrics`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "fledge-pod-agent",
    about = "Serves HTTP on the local cluster's KWOK pod IPs"
)]
struct Args {
    /// The network namespace the pod IPs live in.
    #[arg(long, required_unless_present = "standalone")]
    netns: Option<String>,
    /// The interface inside that namespace that gets each pod IP.
    #[arg(long, required_unless_present = "standalone")]
    device: Option<String>,
    /// Pods with an IP in this IPv4 range are served, e.g. 10.200.0.0/16.
    #[arg(long, required_unless_present = "standalone")]
    pod_cidr: Option<String>,
    /// Serve as the one pod this runs in (a container in a real cluster), identified by env.
    #[arg(long, conflicts_with_all = ["netns", "device", "pod_cidr"])]
    standalone: bool,
    /// Ports every pod answers on (a Service's targetPort must be one of them).
    #[arg(long, value_delimiter = ',', default_value = "8080,80")]
    ports: Vec<u16>,
    /// Ports every pod answers gRPC on, over h2c (empty: none).
    #[arg(long, value_delimiter = ',', default_value = "9090")]
    grpc_ports: Vec<u16>,
    /// How long a deleted pod keeps answering.
    #[arg(long, default_value_t = 5)]
    grace_seconds: u64,
    /// Where `/pods` and `/metrics` are served (host network).
    #[arg(long, default_value = "127.0.0.1:0")]
    control_addr: SocketAddr,
    /// The cluster (the agent only reads pods and writes their status).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
}

mod grpc;

/// What a pod IP answers as.
struct Served {
    namespace: String,
    name: String,
    uid: String,
    revision: String,
    image: String,
    error_rate: f64,
    latency: Duration,
    /// `/healthz` fails until then (`STARTUP_MS` after the agent began serving the pod).
    ready_at: std::time::Instant,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Served {
    /// Counts a request (HTTP or gRPC), waits out `LATENCY_MS`, and says whether it fails: request
    /// n fails when it carries the running count of failures past a whole number, so exactly
    /// floor(n * rate) of the first n requests fail, spread evenly.
    async fn fails_next(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let fail =
            (((n + 1) as f64) * self.error_rate).floor() > ((n as f64) * self.error_rate).floor();
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if fail {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }

    /// The `x-fledge-*` headers that say who answered.
    fn identify(&self, headers: &mut axum::http::HeaderMap) {
        for (k, v) in [
            ("x-fledge-pod", &self.name),
            ("x-fledge-namespace", &self.namespace),
            ("x-fledge-revision", &self.revision),
            ("x-fledge-image", &self.image),
        ] {
            if let Ok(v) = HeaderValue::from_str(v) {
                headers.insert(k, v);
            }
        }
    }
}

#[derive(Default)]
struct Agent {
    /// `--standalone`: the pod this runs in, whatever the address.
    itself: Option<Arc<Served>>,
    by_ip: Mutex<HashMap<Ipv4Addr, Arc<Served>>>,
    /// Pods (uid) a readiness task is running for.
    readying: Mutex<HashSet<String>>,
    /// Held across "look at the map, change the interface, change the map", so that a grace
    /// period ending cannot remove an address a new pod has just been given.
    addresses: tokio::sync::Mutex<()>,
}

impl Agent {
    /// Who answers on `ip`.
    fn at(&self, ip: Ipv4Addr) -> Option<Arc<Served>> {
        self.itself
            .clone()
            .or_else(|| self.by_ip.lock().unwrap().get(&ip).cloned())
    }
}

type Shared = Arc<(Agent, Config)>;

struct Config {
    netns: String,
    device: String,
    net: Ipv4Addr,
    prefix: u32,
    probe_port: u16,
    grace: Duration,
}

impl Config {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(ip) & mask == u32::from(self.net) & mask
    }
}

fn parse_cidr(s: &str) -> anyhow_like::Result<(Ipv4Addr, u32)> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s}: not a CIDR"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{s}: {e}"))?;
    let prefix: u32 = prefix.parse().map_err(|e| format!("{s}: {e}"))?;
    if prefix > 32 {
        return Err(format!("{s}: prefix above 32"));
    }
    Ok((ip, prefix))
}

/// Errors are messages: the agent logs them and goes on, or exits at start-up.
mod anyhow_like {
    pub type Result<T> = std::result::Result<T, String>;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("fledge-pod-agent: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow_like::Result<()> {
    if args.standalone {
        return standalone(args).await;
    }
    let (netns, device, pod_cidr) = (
        args.netns.clone().unwrap_or_default(),
        args.device.clone().unwrap_or_default(),
        args.pod_cidr.clone().unwrap_or_default(),
    );
    let (net, prefix) = parse_cidr(&pod_cidr)?;
    let client = client(args.kubeconfig.as_deref()).await?;
    let config = Config {
        netns: netns.clone(),
        device,
        net,
        prefix,
        probe_port: *args.ports.first().ok_or("--ports is empty")?,
        grace: Duration::from_secs(args.grace_seconds),
    };
    let shared: Shared = Arc::new((Agent::default(), config));

    for &port in &args.ports {
        let listener = listen_in_netns(&netns, port)?;
        let app = Router::new()
            .fallback(answer)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<LocalAddr>();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!("pod listener on port {port} stopped: {e}");
            }
        });
    }
    for &port in &args.grpc_ports {
        let listener = listen_in_netns(&netns, port)?;
        tokio::spawn(grpc::serve(listener, shared.clone()));
    }
    let control_addr = serve_control(&shared, args.control_addr).await?;
    info!(
        netns = %netns, pod_cidr = %pod_cidr, ports = ?args.ports, control = %control_addr,
        "serving pods"
    );

    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                applied(&shared, &client, pod).await
            }
            Ok(watcher::Event::Delete(pod)) => deleted(&shared, &pod),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => {
                warn!("watching pods: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err("the pod watch ended".into())
}

/// `/pods` and `/metrics` on `addr`; returns the address bound.
async fn serve_control(shared: &Shared, addr: SocketAddr) -> anyhow_like::Result<SocketAddr> {
    let control = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    let bound = control.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/pods", axum::routing::get(pods))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(shared.clone());
    tokio::spawn(async move {
        let _ = axum::serve(control, app).await;
    });
    Ok(bound)
}

/// `--standalone`: the same answers, as the one pod this process runs in.
async fn standalone(args: Args) -> anyhow_like::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let (error_rate, latency, startup) = behaviour(&env);
    let me = Served {
        namespace: env("POD_NAMESPACE").unwrap_or_default(),
        name: env("POD_NAME").unwrap_or_default(),
        uid: String::new(),
        revision: env("FLEDGE_REVISION").unwrap_or_default(),
        image: env("FLEDGE_IMAGE").unwrap_or_default(),
        error_rate,
        latency,
        ready_at: std::time::Instant::now() + startup,
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    };
    let agent = Agent {
        itself: Some(Arc::new(me)),
        ..Agent::default()
    };
    let config = Config {
        netns: String::new(),
        device: String::new(),
        net: Ipv4Addr::UNSPECIFIED,
        prefix: 32,
        probe_port: *args.ports.first().ok_or("--ports is empty")?,
        grace: Duration::ZERO,
    };
    let shared: Shared = Arc::new((agent, config));
    let bind = |port: u16| async move {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
            .await
            .map_err(|e| format!("binding port {port}: {e}"))
    };
    for &port in &args.ports {
        let app = Router::new()
            .fallback(answer)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<LocalAddr>();
        let listener = bind(port).await?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!("listener on port {port} stopped: {e}");
            }
        });
    }
    for &port in &args.grpc_ports {
        tokio::spawn(grpc::serve(bind(port).await?, shared.clone()));
    }
    let control_addr = serve_control(&shared, args.control_addr).await?;
    info!(ports = ?args.ports, grpc_ports = ?args.grpc_ports, control = %control_addr, "serving as this pod");
    std::future::pending::<()>().await;
    Ok(())
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow_like::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    Client::try_from(config).map_err(|e| e.to_string())
}

/// A listening socket inside network namespace `netns`. A socket belongs to the namespace it was
/// created in, whichever thread later uses it, so one short-lived thread enters the namespace,
/// binds, and hands the socket back; the rest of the agent stays in the host's namespace (where
/// the API server is).
fn listen_in_netns(netns: &str, port: u16) -> anyhow_like::Result<TcpListener> {
    let path = format!("/run/netns/{netns}");
    let std_listener = std::thread::scope(|s| {
        s.spawn(|| -> anyhow_like::Result<std::net::TcpListener> {
            let ns = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
            // SAFETY: setns on this thread only; the fd is valid for the call.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "entering {path}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                .map_err(|e| format!("binding port {port} in {netns}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        })
        .join()
        .map_err(|_| "the netns thread panicked".to_string())?
    })?;
    TcpListener::from_std(std_listener).map_err(|e| e.to_string())
}

fn pod_ip(pod: &Pod, config: &Config) -> Option<Ipv4Addr> {
    let ip: Ipv4Addr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
    config.contains(ip).then_some(ip)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn served(pod: &Pod) -> Served {
    let labels = pod.labels();
    let revision = labels
        .get("rollouts-pod-template-hash")
        .or_else(|| labels.get("pod-template-hash"))
        .cloned()
        .unwrap_or_default();
    let container = pod.spec.as_ref().and_then(|s| s.containers.first());
    let env = |name: &str| {
        container
            .and_then(|c| c.env.as_ref())
            .and_then(|env| env.iter().find(|e| e.name == name))
            .and_then(|e| e.value.clone())
    };
    let (error_rate, latency, startup) = behaviour(&env);
    Served {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        revision,
        image: container.and_then(|c| c.image.clone()).unwrap_or_default(),
        error_rate,
        latency,
        ready_at: std::time::Instant::now() + startup,
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    }
}

/// `ERROR_RATE`, `LATENCY_MS` and `STARTUP_MS` from a pod's env.
fn behaviour(env: &dyn Fn(&str) -> Option<String>) -> (f64, Duration, Duration) {
    let millis = |name: &str| {
        env(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_millis)
    };
    let error_rate = env("ERROR_RATE")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0.0, |r| r.clamp(0.0, 1.0));
    (error_rate, millis("LATENCY_MS"), millis("STARTUP_MS"))
}

async fn applied(shared: &Shared, client: &Client, pod: Pod) {
    let (agent, config) = &**shared;
    let Some(ip) = pod_ip(&pod, config) else {
        return;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        // Terminating: the endpoint is going away; answer for the grace period, then stop.
        deleted(shared, &pod);
        return;
    }
    let uid = pod.uid().unwrap_or_default();
    let guard = agent.addresses.lock().await;
    let known = agent
        .by_ip
        .lock()
        .unwrap()
        .get(&ip)
        .is_some_and(|s| s.uid == uid);
    if !known {
        // A new pod, or a pod that took over the address of one still in its grace period.
        if let Err(e) = add_address(config, ip).await {
            warn!(
                "pod {}/{}: {e}",
                pod.namespace().unwrap_or_default(),
                pod.name_any()
            );
            return;
        }
        let s = served(&pod);
        info!(%ip, pod = %format!("{}/{}", s.namespace, s.name), revision = %s.revision, image = %s.image, "serving pod");
        agent.by_ip.lock().unwrap().insert(ip, Arc::new(s));
    }
    drop(guard);
    if !is_ready(&pod) && agent.readying.lock().unwrap().insert(uid.clone()) {
        let (shared, client) = (shared.clone(), client.clone());
        tokio::spawn(async move {
            make_ready(&shared, &client, &pod, ip).await;
            shared.0.readying.lock().unwrap().remove(&uid);
        });
    }
}

fn deleted(shared: &Shared, pod: &Pod) {
    let (_, config) = &**shared;
    let Some(ip) = pod_ip(pod, config) else {
        return;
    };
    let uid = pod.uid().unwrap_or_default();
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(shared.1.grace).await;
        let (agent, config) = &*shared;
        let _guard = agent.addresses.lock().await;
        let gone = {
            let mut by_ip = agent.by_ip.lock().unwrap();
            // Only if no newer pod took this address meanwhile.
            if by_ip.get(&ip).is_some_and(|s| s.uid == uid) {
                by_ip.remove(&ip);
                true
            } else {
                false
            }
        };
        if gone {
            if let Err(e) = del_address(config, ip).await {
                warn!("{e}");
            }
            info!(%ip, "pod gone after its grace period");
        }
    });
}

async fn ip_cmd(config: &Config, args: &[&str]) -> anyhow_like::Result<()> {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["-n", &config.netns]).args(args);
    // A few milliseconds; off the async threads all the same.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| format!("running ip: {e}"))?
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip -n {} {}: {}",
            config.netns,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn add_address(config: &Config, ip: Ipv4Addr) -> anyhow_like::Result<()> {
    // `replace` is idempotent: an address left by an agent that restarted is taken over.
    ip_cmd(
        config,
        &[
            "addr",
            "replace",
            &format!("{ip}/32"),
            "dev",
            &config.device,
        ],
    )
    .await
}

async fn del_address(config: &Config, ip: Ipv4Addr) -> anyhow_like::Result<()> {
    ip_cmd(
        config,
        &["addr", "del", &format!("{ip}/32"), "dev", &config.device],
    )
    .await
}

/// Waits until the pod's address answers from the host's network, as the gateway reaches it,
/// then sets Ready (and ContainersReady, and each container ready) in the pod's status.
async fn make_ready(shared: &Shared, client: &Client, pod: &Pod, ip: Ipv4Addr) {
    let (_, config) = &**shared;
    let url = format!("http://{ip}:{}/healthz", config.probe_port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .no_proxy()
        .build()
        .expect("an HTTP client without TLS");
    let name = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    let uid = pod.uid().unwrap_or_default();
    let mut tries = 0u32;
    loop {
        if matches!(http.get(&url).send().await, Ok(r) if r.status().is_success()) {
            break;
        }
        let still_ours = shared
            .0
            .by_ip
            .lock()
            .unwrap()
            .get(&ip)
            .is_some_and(|s| s.uid == uid);
        if !still_ours {
            return;
        }
        tries += 1;
        if tries.is_multiple_of(100) {
            warn!(%ip, pod = %name, "the pod's address does not answer yet; not Ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = pod.status.clone().unwrap_or_default();
    let mut conditions: Vec<serde_json::Value> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "Ready" && c.type_ != "ContainersReady")
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    for t in ["Ready", "ContainersReady"] {
        conditions.push(json!({"type": t, "status": "True", "lastTransitionTime": now}));
    }
    let containers: Vec<serde_json::Value> = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            c.ready = true;
            c.started = Some(true);
            serde_json::to_value(c).unwrap_or_default()
        })
        .collect();
    let patch = json!({"status": {"conditions": conditions, "containerStatuses": containers}});
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => info!(%ip, pod = %name, "answers; marked Ready"),
        // Deleted meanwhile, most likely; nothing to do.
        Err(e) => warn!(%ip, pod = %name, "marking Ready: {e}"),
    }
}

/// The local address a connection came in on: the pod IP the client asked for.
#[derive(Clone, Copy)]
struct LocalAddr(SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for LocalAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        LocalAddr(
            stream
                .io()
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        )
    }
}

async fn answer(
    State(shared): State<Shared>,
    ConnectInfo(LocalAddr(local)): ConnectInfo<LocalAddr>,
    request: Request,
) -> Response {
    let IpAddr::V4(ip) = local.ip() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no pod here\n").into_response();
    };
    let served = shared.0.at(ip);
    let Some(s) = served else {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("no pod at {ip}\n")).into_response();
    };
    // The agent's own readiness probe: not a client request, so neither counted nor failed.
    if request.uri().path() == "/healthz" {
        if std::time::Instant::now() < s.ready_at {
            return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
        }
        return (StatusCode::OK, "ok\n").into_response();
    }
    let status = if s.fails_next().await {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let body = json!({
        "pod": s.name, "namespace": s.namespace, "revision": s.revision, "image": s.image,
        "ip": ip.to_string(), "status": status.as_u16(), "path": request.uri().path(),
    });
    let mut response = (status, format!("{body}\n")).into_response();
    let headers = response.headers_mut();
    s.identify(headers);
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn snapshot(shared: &Shared) -> Vec<(Ipv4Addr, Arc<Served>)> {
    let mut all: Vec<_> = shared
        .0
        .by_ip
        .lock()
        .unwrap()
        .iter()
        .map(|(ip, s)| (*ip, s.clone()))
        .collect();
    all.extend(
        shared
            .0
            .itself
            .iter()
            .map(|s| (Ipv4Addr::UNSPECIFIED, s.clone())),
    );
    all.sort_by_key(|(ip, _)| *ip);
    all
}

async fn pods(State(shared): State<Shared>) -> impl IntoResponse {
    let list: Vec<serde_json::Value> = snapshot(&shared)
        .into_iter()
        .map(|(ip, s)| {
            json!({
                "ip": ip.to_string(), "namespace": s.namespace, "pod": s.name, "uid": s.uid,
                "revision": s.revision, "image": s.image,
                "requests": s.requests.load(Ordering::Relaxed),
                "errors": s.errors.load(Ordering::Relaxed),
            })
        })
        .collect();
    (
        [("content-type", "application/json")],
        serde_json::Value::Array(list).to_string(),
    )
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    let mut out = String::from(
        "# HELP fledge_pod_agent_requests_total Requests the pod agent answered, by pod.\n\
         # TYPE fledge_pod_agent_requests_total counter\n",
    );
    for (_, s) in snapshot(&shared) {
        let requests = s.requests.load(Ordering::Relaxed);
        let errors = s.errors.load(Ordering::Relaxed);
        for (code, v) in [("200", requests - errors), ("500", errors)] {
            out.push_str(&format!(
                "fledge_pod_agent_requests_total{{namespace=\"{}\",pod=\"{}\",revision=\"{}\",code=\"{code}\"}} {v}\n",
                s.namespace, s.name, s.revision
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let (net, prefix) = parse_cidr("10.200.0.0/16").unwrap();
        let c = Config {
            netns: String::new(),
            device: String::new(),
            net,
            prefix,
            probe_port: 8080,
            grace: Duration::ZERO,
        };
        assert!(c.contains("10.200.3.7".parse().unwrap()));
        assert!(!c.contains("10.201.0.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
