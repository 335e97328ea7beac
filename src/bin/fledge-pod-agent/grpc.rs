//! gRPC on every pod IP: cleartext HTTP/2 (h2c, prior knowledge), the way a gateway calls a
//! GRPCRoute's backends. One unary method, `grpc.health.v1.Health/Check`, whose answer
//! (`HealthCheckResponse{status: SERVING}`) is two protobuf bytes written by hand; which pod
//! answered travels as initial metadata (`x-fledge-*`), as it does in HTTP headers.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Request, Response};
use h2::RecvStream;
use h2::server::SendResponse;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::Shared;

/// The one method served.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse { status: SERVING }`: field 1, varint, value 1.
const SERVING: [u8; 2] = [0x08, 0x01];
/// A request message larger than this is refused (a health check is a service name).
const MAX_MESSAGE: usize = 64 * 1024;

/// gRPC status codes used here.
const OK: u32 = 0;
const INTERNAL: u32 = 13;
const UNIMPLEMENTED: u32 = 12;
const UNAVAILABLE: u32 = 14;
const RESOURCE_EXHAUSTED: u32 = 8;

pub(super) async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("gRPC listener: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut conn = match h2::server::handshake(socket).await {
                Ok(c) => c,
                Err(e) => {
                    debug!("gRPC handshake on {local}: {e}");
                    return;
                }
            };
            while let Some(stream) = conn.accept().await {
                match stream {
                    Ok((request, respond)) => {
                        tokio::spawn(call(shared.clone(), local.ip(), request, respond));
                    }
                    Err(e) => {
                        debug!("gRPC connection on {local}: {e}");
                        return;
                    }
                }
            }
        });
    }
}

/// One unary call: read the request message, answer it (or not), end with `grpc-status`.
async fn call(
    shared: Shared,
    local: IpAddr,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let path = request.uri().path().to_string();
    let message = read_message(request.into_body()).await;
    let IpAddr::V4(ip) = local else {
        return trailers_only(respond, UNAVAILABLE, "no pod here", None);
    };
    let served = shared.0.at(ip);
    let Some(s) = served else {
        return trailers_only(respond, UNAVAILABLE, &format!("no pod at {ip}"), None);
    };
    if path != HEALTH_CHECK {
        let why = format!("{path}: only {HEALTH_CHECK} is served");
        return trailers_only(respond, UNIMPLEMENTED, &why, Some(&s));
    }
    if let Err((code, why)) = message {
        return trailers_only(respond, code, &why, Some(&s));
    }
    if s.fails_next().await {
        return trailers_only(respond, INTERNAL, "ERROR_RATE", Some(&s));
    }
    let mut head = Response::new(());
    grpc_headers(head.headers_mut());
    s.identify(head.headers_mut());
    let mut frame = Vec::with_capacity(5 + SERVING.len());
    frame.push(0); // not compressed
    frame.extend_from_slice(&(SERVING.len() as u32).to_be_bytes());
    frame.extend_from_slice(&SERVING);
    let sent = respond.send_response(head, false).and_then(|mut stream| {
        stream.send_data(Bytes::from(frame), false)?;
        stream.send_trailers(status_trailers(OK, ""))
    });
    if let Err(e) = sent {
        debug!("gRPC answer to {ip}: {e}");
    }
}

/// Reads the request's one length-prefixed message; the error is the status to answer with.
async fn read_message(mut body: RecvStream) -> Result<Vec<u8>, (u32, String)> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| (INTERNAL, format!("reading the request: {e}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > MAX_MESSAGE + 5 {
            return Err((RESOURCE_EXHAUSTED, "request message too large".into()));
        }
        buf.extend_from_slice(&chunk);
    }
    unframe(&buf)
}

/// The one message of a request body: a compression flag, a 4-byte big-endian length, the bytes.
fn unframe(buf: &[u8]) -> Result<Vec<u8>, (u32, String)> {
    match buf {
        [0, len @ ..] if len.len() >= 4 => {
            let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if len.len() - 4 == n {
                Ok(len[4..].to_vec())
            } else {
                Err((
                    INTERNAL,
                    format!("a {n}-byte message in {} bytes", buf.len()),
                ))
            }
        }
        [1, ..] => Err((UNIMPLEMENTED, "compressed messages".into())),
        _ => Err((INTERNAL, "not one length-prefixed gRPC message".into())),
    }
}

fn grpc_headers(headers: &mut HeaderMap) {
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
}

fn status_trailers(code: u32, message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(code));
    if !message.is_empty() {
        // grpc-message is percent-encoded; these messages are plain ASCII without '%'.
        if let Ok(v) = HeaderValue::from_str(message) {
            t.insert("grpc-message", v);
        }
    }
    t
}

/// An answer with no message: status and headers in one HEADERS frame, as gRPC allows for errors.
fn trailers_only(
    mut respond: SendResponse<Bytes>,
    code: u32,
    message: &str,
    pod: Option<&super::Served>,
) {
    let mut head = Response::new(());
    grpc_headers(head.headers_mut());
    head.headers_mut().extend(status_trailers(code, message));
    if let Some(s) = pod {
        s.identify(head.headers_mut());
    }
    if let Err(e) = respond.send_response(head, true) {
        debug!("gRPC error answer: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_body_holds_exactly_one_uncompressed_message() {
        assert_eq!(unframe(&[0, 0, 0, 0, 0]), Ok(vec![]));
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 0x0a, 0]), Ok(vec![0x0a, 0]));
        assert_eq!(unframe(&[0, 0, 0, 0, 3, 0x0a, 0]).unwrap_err().0, INTERNAL);
        assert_eq!(unframe(&[0, 0, 0, 0, 1, 1, 2]).unwrap_err().0, INTERNAL);
        assert_eq!(unframe(&[1, 0, 0, 0, 0]).unwrap_err().0, UNIMPLEMENTED);
        assert_eq!(unframe(&[]).unwrap_err().0, INTERNAL);
        assert_eq!(unframe(&[0, 0, 0]).unwrap_err().0, INTERNAL);
    }
}
