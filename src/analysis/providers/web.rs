//! Web: an HTTP request whose JSON answer (or the part `jsonPath` picks) is the result.

use std::time::Duration;

use jsonpath_rust::JsonPath;
use kube::ResourceExt;

use super::{Headers, HttpClients, MetricProvider};
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{AnalysisRun, Measurement, Metric, WebMethod, WebMetric};

/// The longest a measurement may take (the schema refuses more; older runs are cut to it).
pub const MAX_TIMEOUT_SECONDS: i64 = 60;
/// The largest answer read: a value for a condition, not a download.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Redirects followed, when the metric asks, before giving up.
pub const MAX_REDIRECTS: usize = 10;

#[derive(Clone)]
pub struct Web {
    http: HttpClients,
    client: kube::Client,
}

impl Web {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        Web { http, client }
    }
}

impl MetricProvider for Web {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(w) = &metric.provider.web else {
            return Outcome::Error("not a web metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let headers = match super::headers(&self.client, &ns, &w.headers).await {
            Ok(h) => h,
            Err(e) => return Outcome::Error(e),
        };
        let seconds = w
            .timeout_seconds
            .unwrap_or(crate::api::defaults::WEB_TIMEOUT_SECONDS)
            .clamp(1, MAX_TIMEOUT_SECONDS);
        let limit = Duration::from_secs(seconds.unsigned_abs());
        let outcome = match tokio::time::timeout(limit, exchange(&self.http, w, &headers)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Error(format!(
                "{} {}: no answer within {seconds}s",
                method_name(w.method),
                w.url
            )),
        };
        headers.redactor().outcome(outcome)
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// The request, and the redirects the metric allows, each checked against the denied ranges;
/// headers from Secrets go to the URL the metric names only, never to where it redirects.
pub async fn exchange(http: &HttpClients, w: &WebMetric, headers: &Headers) -> Outcome {
    let shown = format!("{} {}", method_name(w.method), w.url);
    let mut url = match reqwest::Url::parse(&w.url) {
        Ok(u) => u,
        Err(e) => return Outcome::Error(format!("{shown}: not a URL: {e}")),
    };
    let mut method = w.method.unwrap_or(WebMethod::Get);
    let mut body = w.body.clone();
    let mut redirected = false;
    let mut hops = 0;
    let mut response = loop {
        if let Err(e) = http.denied.check_url(&url) {
            return Outcome::Error(format!("{shown}: {e}"));
        }
        let client = http.pick(false);
        let mut request = match method {
            WebMethod::Get => client.get(url.clone()),
            WebMethod::Post => client.post(url.clone()),
            WebMethod::Put => client.put(url.clone()),
        };
        for (k, v) in &headers.values {
            if !(redirected && headers.from_secrets.contains(k)) {
                request = request.header(k, v);
            }
        }
        if let Some(b) = &body {
            request = request.body(b.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(format!("{shown}: {}", super::error_text(&e))),
        };
        let status = response.status();
        if !status.is_redirection() {
            break response;
        }
        if w.follow_redirects != Some(true) {
            return Outcome::Error(format!(
                "{shown} answered {status}, a redirect, which is followed only with \
                 followRedirects: true"
            ));
        }
        let next = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok());
        let Some(next) = next else {
            return Outcome::Error(format!("{shown} answered {status} with no usable Location"));
        };
        hops += 1;
        if hops > MAX_REDIRECTS {
            return Outcome::Error(format!("{shown}: more than {MAX_REDIRECTS} redirects"));
        }
        // 307 and 308 repeat the request; the others turn it into a GET, as browsers do.
        if !matches!(status.as_u16(), 307 | 308) {
            method = WebMethod::Get;
            body = None;
        }
        redirected = true;
        url = next;
    };
    let status = response.status();
    if w.measure_status_code == Some(true) {
        // Hooks answer by their status: the body is not read, so it needs no shape.
        return Outcome::Value(MetricValue::Number(f64::from(status.as_u16())));
    }
    let text = match read_capped(&mut response).await {
        Ok(t) => t,
        Err(e) => return Outcome::Error(format!("reading the answer of {shown}: {e}")),
    };
    if !status.is_success() {
        let snippet: String = text.chars().take(200).collect();
        return Outcome::Error(format!("{shown} answered {status}: {snippet}"));
    }
    outcome(&text, w.json_path.as_deref())
}

/// The answer's text, refused past [`MAX_BODY_BYTES`] without reading further.
pub(super) async fn read_capped(response: &mut reqwest::Response) -> Result<String, String> {
    let too_large = || format!("the answer is larger than {} MiB", MAX_BODY_BYTES >> 20);
    if response
        .content_length()
        .is_some_and(|l| l > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| super::error_text(&e))? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn method_name(m: Option<WebMethod>) -> &'static str {
    match m.unwrap_or(WebMethod::Get) {
        WebMethod::Get => "GET",
        WebMethod::Post => "POST",
        WebMethod::Put => "PUT",
    }
}

/// The value `json_path` picks from the answer `text`: one match is the value, several a list,
/// none no data. A number stays a number, so `result > 0.9` works on `{"rate": 0.95}`.
pub fn outcome(text: &str, json_path: Option<&str>) -> Outcome {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(e) => return Outcome::Error(format!("the answer is not JSON: {e}")),
    };
    let Some(path) = json_path else {
        return Outcome::Value(value(&json));
    };
    // kubectl's form `{$.a.b}` is what Argo Rollouts users write; the braces are not JSONPath.
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    match json.query(path) {
        Err(e) => Outcome::Error(format!("jsonPath {path:?}: {e}")),
        Ok(found) if found.is_empty() => {
            Outcome::NoData(format!("jsonPath {path:?} matched nothing in the answer"))
        }
        Ok(found) if found.len() == 1 => Outcome::Value(value(found[0])),
        Ok(found) => Outcome::Value(MetricValue::List(found.into_iter().map(value).collect())),
    }
}

fn value(j: &serde_json::Value) -> MetricValue {
    match j.as_f64() {
        Some(n) => MetricValue::Number(n),
        None => MetricValue::Json(j.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::analysis::providers::network::{Denied, parse_list};

    /// A server answering every request with `answer(path)`; the requests it saw, as text.
    async fn server(
        answer: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 16384];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split(' ').nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(request);
                let _ = socket.write_all(answer(&path).as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (base, seen)
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn redirect(to: &str) -> String {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    }

    fn clients(denied: &str) -> HttpClients {
        super::super::http_clients(Denied(Arc::new(parse_list(denied).unwrap()))).unwrap()
    }

    fn metric(url: &str, follow: Option<bool>) -> WebMetric {
        WebMetric {
            url: url.into(),
            follow_redirects: follow,
            json_path: Some("$.v".into()),
            ..Default::default()
        }
    }

    fn secret_headers() -> Headers {
        Headers {
            values: [
                ("X-Api-Key".to_string(), "s3cret-key".to_string()),
                ("X-Team".to_string(), "shop".to_string()),
            ]
            .into(),
            from_secrets: ["X-Api-Key".to_string()].into(),
        }
    }

    /// The endpoint redirects elsewhere: reqwest would follow and send every custom header
    /// (the API key from a Secret) to the new host. Not followed unless asked; when asked, the
    /// Secret's header stays behind.
    #[tokio::test]
    async fn a_redirect_is_not_followed_unless_asked_and_never_gets_secret_headers() {
        let (elsewhere, landed) = server(|_| ok(r#"{"v": 1}"#)).await;
        let target = format!("{elsewhere}/landing");
        let (start, _) = server(move |_| redirect(&target)).await;
        let http = clients("");
        let headers = secret_headers();
        let refused = exchange(&http, &metric(&start, None), &headers).await;
        assert!(
            matches!(&refused, Outcome::Error(m) if m.contains("followRedirects")),
            "{refused:?}"
        );
        assert!(landed.lock().unwrap().is_empty(), "not followed");
        let followed = exchange(&http, &metric(&start, Some(true)), &headers).await;
        assert_eq!(followed, Outcome::Value(MetricValue::Number(1.0)));
        let seen = landed.lock().unwrap().join("\n").to_lowercase();
        assert!(seen.contains("x-team: shop"), "{seen}");
        assert!(!seen.contains("s3cret-key"), "{seen}");
    }

    #[tokio::test]
    async fn denied_addresses_are_refused_directly_by_name_and_after_a_redirect() {
        let http = clients(super::super::network::DEFAULT_DENIED);
        let none = Headers::default();
        let direct = exchange(
            &http,
            &metric("http://169.254.169.254/latest/meta-data", None),
            &none,
        )
        .await;
        assert!(
            matches!(&direct, Outcome::Error(m) if m.contains("denied address range")),
            "{direct:?}"
        );
        let (start, _) = server(|_| redirect("http://169.254.169.254/latest/meta-data")).await;
        let hop = exchange(&http, &metric(&start, Some(true)), &none).await;
        assert!(
            matches!(&hop, Outcome::Error(m) if m.contains("denied address range")),
            "{hop:?}"
        );
        let (base, seen) = server(|_| ok(r#"{"v": 1}"#)).await;
        let by_name = base.replace("127.0.0.1", "localhost");
        let loopback_denied = clients("127.0.0.0/8,::1/128");
        let named = exchange(&loopback_denied, &metric(&by_name, None), &none).await;
        assert!(
            matches!(&named, Outcome::Error(m) if m.contains("denied address range")),
            "{named:?}"
        );
        assert!(seen.lock().unwrap().is_empty(), "never connected");
    }

    #[tokio::test]
    async fn an_answer_over_a_mebibyte_is_refused() {
        let big = format!("{{\"v\": 1, \"pad\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        let (base, _) = server(move |_| ok(&big)).await;
        let got = exchange(&clients(""), &metric(&base, None), &Headers::default()).await;
        assert!(
            matches!(&got, Outcome::Error(m) if m.contains("larger than 1 MiB")),
            "{got:?}"
        );
    }

    /// An endpoint answering 401 with the request echoed: the API key would land in the
    /// measurement's message.
    #[tokio::test]
    async fn a_secret_header_echoed_in_an_error_is_redacted() {
        let (base, _) = server(|_| {
            let body = r#"{"error": "bad key s3cret-key"}"#;
            format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        })
        .await;
        let headers = secret_headers();
        let got = headers
            .redactor()
            .outcome(exchange(&clients(""), &metric(&base, None), &headers).await);
        match got {
            Outcome::Error(m) => {
                assert!(m.contains("401") && !m.contains("s3cret"), "{m}");
                assert!(m.contains(crate::analysis::redact::REDACTED), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A hook that answers by its status: 403 is an answer like 200, whatever its body.
    #[tokio::test]
    async fn with_measure_status_code_the_status_is_the_result() {
        let (base, _) = server(|path| match path {
            "/no" => "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
                .to_string(),
            _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string(),
        })
        .await;
        let http = clients("");
        for (path, code) in [("/yes", 200.0), ("/no", 403.0)] {
            let w = WebMetric {
                url: format!("{base}{path}"),
                method: Some(WebMethod::Post),
                measure_status_code: Some(true),
                ..Default::default()
            };
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                exchange(&http, &w, &Headers::default()),
            )
            .await
            .expect("answered in time");
            assert_eq!(got, Outcome::Value(MetricValue::Number(code)), "{path}");
        }
    }

    #[test]
    fn picks_values() {
        let body = r#"{"data": {"rate": 0.95, "ok": true, "items": [1, 2]}}"#;
        assert_eq!(
            outcome(body, Some("$.data.rate")),
            Outcome::Value(MetricValue::Number(0.95))
        );
        assert_eq!(
            outcome(body, Some("{$.data.rate}")),
            Outcome::Value(MetricValue::Number(0.95))
        );
        assert_eq!(
            outcome(body, Some("$.data.ok")),
            Outcome::Value(MetricValue::Json(serde_json::json!(true)))
        );
        assert_eq!(
            outcome(body, Some("$.data.items[*]")),
            Outcome::Value(MetricValue::List(vec![
                MetricValue::Number(1.0),
                MetricValue::Number(2.0)
            ]))
        );
        assert!(matches!(outcome(body, Some("$.nope")), Outcome::NoData(_)));
        assert!(matches!(outcome(body, Some("$$[")), Outcome::Error(_)));
        assert!(matches!(outcome("<html>", None), Outcome::Error(_)));
    }
}
