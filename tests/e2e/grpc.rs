//! A gRPC client for tests with real calls: unary `grpc.health.v1.Health/Check` over cleartext
//! HTTP/2 (h2c, prior knowledge) through the gateway, on one multiplexed connection, as a gRPC
//! channel makes them. The answer's `x-fledge-revision` metadata says which revision answered.

use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use h2::client::SendRequest;
use tokio::net::TcpStream;

use crate::load::{Call, Outcome, TIMEOUT};

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckRequest { service: "" }`, length-prefixed: an empty message.
const EMPTY_REQUEST: [u8; 5] = [0, 0, 0, 0, 0];
/// `HealthCheckResponse { status: SERVING }`, length-prefixed.
const SERVING: [u8; 7] = [0, 0, 0, 0, 2, 0x08, 0x01];
/// What answers may sit received but not yet read. The h2 crate closes a connection (GOAWAY
/// ENHANCE_YOUR_CALM, "too_many_data_frames") once the small DATA frames it holds for the
/// application cost more than its budget (about 32 KiB: some 130 answers of 7 bytes), a guard
/// against floods. With hundreds of calls in flight on a busy machine, the tasks that read them
/// fall that far behind, and every call on the connection failed for a reason that is the
/// client's own; the peer here is the test's own gateway.
const DATA_FRAME_BUDGET: usize = 64 << 20;

pub struct Channel {
    /// host:port of the gateway.
    addr: String,
    /// The `:authority` the GRPCRoute's hostnames match.
    authority: String,
    conn: tokio::sync::Mutex<Option<SendRequest<Bytes>>>,
}

impl Channel {
    /// `url`: the gateway (`http://host:port`); `host`: the route's hostname.
    pub fn new(url: &str, host: &str) -> Arc<Channel> {
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Arc::new(Channel {
            addr,
            authority: host.to_string(),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// A sender ready for a new call; connects (again) when there is no usable connection. A
    /// connection the gateway closed (GOAWAY) refuses new streams before any is sent, which
    /// gRPC channels retry on a new connection too.
    async fn sender(&self) -> Result<SendRequest<Bytes>, String> {
        let mut conn = self.conn.lock().await;
        if let Some(s) = conn.clone()
            && let Ok(s) = s.ready().await
        {
            return Ok(s);
        }
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
        let (s, connection) = h2::client::Builder::new()
            .data_frame_budget(DATA_FRAME_BUDGET)
            .handshake(tcp)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(connection);
        *conn = Some(s.clone());
        s.ready().await.map_err(|e| format!("new connection: {e}"))
    }

    /// One Health/Check call. `status` 200: HTTP 200 and grpc-status 0 with the SERVING answer;
    /// 500: any other grpc-status (or a malformed answer); the gateway's own HTTP status when it
    /// answered that; 0: no answer.
    pub async fn check(&self) -> Outcome {
        match tokio::time::timeout(TIMEOUT, self.try_check()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Outcome {
                status: 0,
                revision: String::new(),
                error: Some(e),
            },
            Err(_) => Outcome {
                status: 0,
                revision: String::new(),
                error: Some(format!("timed out after {TIMEOUT:?}")),
            },
        }
    }

    async fn try_check(&self) -> Result<Outcome, String> {
        let mut sender = self.sender().await?;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{HEALTH_CHECK}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = sender
            .send_request(request, false)
            .map_err(|e| format!("sending: {e}"))?;
        body.send_data(Bytes::from_static(&EMPTY_REQUEST), true)
            .map_err(|e| format!("sending the message: {e}"))?;
        let response = response.await.map_err(|e| format!("response: {e}"))?;
        let (head, mut stream) = response.into_parts();
        let revision = head
            .headers
            .get("x-fledge-revision")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut message = Vec::new();
        while let Some(chunk) = stream.data().await {
            let chunk = chunk.map_err(|e| format!("reading the answer: {e}"))?;
            let _ = stream.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = stream
            .trailers()
            .await
            .map_err(|e| format!("reading the trailers: {e}"))?
            .unwrap_or_default();
        // An error may come trailers-only: grpc-status in the headers.
        let grpc = |k: &str| {
            trailers
                .get(k)
                .or_else(|| head.headers.get(k))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code = grpc("grpc-status");
        let (status, error) = if head.status != 200 {
            (head.status.as_u16(), Some(format!("HTTP {}", head.status)))
        } else if code.as_deref() != Some("0") {
            let m = grpc("grpc-message").unwrap_or_default();
            (500, Some(format!("grpc-status {code:?}: {m}")))
        } else if message != SERVING {
            (500, Some(format!("unexpected answer {message:?}")))
        } else {
            (200, None)
        };
        Ok(Outcome {
            status,
            revision,
            error,
        })
    }

    /// Health/Check calls, for [`crate::load::Load::with`].
    pub fn calls(self: &Arc<Channel>) -> Call {
        let channel = self.clone();
        Arc::new(move || {
            let channel = channel.clone();
            async move { channel.check().await }.boxed()
        })
    }
}
