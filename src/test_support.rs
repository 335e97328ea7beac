//! Test helpers shared by the mocked-API tests.

use kube::client::Body;
use serde_json::Value;

/// The JSON body of a request sent to the mocked API server; Null when empty.
pub async fn json_body(body: Body) -> Value {
    let bytes = body.collect_bytes().await.expect("request body");
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    }
}
