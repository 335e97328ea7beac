//! The Kubernetes client, with a token-bucket limit on requests (`--kube-qps`, `--kube-burst`)
//! so a resync of 10,000 Rollouts cannot flood the API server.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use kube::client::ClientBuilder;
use kube::{Client, Config};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Builds a client from `config` that sends at most `qps` requests a second on average, with
/// bursts of up to `burst`.
pub fn build(config: Config, qps: f32, burst: u32) -> crate::Result<Client> {
    let builder = ClientBuilder::try_from(config).map_err(crate::Error::Kube)?;
    Ok(builder.with_layer(&RateLimitLayer::new(qps, burst)).build())
}

/// A token bucket: `burst` tokens, refilled at `qps` a second.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitLayer {
    qps: f64,
    burst: f64,
}

impl RateLimitLayer {
    pub fn new(qps: f32, burst: u32) -> Self {
        RateLimitLayer {
            qps: f64::from(qps).max(0.001),
            burst: f64::from(burst.max(1)),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limit: *self,
            tokens: self.burst,
            refilled: Instant::now(),
            sleep: None,
        }
    }
}

/// See [`RateLimitLayer`]. kube wraps the stack in a buffer, so one instance sees every request.
pub struct RateLimit<S> {
    inner: S,
    limit: RateLimitLayer,
    tokens: f64,
    refilled: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> RateLimit<S> {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.qps).min(self.limit.burst);
        self.refilled = now;
    }
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            self.refill(Instant::now());
            if self.tokens >= 1.0 {
                return self.inner.poll_ready(cx);
            }
            let wait = (1.0 - self.tokens) / self.limit.qps;
            self.sleep = Some(Box::pin(tokio::time::sleep(Duration::from_secs_f64(wait))));
        }
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.tokens -= 1.0;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[derive(Clone)]
    struct Echo;
    impl Service<u32> for Echo {
        type Response = u32;
        type Error = Infallible;
        type Future = std::future::Ready<Result<u32, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, r: u32) -> Self::Future {
            std::future::ready(Ok(r))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_qps() {
        use tower::ServiceExt;
        let mut svc = RateLimitLayer::new(10.0, 5).layer(Echo);
        let start = Instant::now();
        for i in 0..5 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        // The burst is free; with paused time no clock has moved.
        assert_eq!(Instant::now(), start);
        for i in 0..10 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        // Ten more at 10/s take about a second of (virtual) time.
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(950) && waited <= Duration::from_millis(1100),
            "{waited:?}"
        );
    }
}
