//! The e2e harness: a client for the cluster, a namespace per test, the operator as a child
//! process with its logs captured, and waits with clear failure messages.
//!
//! The cluster is `KUBECONFIG` when set (any real cluster), otherwise the local control plane that
//! `hack/cluster.sh up` started (its kubeconfig in `$FLEDGE_CLUSTER_DIR`, default
//! `/tmp/fledge-cluster-$USER`).

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fledge::api::{Request, RequestAction, Rollout};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where the local control plane keeps its kubeconfig.
fn local_kubeconfig() -> PathBuf {
    let dir = std::env::var("FLEDGE_CLUSTER_DIR").unwrap_or_else(|_| {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("/tmp/fledge-cluster-{user}")
    });
    PathBuf::from(dir).join("kubeconfig")
}

/// The kubeconfig file the tests and the operator use.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var("KUBECONFIG") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => local_kubeconfig(),
    }
}

pub async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!(
            "no cluster: cannot read kubeconfig {}: {e}\n\
             start the local control plane with `hack/cluster.sh up` (or run `make test`), \
             or set KUBECONFIG to a cluster with fledge's CRDs installed",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is valid");
    Client::try_from(config).expect("client")
}

/// One test's world: its namespace and its operator processes.
pub struct TestEnv {
    pub client: Client,
    pub ns: String,
    operators: Vec<Operator>,
}

/// A running `fledge controller`.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the operator serves on `/metrics`. Its ports are picked at start (`127.0.0.1:0`);
    /// the log names them ("serving HTTP"), and the one that answers `/metrics` is the right one.
    pub async fn metrics(&self) -> String {
        let logs = self.logs();
        let addrs = logs
            .lines()
            .filter(|l| l.contains("serving HTTP"))
            .flat_map(|l| l.split([' ', '"', '=']))
            .filter(|w| w.starts_with("127.0.0.1:"));
        // A port that accepts and never answers must not hang the test's waits.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        for addr in addrs {
            if let Ok(r) = http.get(format!("http://{addr}/metrics")).send().await
                && r.status().is_success()
            {
                return r.text().await.unwrap_or_default();
            }
        }
        panic!("the operator serves no /metrics; its log:\n{logs}")
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        stop_child(&mut self.child);
    }

    /// SIGTERM, as a rolling update of the Deployment would, and waits for the exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        stop_child(&mut self.child);
    }
}

impl TestEnv {
    /// A fresh namespace `e2e-<name>-<n>-<pid>`; no operator yet.
    pub async fn new(name: &str) -> TestEnv {
        let client = client().await;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let ns = format!("e2e-{name}-{n}-{}", std::process::id());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
        TestEnv {
            client,
            ns,
            operators: Vec::new(),
        }
    }

    /// A namespace with Services `web-stable` and `web-canary` and an operator watching it.
    pub async fn canary(name: &str) -> TestEnv {
        let mut env = TestEnv::new(name).await;
        env.service("web-stable", "web").await;
        env.service("web-canary", "web").await;
        env.start_operator();
        env
    }

    /// Starts the operator watching this namespace, without leader election.
    pub fn start_operator(&mut self) -> usize {
        self.start_operator_with(&["--leader-elect=false"])
    }

    /// Starts the operator with extra arguments; returns its index for [`Self::operator`].
    pub fn start_operator_with(&mut self, extra: &[&str]) -> usize {
        self.start_operator_as(&kubeconfig_path(), extra)
    }

    /// Starts the operator with the credentials of `kubeconfig` (a ServiceAccount's, say).
    pub fn start_operator_as(&mut self, kubeconfig: &std::path::Path, extra: &[&str]) -> usize {
        let index = self.operators.len();
        let log = std::env::temp_dir().join(format!("{}-operator-{index}.log", self.ns));
        let file = std::fs::File::create(&log).expect("operator log file");
        let child = Command::new(env!("CARGO_BIN_EXE_fledge"))
            .args(["controller", "--namespace", &self.ns])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
            ])
            .args(["--log-level", "fledge=debug,info"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("HOSTNAME", format!("op{index}"))
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("starting the fledge binary");
        record_child(&child);
        self.operators.push(Operator { child, log });
        index
    }

    /// Swaps two operators' places, for helpers that read operator 0 (`reconciled`) once a
    /// later one is the one running.
    pub fn swap_operators(&mut self, a: usize, b: usize) {
        self.operators.swap(a, b);
    }

    pub fn operator(&mut self, index: usize) -> &mut Operator {
        &mut self.operators[index]
    }

    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates (server-side applies) an object from JSON in this namespace.
    pub async fn apply<K>(&self, value: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + serde::de::DeserializeOwned
            + serde::Serialize
            + Clone
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(value).expect("object JSON matches its type");
        let name = obj.name_any();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("applying {name}: {e}"))
    }

    /// A ClusterIP Service selecting `app=<app>`.
    pub async fn service(&self, name: &str, app: &str) {
        self.apply::<Service>(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))
        .await;
    }

    pub async fn rollout(&self, name: &str) -> Rollout {
        self.rollouts().get(name).await.expect("rollout exists")
    }

    /// Files a runtime request in the status subresource, as `kubectl fledge` does.
    pub async fn request(&self, name: &str, action: RequestAction) {
        let request = Request {
            action,
            requested_by: Some("e2e".into()),
        };
        self.rollouts()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"request": request}})),
            )
            .await
            .unwrap_or_else(|e| panic!("requesting {action:?} on {name}: {e}"));
    }

    /// ReplicaSet sizes by revision hash: (spec replicas, available).
    pub async fn replica_sets(&self) -> Vec<(String, i32, i32)> {
        let mut out: Vec<(String, i32, i32)> = self
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .expect("listing ReplicaSets")
            .into_iter()
            .map(|rs| {
                let hash = rs
                    .labels()
                    .get(fledge::api::HASH_LABEL)
                    .cloned()
                    .unwrap_or_default();
                let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                let available = rs
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                (hash, spec, available)
            })
            .collect();
        out.sort();
        out
    }

    /// Waits until the ReplicaSets are exactly `want`: (revision hash, desired, available).
    pub async fn wait_replica_sets(&self, what: &str, mut want: Vec<(String, i32, i32)>) {
        want.sort();
        self.wait_for(what, MINUTE, || async {
            let sets = self.replica_sets().await;
            if sets == want {
                Ok(())
            } else {
                Err(format!("{sets:?}"))
            }
        })
        .await
    }

    /// The revision hash Service `name`'s selector is pinned to.
    pub async fn service_hash(&self, name: &str) -> Option<String> {
        let svc = self.api::<Service>().get(name).await.ok()?;
        svc.spec?.selector?.get(fledge::api::HASH_LABEL).cloned()
    }

    /// Waits until `check` returns Some, polling; on timeout panics with `what` and the last
    /// state `describe` gives.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let start = Instant::now();
        loop {
            match check().await {
                Ok(v) => return v,
                Err(last) if start.elapsed() > timeout => {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Makes operator 0 look at Rollout `name` again, and returns once it has, writes included:
    /// notes how many reconciles have started (`fledge_reconcile_total`), touches the Rollout (an
    /// annotation the planner ignores, so that one more comes), and waits until more reconciles
    /// than that have *finished* (`fledge_reconcile_duration_seconds_count`, recorded after the
    /// writes). Reconciles of one Rollout never overlap, so the last one finished started after
    /// the caller's last look at the Rollout. A test that asserts that nothing happened calls this
    /// first (with one Rollout in its namespace), so it cannot pass only because the operator had
    /// not looked yet, or had not written yet.
    pub async fn reconciled(&self, name: &str) {
        let started = counter(&self.operators[0].metrics().await, "fledge_reconcile_total");
        let touch = NEXT.fetch_add(1, Ordering::SeqCst).to_string();
        self.rollouts()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"e2e.fledge.dev/touch": touch}}}),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("touching {name}: {e}"));
        self.wait_for(
            "the operator to reconcile again",
            Duration::from_secs(30),
            || async {
                let metrics = self.operators[0].metrics().await;
                let finished = counter(&metrics, "fledge_reconcile_duration_seconds_count");
                if finished > started {
                    Ok(())
                } else {
                    Err(format!(
                        "{finished} reconciles finished, {started} had started before"
                    ))
                }
            },
        )
        .await
    }

    /// Waits until the Rollout satisfies `pred`; the failure message shows its status.
    pub async fn wait_rollout(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Rollout) -> bool,
    ) -> Rollout {
        self.wait_for(what, timeout, || async {
            let r = self.rollouts().get(name).await.map_err(|e| e.to_string())?;
            if pred(&r) {
                Ok(r)
            } else {
                Err(serde_json::to_string(&r.status).unwrap_or_default())
            }
        })
        .await
    }
}

/// The value of the unlabelled sample `name` in an operator's `/metrics` text (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Records a child process in `$FLEDGE_E2E_PIDS_DIR` (one empty file named after its pid), so
/// that `hack/test.sh` can stop exactly these processes if the test binary itself is killed
/// before its `Drop`s run, and nothing else that happens to look alike.
pub fn record_child(child: &Child) {
    if let Some(dir) = std::env::var_os("FLEDGE_E2E_PIDS_DIR") {
        let _ = std::fs::write(PathBuf::from(dir).join(child.id().to_string()), "");
    }
}

/// Stops a child started by a test and forgets its record.
pub fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
    if let Some(dir) = std::env::var_os("FLEDGE_E2E_PIDS_DIR") {
        let _ = std::fs::remove_file(PathBuf::from(dir).join(child.id().to_string()));
    }
}

/// A child process the test started, stopped when the guard goes, also when the test panics
/// half-way (a `kill` at the end of the test would be skipped then).
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        record_child(&child);
        ChildGuard(child)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        stop_child(&mut self.0);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for (i, op) in self.operators.iter_mut().enumerate() {
            stop_child(&mut op.child);
            if std::thread::panicking() {
                eprintln!(
                    "----- operator {i} log ({}) -----\n{}",
                    op.log.display(),
                    op.logs()
                );
            }
            let _ = std::fs::remove_file(&op.log);
        }
        // Namespace deletion is asynchronous; don't wait for it. The test's client is bound to the
        // test's runtime, which is blocked here, so the thread makes a client of its own.
        let ns = self.ns.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = Api::<Namespace>::all(client().await)
                    .delete(&ns, &DeleteParams::background())
                    .await;
            });
        });
        let _ = handle.join();
    }
}

/// A canary Rollout as JSON with the given steps (JSON array) and replicas, image `web:<version>`.
pub fn canary_rollout(
    name: &str,
    replicas: i32,
    version: &str,
    steps: serde_json::Value,
) -> serde_json::Value {
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, version),
            "strategy": {"canary": {
                "stableService": format!("{name}-stable"),
                "canaryService": format!("{name}-canary"),
                "scaleDownDelaySeconds": 2,
                "steps": steps,
            }},
        },
    })
}

/// Pods of `app` at `version`. Locally the image is a name only (KWOK runs no containers; the pod
/// agent answers for them). On a real cluster, `FLEDGE_E2E_POD_IMAGE` names an image with
/// `fledge-pod-agent`, which each pod runs `--standalone`, told who it is by the downward API; the
/// version changes the template as a new image tag would.
pub fn pod_template(app: &str, version: &str) -> serde_json::Value {
    let Ok(image) = std::env::var("FLEDGE_E2E_POD_IMAGE") else {
        return json!({
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": format!("registry.example/web:{version}")}]},
        });
    };
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{
            "name": "app", "image": image,
            "command": ["fledge-pod-agent", "--standalone"],
            "env": [
                {"name": "FLEDGE_VERSION", "value": version},
                {"name": "FLEDGE_IMAGE", "value": format!("{image} (version {version})")},
                {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
                {"name": "FLEDGE_REVISION",
                 "valueFrom": field("metadata.labels['rollouts-pod-template-hash']")},
            ],
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 9090}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
        }]},
    })
}

pub const MINUTE: Duration = Duration::from_secs(60);

/// The body of one HTTP/1.1 request read from `socket` (by its Content-Length), for the test
/// receivers of webhooks and notifications; None when the peer closes first.
pub async fn read_request_body(socket: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16384];
    loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..end]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string());
        }
    }
}
