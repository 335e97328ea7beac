//! A load generator for tests with real requests: sends requests (HTTP, or any [`Call`], such as
//! the gRPC calls of grpc.rs) at a fixed rate through the gateway and records, for each one, when it was sent, its status (0 when the connection failed
//! or timed out), the revision that answered (the pod agent's `x-fledge-revision` header) and its
//! latency. A request is sent on every tick whether or not earlier ones have returned, so a slow
//! or hanging backend cannot lower the rate and hide failures.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent, since the load started.
    pub sent: Duration,
    /// HTTP status, or 0 when no response came (connection error, timeout).
    pub status: u16,
    /// `x-fledge-revision` of the pod that answered; empty when none did.
    pub revision: String,
    pub latency: Duration,
    /// Why no response came, when none did.
    pub error: Option<String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.status == 200
    }
}

/// What to send: `GET <url><path>` with `Host: <host>` and extra headers.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

pub struct Load {
    start: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    inflight: Arc<AtomicUsize>,
    ticker: tokio::task::JoinHandle<u64>,
}

/// How long a request may take before it counts as failed (status 0). Generous on purpose: on a
/// machine whose CPUs are oversubscribed (here 20 runnable processes on 2 cores), the client's own
/// backlog of answers to read has taken over 10 s while the gateway had answered every request
/// 200 (its own counters said so); a request lost by the gateway or a pod still fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// What one request came back with.
pub struct Outcome {
    /// As [`Sample::status`].
    pub status: u16,
    pub revision: String,
    pub error: Option<String>,
}

/// Sends one request.
pub type Call = Arc<dyn Fn() -> BoxFuture<'static, Outcome> + Send + Sync>;

impl Load {
    /// Starts sending `rate` HTTP requests per second to `target`.
    pub fn start(target: Target, rate: u32) -> Load {
        let mut headers = HeaderMap::new();
        for (k, v) in &target.headers {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        headers.insert(
            reqwest::header::HOST,
            HeaderValue::from_str(&target.host).expect("host"),
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .default_headers(headers)
            .build()
            .expect("an HTTP client");
        let url = format!("{}{}", target.url.trim_end_matches('/'), target.path);
        Load::with(
            rate,
            Arc::new(move || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    match client.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let revision = r
                                .headers()
                                .get("x-fledge-revision")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            // Read the body so the connection goes back to the pool; a
                            // failure's says who answered it (the gateway or the pod agent).
                            let body = r.bytes().await.unwrap_or_default();
                            let error = (status >= 500).then(|| {
                                let text = String::from_utf8_lossy(&body);
                                format!("body {:?}", text.chars().take(120).collect::<String>())
                            });
                            Outcome {
                                status,
                                revision,
                                error,
                            }
                        }
                        Err(e) => Outcome {
                            status: 0,
                            revision: String::new(),
                            error: Some(format!("{e:?}")),
                        },
                    }
                }
                .boxed()
            }),
        )
    }

    /// Starts making `rate` calls per second with `call`.
    pub fn with(rate: u32, call: Call) -> Load {
        let start = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let inflight = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let (samples, stop, inflight) = (samples.clone(), stop.clone(), inflight.clone());
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
                let mut sent = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    sent += 1;
                    let (call, samples, inflight) =
                        (call.clone(), samples.clone(), inflight.clone());
                    inflight.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let t0 = Instant::now();
                        let o = call().await;
                        samples.lock().unwrap().push(Sample {
                            sent: t0 - start,
                            status: o.status,
                            revision: o.revision,
                            latency: t0.elapsed(),
                            error: o.error,
                        });
                        inflight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                sent
            })
        };
        Load {
            start,
            samples,
            stop,
            inflight,
            ticker,
        }
    }

    /// Now, on the load's clock (`Sample::sent`).
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The first `n` requests sent at or after `from`, once all of them have answered.
    pub async fn window(&self, from: Duration, n: usize) -> Vec<Sample> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut got: Vec<Sample> = self
                .samples
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.sent >= from)
                .cloned()
                .collect();
            // Requests answer out of order; wait for a margin past n so that the first n by send
            // time are all in.
            if got.len() >= n + 50 || (got.len() >= n && Instant::now() > deadline) {
                got.sort_by_key(|s| s.sent);
                got.truncate(n);
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} answers in 120s since {from:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops sending, waits for every request in flight, and returns all samples by send time.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let sent = self.ticker.await.expect("the load ticker");
        let deadline = Instant::now() + TIMEOUT + Duration::from_secs(10);
        while self.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut all = self.samples.lock().unwrap().clone();
        assert_eq!(all.len() as u64, sent, "every request sent has an outcome");
        all.sort_by_key(|s| s.sent);
        all
    }
}

/// Share of `samples` answered by `revision`, in percent.
pub fn share(samples: &[Sample], revision: &str) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.iter().filter(|s| s.revision == revision).count();
    100.0 * n as f64 / samples.len() as f64
}

/// The samples that failed (a 5xx or no response at all), described, at most `limit`.
pub fn failures(samples: &[Sample], limit: usize) -> Vec<String> {
    samples
        .iter()
        .filter(|s| !s.ok())
        .take(limit)
        .map(|s| {
            format!(
                "at {:?}: status {} revision {:?} after {:?} {}",
                s.sent,
                s.status,
                s.revision,
                s.latency,
                s.error.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// The latency below which `q` (0..1) of the samples answered.
pub fn quantile(samples: &[Sample], q: f64) -> Duration {
    let mut l: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    l.sort();
    l.get(((l.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}
