//! A local HTTP server for the providers' contract tests: it reads each request whole (headers
//! and a `Content-Length` body), hands it parsed to the test's handler, and answers what the
//! handler says. Requests the handler refuses are answered 599, which no provider takes for a
//! measurement.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the server read it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub method: String,
    /// The path, percent-encoding kept.
    pub path: String,
    /// The raw query string, percent-encoding kept (a signature covers it as sent).
    pub raw_query: String,
    /// The query's pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased; a repeated header's values joined with `,`.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What the handler answers: a status, a content type and a body; `Err` names what the request
/// got wrong (answered 599, and kept for the test to show).
pub type Answer = Result<(u16, &'static str, String), String>;

/// Every request a server saw, with the handler's complaint about it, if any.
pub type Log = Arc<Mutex<Vec<(Seen, Option<String>)>>>;

/// Starts a server; its base URL and its [`Log`].
pub async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> (String, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let log: Log = Arc::default();
    let seen = log.clone();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let Some(request) = read(&mut socket).await else {
                continue;
            };
            let answer = handler(&request);
            let (status, kind, body) = match &answer {
                Ok((s, k, b)) => (*s, *k, b.clone()),
                Err(why) => (599, "text/plain", why.clone()),
            };
            seen.lock().expect("log").push((request, answer.err()));
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (base, log)
}

async fn read(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        headers
            .entry(k.trim().to_lowercase())
            .and_modify(|old| {
                old.push(',');
                old.push_str(v.trim());
            })
            .or_insert_with(|| v.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let query = reqwest::Url::parse(&format!("http://x/?{raw_query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    Some(Seen {
        method,
        path,
        raw_query,
        query,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// HTTP clients as the controller builds them, denying nothing (the server is on loopback).
pub fn clients() -> super::HttpClients {
    super::http_clients(super::network::Denied::default()).expect("clients")
}

/// Runs `f` within 20s: a provider waiting on a server that never answers fails the test.
pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), f)
        .await
        .expect("the exchange finished within 20s")
}
