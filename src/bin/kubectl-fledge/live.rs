//! The commands that read or change a Rollout in the cluster beyond runtime requests:
//! `get rollout [-w]`, `undo`, `restart`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use fledge::api::{ROLLOUT_LABEL, Rollout};
use fledge::cli::exit;
use fledge::cli::tree::{self, RunView, Snapshot};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::{Failure, get, warn_if_managed};

fn replica_sets_api(client: &Client, namespace: &str) -> Api<ReplicaSet> {
    Api::namespaced(client.clone(), namespace)
}

/// AnalysisRuns, read as plain objects so the plugin does not depend on their Rust types.
fn runs_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "fledge.dev".into(),
        version: "v1alpha1".into(),
        api_version: "fledge.dev/v1alpha1".into(),
        kind: "AnalysisRun".into(),
        plural: "analysisruns".into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn owned_by(rollout: &Rollout) -> ListParams {
    ListParams::default().labels(&format!("{ROLLOUT_LABEL}={}", rollout.name_any()))
}

/// The Rollout's own ReplicaSets.
async fn replica_sets(
    client: &Client,
    namespace: &str,
    rollout: &Rollout,
) -> Result<Vec<ReplicaSet>, Failure> {
    let uid = rollout.uid();
    let list = replica_sets_api(client, namespace)
        .list(&owned_by(rollout))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect())
}

/// Its AnalysisRuns; none when the AnalysisRun CRD is not installed.
async fn runs(
    client: &Client,
    namespace: &str,
    rollout: &Rollout,
) -> Result<Vec<RunView>, Failure> {
    match runs_api(client, namespace).list(&owned_by(rollout)).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .map(|v| RunView::from_json(&v))
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

async fn snapshot(
    client: &Client,
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
) -> Result<Snapshot, Failure> {
    let rollout = get(rollouts, namespace, name).await?;
    let replica_sets = replica_sets(client, namespace, &rollout).await?;
    let runs = runs(client, namespace, &rollout).await?;
    Ok(Snapshot {
        rollout,
        replica_sets,
        runs,
    })
}

/// `get rollout NAME [-w]`.
pub async fn get_rollout(
    client: &Client,
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
    watch: bool,
) -> Result<u8, Failure> {
    let terminal = std::io::stdout().is_terminal();
    let colour = terminal && std::env::var_os("NO_COLOR").is_none();
    let first = snapshot(client, rollouts, namespace, name).await?;
    if !watch {
        print!("{}", tree::render(&first, Timestamp::now(), colour));
        return Ok(exit::OK);
    }

    // Any change of the Rollout, its ReplicaSets or its AnalysisRuns redraws; on a terminal a
    // tick also keeps the ages current. A failing watch backs off rather than redrawing in a
    // tight loop.
    let label = format!("{ROLLOUT_LABEL}={name}");
    let mut triggers = vec![
        watcher(
            rollouts.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .map(|_| ())
        .boxed(),
        watcher(
            replica_sets_api(client, namespace),
            watcher::Config::default().labels(&label),
        )
        .default_backoff()
        .map(|_| ())
        .boxed(),
    ];
    let runs_installed = !matches!(
        runs_api(client, namespace).list(&ListParams::default().limit(1)).await,
        Err(kube::Error::Api(ref s)) if s.code == 404
    );
    if runs_installed {
        triggers.push(
            watcher(
                runs_api(client, namespace),
                watcher::Config::default().labels(&label),
            )
            .default_backoff()
            .map(|_| ())
            .boxed(),
        );
    }
    if terminal {
        triggers.push(
            futures::stream::unfold((), |_| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some(((), ()))
            })
            .boxed(),
        );
    }
    // Everything already waiting is one redraw.
    let mut events = futures::stream::select_all(triggers).ready_chunks(256);
    let mut shown = String::new();
    let mut snap = first;
    let mut stdout = std::io::stdout();
    loop {
        let text = tree::render(&snap, Timestamp::now(), colour);
        if text != shown {
            if terminal {
                // Home, draw, clear what is left of the previous drawing.
                let _ = write!(stdout, "\x1b[H\x1b[2J{text}");
            } else {
                let _ = writeln!(stdout, "{text}");
            }
            let _ = stdout.flush();
            shown = text;
        }
        if events.next().await.is_none() {
            return Ok(exit::OK);
        }
        snap = snapshot(client, rollouts, namespace, name).await?;
    }
}

/// `undo NAME [--to-revision N]`: the chosen revision's pod template back into spec.template.
pub async fn undo(
    client: &Client,
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
    to_revision: Option<i64>,
) -> Result<u8, Failure> {
    let rollout = get(rollouts, namespace, name).await?;
    let sets = replica_sets(client, namespace, &rollout).await?;
    let target = fledge::cli::undo::choose(&rollout, &sets, to_revision).map_err(Failure)?;
    warn_if_managed(&rollout);
    // Replace the whole template (a merge would keep labels the old one lacks), and only in the
    // spec this choice was made from: the generation moves with spec changes only, so the
    // controller's status writes meanwhile do not matter.
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": "/metadata/generation", "value": rollout.metadata.generation},
        {"op": "replace", "path": "/spec/template", "value": target.template},
    ]))
    .map_err(|e| Failure(e.to_string()))?;
    match rollouts
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {}
        // A failed test is a 422 without field causes (a validation error names its fields).
        Err(kube::Error::Api(s))
            if s.code == 422 && s.details.as_ref().is_none_or(|d| d.causes.is_empty()) =>
        {
            return Err(Failure(format!(
                "rollout {name:?} changed while undo chose a revision: run it again"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let number = target
        .revision
        .map_or("an unnumbered revision".into(), |n| format!("revision {n}"));
    println!(
        "rollout {name:?}: template set back to {number} (hash {}, ReplicaSet {})",
        target.hash, target.replica_set
    );
    if !target.exact {
        eprintln!(
            "warning: the restored template differs from {number}'s in fields the API server \
             fills in, so the controller deploys it as a new revision (same pods, new hash)"
        );
    }
    Ok(exit::OK)
}

/// `restart NAME [--in D]`: spec.restartAt = now (+ D).
pub async fn restart(
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
    delay: Option<&str>,
) -> Result<u8, Failure> {
    let rollout = get(rollouts, namespace, name).await?;
    let delay = match delay {
        Some(d) => fledge::api::duration::parse(d).map_err(|e| Failure(format!("--in: {e}")))?,
        None => Duration::ZERO,
    };
    let delay = k8s_openapi::jiff::SignedDuration::try_from(delay)
        .map_err(|e| Failure(format!("--in: {e}")))?;
    let at = Timestamp::now()
        .checked_add(delay)
        .map_err(|e| Failure(format!("--in: {e}")))?;
    // Whole seconds, as Kubernetes stamps creation times: rounded up, so a pod created in the
    // same second as the request counts as older and is replaced too.
    let second = at.as_second() + i64::from(at.subsec_nanosecond() > 0);
    let at = Timestamp::from_second(second).map_err(|e| Failure(e.to_string()))?;
    warn_if_managed(&rollout);
    rollouts
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"restartAt": at.to_string()}})),
        )
        .await?;
    println!(
        "rollout {name:?}: restart at {at}: pods of the stable revision created before then are \
         replaced, a few at a time"
    );
    Ok(exit::OK)
}
