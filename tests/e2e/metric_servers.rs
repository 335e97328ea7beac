//! The graphite and influxdb providers against the real servers from Debian's packages
//! (graphite-carbon + graphite-web 1.1, InfluxDB 1.6 with InfluxQL), started once per cluster
//! by hack/metric-servers.sh in `$FLEDGE_CLUSTER_DIR/metric-servers`. Each test writes its own
//! series, then standalone AnalysisRuns measure them to Successful, Failed, Inconclusive (no
//! data) and Error.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use fledge::api::analysis::{AnalysisPhase, AnalysisRun};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::harness::{MINUTE, TestEnv};

/// The servers' addresses, from hack/metric-servers.sh's `export` lines.
struct Servers {
    graphite: String,
    carbon: String,
    influxdb: String,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let cluster = std::env::var("FLEDGE_CLUSTER_DIR")
            .expect("FLEDGE_CLUSTER_DIR is not set: eval \"$(hack/cluster.sh env)\" first");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/metric-servers.sh");
        let out = std::process::Command::new("bash")
            .args([script, "up", &format!("{cluster}/metric-servers")])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("running hack/metric-servers.sh");
        assert!(out.status.success(), "hack/metric-servers.sh up failed");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} missing from {text}"))
                .to_string()
        };
        Servers {
            graphite: var("FLEDGE_GRAPHITE_URL"),
            carbon: var("FLEDGE_CARBON_ADDR"),
            influxdb: var("FLEDGE_INFLUXDB_URL"),
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A standalone run of one metric judged `result < 0.05`, failing at or above.
fn run(name: &str, provider: serde_json::Value, args: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {
            "args": args,
            "metrics": [{
                "name": "error-rate",
                "successCondition": "result < 0.05",
                "failureCondition": "result >= 0.05",
                "consecutiveErrorLimit": 1,
                "provider": provider,
            }],
        },
    })
}

async fn wait_done(env: &TestEnv, name: &str) -> fledge::api::analysis::AnalysisRunStatus {
    env.wait_for(&format!("run {name} ended"), MINUTE, || async {
        let run = env
            .api::<AnalysisRun>()
            .get(name)
            .await
            .map_err(|e| e.to_string())?;
        match run.status {
            Some(s) if s.phase.is_some_and(|p| p.is_terminal()) => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn last_value(s: &fledge::api::analysis::AnalysisRunStatus) -> String {
    s.metric_results
        .first()
        .and_then(|r| r.measurements.last())
        .and_then(|m| m.value.clone().or(m.message.clone()))
        .unwrap_or_default()
}

async fn standalone(name: &str) -> TestEnv {
    let mut env = TestEnv::new(name).await;
    env.start_operator_with(&[
        "--leader-elect=false",
        "--allow-standalone-analysis-runs=true",
    ]);
    env
}

#[tokio::test]
async fn graphite_runs_succeed_fail_and_find_no_data_on_real_carbon_data() {
    let s = servers();
    let env = standalone("graphite").await;
    let prefix = format!("fledge.{}", env.ns.replace('-', "_"));
    // Carbon's plaintext protocol: `path value timestamp`, one point a second for the last 10s.
    let mut lines = String::new();
    let t = now();
    for i in 0..10 {
        lines.push_str(&format!("{prefix}.ok.error_rate 0.01 {}\n", t - i));
        lines.push_str(&format!("{prefix}.bad.error_rate 0.4 {}\n", t - i));
    }
    let mut carbon = tokio::net::TcpStream::connect(&s.carbon).await.unwrap();
    carbon.write_all(lines.as_bytes()).await.unwrap();
    carbon.shutdown().await.unwrap();
    let render = format!(
        "{}/render?target={prefix}.bad.error_rate&from=-1min&format=json&noCache=true",
        s.graphite
    );
    env.wait_for("graphite-web shows the points", MINUTE, || async {
        let body = reqwest::get(&render)
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if body.contains("0.4") {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
    let graphite = || {
        json!({"graphite": {
            "address": s.graphite,
            "query": format!("{prefix}.{{{{args.app}}}}.error_rate"),
            "from": "1m",
        }})
    };
    let args = |app: &str| json!([{"name": "app", "value": app}]);
    for (name, app) in [("healthy", "ok"), ("failing", "bad"), ("missing", "none")] {
        env.apply::<AnalysisRun>(run(name, graphite(), args(app)))
            .await;
    }
    let ok = wait_done(&env, "healthy").await;
    assert_eq!(ok.phase, Some(AnalysisPhase::Successful), "{ok:?}");
    assert_eq!(last_value(&ok), "0.01");
    let bad = wait_done(&env, "failing").await;
    assert_eq!(bad.phase, Some(AnalysisPhase::Failed), "{bad:?}");
    assert_eq!(last_value(&bad), "0.4");
    let none = wait_done(&env, "missing").await;
    assert_eq!(none.phase, Some(AnalysisPhase::Inconclusive), "{none:?}");
    assert!(last_value(&none).contains("no series"), "{none:?}");
}

async fn influx(url: &str, path: &str, form: &[(&str, &str)], body: Option<String>) -> String {
    let mut u = reqwest::Url::parse(&format!("{url}{path}")).unwrap();
    u.query_pairs_mut().extend_pairs(form);
    let request = reqwest::Client::new().post(u);
    let request = match body {
        Some(b) => request.body(b),
        None => request,
    };
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{response:?}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn influxql_runs_succeed_fail_find_no_data_and_error_on_a_real_influxdb() {
    let s = servers();
    let env = standalone("influxdb").await;
    let db = env.ns.replace('-', "_");
    influx(
        &s.influxdb,
        "/query",
        &[("q", &format!("CREATE DATABASE \"{db}\""))],
        None,
    )
    .await;
    let t = now();
    let points = format!("http_errors,app=ok rate=0.01 {t}\nhttp_errors,app=bad rate=0.4 {t}\n");
    influx(
        &s.influxdb,
        "/write",
        &[("db", &db), ("precision", "s")],
        Some(points),
    )
    .await;
    let influxdb = |database: &str| {
        json!({"influxdb": {
            "address": s.influxdb,
            "language": "influxql",
            "database": database,
            "query": "SELECT last(\"rate\") FROM \"http_errors\" WHERE \"app\" = '{{args.app}}' AND time > now() - 10m",
        }})
    };
    let args = |app: &str| json!([{"name": "app", "value": app}]);
    for (name, app, database) in [
        ("healthy", "ok", db.as_str()),
        ("failing", "bad", db.as_str()),
        ("missing", "none", db.as_str()),
        ("no-database", "ok", "fledge_no_such_db"),
    ] {
        env.apply::<AnalysisRun>(run(name, influxdb(database), args(app)))
            .await;
    }
    let ok = wait_done(&env, "healthy").await;
    assert_eq!(ok.phase, Some(AnalysisPhase::Successful), "{ok:?}");
    assert_eq!(last_value(&ok), "0.01");
    let bad = wait_done(&env, "failing").await;
    assert_eq!(bad.phase, Some(AnalysisPhase::Failed), "{bad:?}");
    assert_eq!(last_value(&bad), "0.4");
    let none = wait_done(&env, "missing").await;
    assert_eq!(none.phase, Some(AnalysisPhase::Inconclusive), "{none:?}");
    assert!(last_value(&none).contains("no data"), "{none:?}");
    let error = wait_done(&env, "no-database").await;
    assert_eq!(error.phase, Some(AnalysisPhase::Error), "{error:?}");
    assert!(
        last_value(&error).contains("database not found"),
        "{error:?}"
    );
}
