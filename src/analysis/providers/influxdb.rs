//! InfluxDB: Flux through 2.x's `POST /api/v2/query` (annotated CSV back), or InfluxQL through
//! 1.x's `GET /query` (JSON back).

use kube::ResourceExt;

use super::{HttpClients, MetricProvider, query};
use crate::analysis::redact::Redactor;
use crate::analysis::value::{MetricValue, Outcome};
use crate::api::analysis::{AnalysisRun, InfluxDbMetric, InfluxQueryLanguage, Measurement, Metric};

#[derive(Clone)]
pub struct InfluxDb {
    http: HttpClients,
    client: kube::Client,
}

impl InfluxDb {
    pub fn new(http: HttpClients, client: kube::Client) -> Self {
        InfluxDb { http, client }
    }
}

/// How a request authenticates, its values read from Secrets.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Auth {
    #[default]
    None,
    Token(String),
    Basic(String, String),
}

impl Auth {
    fn redactor(&self) -> Redactor {
        match self {
            Auth::None => Redactor::default(),
            Auth::Token(t) => Redactor::new([t.clone()]),
            Auth::Basic(u, p) => Redactor::new([u.clone(), p.clone()]),
        }
    }
}

impl MetricProvider for InfluxDb {
    async fn measure(
        &self,
        run: &AnalysisRun,
        metric: &Metric,
        _: Option<&Measurement>,
    ) -> Outcome {
        let Some(i) = &metric.provider.influxdb else {
            return Outcome::Error("not an influxdb metric".into());
        };
        let ns = run.namespace().unwrap_or_default();
        let read = |r| super::secret_value(&self.client, &ns, r);
        let auth = match (&i.token_secret, &i.username_secret, &i.password_secret) {
            (Some(t), _, _) => match read(t).await {
                Ok(t) => Auth::Token(t.trim().to_string()),
                Err(e) => return Outcome::Error(e),
            },
            (None, Some(u), Some(p)) => match (read(u).await, read(p).await) {
                (Ok(u), Ok(p)) => Auth::Basic(u.trim().to_string(), p.trim().to_string()),
                (Err(e), _) | (_, Err(e)) => return Outcome::Error(e),
            },
            _ => Auth::None,
        };
        let outcome = measure(&self.http, i, &auth).await;
        auth.redactor().outcome(outcome)
    }

    async fn clean_up(&self, _: &AnalysisRun) -> Result<(), String> {
        Ok(())
    }
}

/// The request for `i`, and its answer as an outcome.
pub async fn measure(http: &HttpClients, i: &InfluxDbMetric, auth: &Auth) -> Outcome {
    let client = http.pick(i.insecure == Some(true));
    let shown = format!("influxdb at {}", i.address);
    let request = match i.language {
        InfluxQueryLanguage::Flux => {
            let Some(org) = i.org.as_deref() else {
                return Outcome::Error("flux needs org".into());
            };
            let mut url = match query::endpoint(http, "influxdb", &i.address, "/api/v2/query") {
                Ok(u) => u,
                Err(e) => return Outcome::Error(e),
            };
            url.query_pairs_mut().append_pair("org", org);
            let body = serde_json::json!({
                "query": i.query,
                "type": "flux",
                "dialect": {"header": true, "annotations": ["datatype"], "delimiter": ","},
            });
            client
                .post(url)
                .header(reqwest::header::ACCEPT, "application/csv")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
        }
        InfluxQueryLanguage::Influxql => {
            let Some(db) = i.database.as_deref() else {
                return Outcome::Error("influxql needs database".into());
            };
            let mut url = match query::endpoint(http, "influxdb", &i.address, "/query") {
                Ok(u) => u,
                Err(e) => return Outcome::Error(e),
            };
            url.query_pairs_mut()
                .append_pair("db", db)
                .append_pair("q", &i.query)
                .append_pair("epoch", "s");
            client
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json")
        }
    };
    let request = match auth {
        Auth::None => request,
        Auth::Token(t) => request.header(reqwest::header::AUTHORIZATION, format!("Token {t}")),
        Auth::Basic(u, p) => request.basic_auth(u, Some(p)),
    };
    let (status, text) =
        match query::exchange(request, &shown, query::timeout(i.timeout.as_deref())).await {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e),
        };
    if !status.is_success() {
        // Both versions explain a refusal in JSON: {"error": ...} (1.x), {"message": ...} (2.x).
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|j| {
                j.get("error")
                    .or_else(|| j.get("message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| query::snippet(&text));
        return Outcome::Error(format!("{shown} answered {status}: {why}"));
    }
    match i.language {
        InfluxQueryLanguage::Flux => flux_outcome(&i.query, &text),
        InfluxQueryLanguage::Influxql => influxql_outcome(&i.query, &text),
    }
}

/// InfluxQL's JSON: `{"results": [{"statement_id": 0, "series": [{"columns": ["time", "mean"],
/// "values": [[t, 0.5]]}]}]}`. Each series gives its last row's first value that is not the
/// time; an error of any statement is the measurement's error.
pub fn influxql_outcome(q: &str, text: &str) -> Outcome {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(j) => j,
        Err(e) => return Outcome::Error(format!("influxdb's answer is not JSON: {e}")),
    };
    if let Some(e) = json.get("error").and_then(|e| e.as_str()) {
        return Outcome::Error(format!("influxdb: {e}"));
    }
    let Some(results) = json.get("results").and_then(|r| r.as_array()) else {
        return Outcome::Error(format!(
            "influxdb's answer has no results: {}",
            query::snippet(text)
        ));
    };
    let mut found = Vec::new();
    for r in results {
        if let Some(e) = r.get("error").and_then(|e| e.as_str()) {
            return Outcome::Error(format!("influxdb: {e}"));
        }
        for s in r
            .get("series")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
        {
            let columns: Vec<&str> = s
                .get("columns")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or_default())
                .collect();
            let Some(at) = columns.iter().position(|c| *c != "time") else {
                continue;
            };
            let last = s
                .get("values")
                .and_then(|v| v.as_array())
                .and_then(|rows| rows.last())
                .and_then(|row| row.get(at));
            match last {
                None | Some(serde_json::Value::Null) => {}
                Some(v) => found.push(match query::number(v) {
                    Some(n) => MetricValue::Number(n),
                    None => MetricValue::Json(v.clone()),
                }),
            }
        }
    }
    query::values(found, || format!("the query returned no data: {q}"))
}

/// Flux's annotated CSV: tables (each with its own header row, separated by blank lines) whose
/// `_value` column holds the values; `#datatype` says which are numbers. An `error` column
/// without `_value` is how Flux reports an error after the answer has begun.
pub fn flux_outcome(q: &str, text: &str) -> Outcome {
    let mut found = Vec::new();
    let mut types: Vec<String> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            header = None;
            types.clear();
            continue;
        }
        let cells = csv_cells(line);
        if cells.first().is_some_and(|c| c.starts_with('#')) {
            if cells[0] == "#datatype" {
                types = cells;
            }
            continue;
        }
        let Some(h) = &header else {
            header = Some(cells);
            continue;
        };
        let cell = |name: &str| {
            h.iter()
                .position(|c| c == name)
                .and_then(|i| cells.get(i).map(|c| (i, c)))
        };
        if let Some((i, value)) = cell("_value") {
            let typed = types.get(i).map(String::as_str).unwrap_or("double");
            let number = matches!(typed, "double" | "long" | "unsignedLong")
                .then(|| value.parse::<f64>().ok())
                .flatten();
            match number {
                Some(n) => found.push(MetricValue::Number(n)),
                None if value.is_empty() => {}
                None => found.push(MetricValue::Json(serde_json::Value::String(value.clone()))),
            }
        } else if let Some((_, e)) = cell("error") {
            return Outcome::Error(format!("influxdb: {e}"));
        }
    }
    query::values(found, || format!("the query returned no data: {q}"))
}

/// One CSV line's cells (RFC 4180: `"` quotes a cell, `""` is a quote inside one).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let cell = cells.last_mut().expect("a cell");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cell.push(c),
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influxql_series_rows_errors_and_no_data() {
        let one = r#"{"results":[{"statement_id":0,"series":[{"name":"errors","columns":["time","last"],"values":[["2026-11-30T08:53:54Z",0.5]]}]}]}"#;
        assert_eq!(
            influxql_outcome("q", one),
            Outcome::Value(MetricValue::Number(0.5))
        );
        let grouped = r#"{"results":[{"statement_id":0,"series":[
            {"name":"e","tags":{"app":"a"},"columns":["time","mean"],"values":[[1,0.1],[2,0.2]]},
            {"name":"e","tags":{"app":"b"},"columns":["time","mean"],"values":[[2,null]]}]}]}"#;
        assert_eq!(
            influxql_outcome("q", grouped),
            Outcome::Value(MetricValue::Number(0.2))
        );
        let empty = r#"{"results":[{"statement_id":0}]}"#;
        assert!(
            matches!(influxql_outcome("SELECT 1", empty), Outcome::NoData(m) if m.contains("SELECT 1"))
        );
        let bad = r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#;
        assert!(
            matches!(influxql_outcome("q", bad), Outcome::Error(m) if m.contains("database not found"))
        );
        let parse = r#"{"error":"error parsing query: found SELEC"}"#;
        assert!(matches!(influxql_outcome("q", parse), Outcome::Error(m) if m.contains("parsing")));
    }

    /// InfluxDB 2.x's documented `POST /api/v2/query`: the org in the query string, the token
    /// as `Authorization: Token`, the Flux in a JSON body, annotated CSV asked for. The Debian
    /// package is 1.6, which has no Flux: this is its documented contract, not a live server.
    #[tokio::test]
    async fn flux_sends_the_documented_request_and_redacts_the_token() {
        use crate::analysis::providers::test_server;
        let flux = r#"from(bucket: "app") |> range(start: -5m) |> filter(fn: (r) => r._measurement == "errors") |> last()"#;
        let (base, log) = test_server::start(move |r| {
            let ok = r.method == "POST"
                && r.path == "/api/v2/query"
                && r.query == [("org".to_string(), "shop".to_string())]
                && r.header("authorization") == Some("Token influx-s3cret")
                && r.header("content-type") == Some("application/json")
                && r.header("accept") == Some("application/csv");
            if !ok {
                return Err(format!("{r:?}"));
            }
            let body: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
            if body["query"] != flux || body["type"] != "flux" || body["dialect"]["header"] != true {
                return Err(format!("body {body}"));
            }
            if body["dialect"]["annotations"] == serde_json::json!(["datatype"]) {
                let csv = "#datatype,string,long,dateTime:RFC3339,double\r\n,result,table,_time,_value\r\n,_result,0,2026-11-30T08:00:00Z,0.01\r\n\r\n";
                Ok((200, "text/csv; charset=utf-8", csv.to_string()))
            } else {
                Err(format!("annotations {}", body["dialect"]["annotations"]))
            }
        })
        .await;
        let mut m = InfluxDbMetric {
            address: base.clone(),
            language: InfluxQueryLanguage::Flux,
            query: flux.into(),
            org: Some("shop".into()),
            ..Default::default()
        };
        let token = Auth::Token("influx-s3cret".into());
        let got = test_server::within(measure(&test_server::clients(), &m, &token)).await;
        assert_eq!(got, Outcome::Value(MetricValue::Number(0.01)));
        assert_eq!(
            log.lock().unwrap()[0].1,
            None,
            "{:?}",
            log.lock().unwrap()[0]
        );
        // A refusal as 2.x words it, echoing the token: an error, the token redacted.
        let (refusing, _) = test_server::start(|_| {
            Ok((
                401,
                "application/json",
                r#"{"code":"unauthorized","message":"token influx-s3cret is not valid"}"#
                    .to_string(),
            ))
        })
        .await;
        m.address = refusing;
        let got = test_server::within(measure(&test_server::clients(), &m, &token)).await;
        let shown = token.redactor().outcome(got);
        assert!(
            matches!(&shown, Outcome::Error(e) if e.contains("401") && e.contains("not valid") && !e.contains("s3cret")),
            "{shown:?}"
        );
    }

    #[test]
    fn flux_tables_types_errors_and_no_data() {
        let csv = "#datatype,string,long,dateTime:RFC3339,double,string\r\n\
                   ,result,table,_time,_value,app\r\n\
                   ,_result,0,2026-11-30T08:00:00Z,0.25,\"a,b\"\r\n\
                   \r\n\
                   #datatype,string,long,dateTime:RFC3339,double\r\n\
                   ,result,table,_time,_value\r\n\
                   ,_result,1,2026-11-30T08:00:00Z,0.5\r\n\r\n";
        assert_eq!(
            flux_outcome("q", csv),
            Outcome::Value(MetricValue::List(vec![
                MetricValue::Number(0.25),
                MetricValue::Number(0.5)
            ]))
        );
        let text = "#datatype,string,long,string\r\n,result,table,_value\r\n,_result,0,ok\r\n";
        assert_eq!(
            flux_outcome("q", text),
            Outcome::Value(MetricValue::Json(serde_json::json!("ok")))
        );
        assert!(
            matches!(flux_outcome("from(x)", "\r\n"), Outcome::NoData(m) if m.contains("from(x)"))
        );
        assert!(matches!(flux_outcome("q", ""), Outcome::NoData(_)));
        let error = "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"panic: runtime error, index out of range\",\r\n";
        assert!(
            matches!(flux_outcome("q", error), Outcome::Error(m) if m.contains("index out of range"))
        );
        assert_eq!(
            csv_cells(r#"a,"b ""c"", d",e"#),
            vec!["a", r#"b "c", d"#, "e"]
        );
    }
}
