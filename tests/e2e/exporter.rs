//! A metrics exporter the test controls: an HTTP server in the test process serving `/metrics`
//! with request counters that grow at rates the test sets, registered as a scrape target of the
//! local Prometheus (file_sd in `$FLEDGE_PROMETHEUS_TARGETS_DIR`, scraped every second).
//!
//! Counters: `e2e_requests_total{code="200"}` and `e2e_requests_total{code="500"}`, labelled by
//! Prometheus with `job=<the test's namespace>`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
struct Counters {
    ok: f64,
    errors: f64,
    ok_per_second: f64,
    errors_per_second: f64,
}

pub struct Exporter {
    pub job: String,
    pub address: String,
    counters: Arc<Mutex<Counters>>,
    target_file: Option<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Exporter {
    /// Starts serving on a free port of 127.0.0.1; not yet a scrape target.
    pub async fn start(job: &str) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind exporter");
        let address = listener.local_addr().unwrap().to_string();
        let counters = Arc::new(Mutex::new(Counters::default()));
        let serve = {
            let counters = counters.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let counters = counters.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        let _ = socket.read(&mut buf).await;
                        let body = {
                            let c = counters.lock().unwrap();
                            format!(
                                "# TYPE e2e_requests_total counter\n\
                                 e2e_requests_total{{code=\"200\"}} {}\n\
                                 e2e_requests_total{{code=\"500\"}} {}\n",
                                c.ok, c.errors
                            )
                        };
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            })
        };
        // The counters grow in small steps, like a service taking requests.
        let grow = {
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let mut c = counters.lock().unwrap();
                    c.ok += c.ok_per_second / 10.0;
                    c.errors += c.errors_per_second / 10.0;
                }
            })
        };
        Exporter {
            job: job.to_string(),
            address,
            counters,
            target_file: None,
            tasks: vec![serve, grow],
        }
    }

    /// Sets the request rates: `ok` and `errors` per second.
    pub fn set_rates(&self, ok: f64, errors: f64) {
        let mut c = self.counters.lock().unwrap();
        c.ok_per_second = ok;
        c.errors_per_second = errors;
    }

    /// Registers this exporter with the local Prometheus as job `self.job`.
    pub fn scrape(&mut self) {
        let dir = std::env::var("FLEDGE_PROMETHEUS_TARGETS_DIR").expect(
            "FLEDGE_PROMETHEUS_TARGETS_DIR is not set: eval \"$(hack/cluster.sh env)\" first",
        );
        let file = PathBuf::from(dir).join(format!("{}.json", self.job));
        let tmp = file.with_extension("json.tmp");
        let targets = serde_json::json!([{"targets": [self.address], "labels": {"job": self.job}}]);
        std::fs::write(&tmp, targets.to_string()).expect("writing the target file");
        std::fs::rename(&tmp, &file).expect("renaming the target file");
        self.target_file = Some(file);
    }

    /// PromQL: the share of requests answered 500 over the last `window`.
    pub fn error_ratio_query(&self, window: &str) -> String {
        let job = &self.job;
        format!(
            "sum(rate(e2e_requests_total{{job=\"{job}\",code=\"500\"}}[{window}])) / sum(rate(e2e_requests_total{{job=\"{job}\"}}[{window}]))"
        )
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(f) = &self.target_file {
            let _ = std::fs::remove_file(f);
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The local Prometheus's URL.
pub fn prometheus_url() -> String {
    std::env::var("FLEDGE_PROMETHEUS_URL")
        .expect("FLEDGE_PROMETHEUS_URL is not set: eval \"$(hack/cluster.sh env)\" first")
}

/// Waits until `query` gives a number at `prometheus` (the exporter is scraped and rate() has
/// enough samples), so an analysis started next measures data, not its absence.
pub async fn wait_for_value(prometheus: &str, query: &str) -> f64 {
    let client = prometheus_http_query::Client::try_from(prometheus).expect("prometheus url");
    let start = std::time::Instant::now();
    loop {
        if let Ok(r) = client.query(query).get().await
            && let Some(v) = r.data().as_vector().and_then(|v| v.first())
            && !v.sample().value().is_nan()
        {
            return v.sample().value();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no value for {query} at {prometheus} after 60s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Prometheus of the test's own, scraping only `exporter`, that the test can stop.
pub struct OwnPrometheus {
    pub url: String,
    child: std::process::Child,
    dir: PathBuf,
}

impl OwnPrometheus {
    pub async fn start(exporter: &Exporter) -> OwnPrometheus {
        let binary = prometheus_binary();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("{}-prometheus", exporter.job));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n\
             - job_name: {job}\n  static_configs: [{{targets: [\"{addr}\"]}}]\n",
            job = exporter.job,
            addr = exporter.address
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = std::process::Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        crate::harness::record_child(&child);
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        let start = std::time::Instant::now();
        while !reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "own Prometheus not ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        OwnPrometheus { url, child, dir }
    }

    /// Stops Prometheus at once, as a crash would.
    pub fn stop(&mut self) {
        crate::harness::stop_child(&mut self.child);
    }
}

impl Drop for OwnPrometheus {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Prometheus binary `hack/cluster.sh` uses (its `env` exports it), else Debian's.
fn prometheus_binary() -> PathBuf {
    std::env::var_os("FLEDGE_PROMETHEUS_BIN")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/prometheus")).filter(|p| p.exists()))
        .unwrap_or_else(|| panic!("no prometheus binary: set FLEDGE_PROMETHEUS_BIN"))
}

/// An HTTP endpoint answering a JSON body the test sets, to requests carrying `Authorization:
/// Bearer <token>`; others get 401.
pub struct JsonServer {
    pub url: String,
    body: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl JsonServer {
    pub async fn start(token: &str) -> JsonServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new("{}".to_string()));
        let expected = format!("authorization: bearer {}", token.to_lowercase());
        let task = {
            let body = body.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let body = body.clone();
                    let expected = expected.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                        let (status, text) = if request.contains(&expected) {
                            ("200 OK", body.lock().unwrap().clone())
                        } else {
                            ("401 Unauthorized", "{\"error\": \"no token\"}".to_string())
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                            text.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            })
        };
        JsonServer { url, body, task }
    }

    pub fn set_body(&self, json: serde_json::Value) {
        *self.body.lock().unwrap() = json.to_string();
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
