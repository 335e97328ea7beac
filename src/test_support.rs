//! Test helpers shared by the mocked-API tests.

use http::Response;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock::SendResponse;

/// The JSON body of a request sent to the mocked API server; Null when empty.
pub async fn json_body(body: Body) -> Value {
    let bytes = body.collect_bytes().await.expect("request body");
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    }
}

/// Answers a mocked API request with `code` and a JSON `body`.
pub fn reply(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    let response = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("serialize")))
        .expect("response");
    send.send_response(response);
}
