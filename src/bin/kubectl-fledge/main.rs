//! `kubectl fledge`: the kubectl plugin. Put it on PATH and run `kubectl fledge --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use fledge::api::{RequestAction, Rollout};
use fledge::cli::status::{self, Outcome};
use fledge::cli::{exit, request};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

mod live;
mod offline;

#[derive(Parser)]
#[command(name = "kubectl fledge", version, about = "Drive fledge Rollouts")]
struct Cli {
    /// Path to the kubeconfig file; default $KUBECONFIG or ~/.kube/config.
    #[arg(long, global = true, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace; default the context's.
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// End the current pause or skip the current step; --full skips all remaining steps.
    Promote {
        name: String,
        #[arg(long)]
        full: bool,
    },
    /// Put all traffic back on the stable revision and stop.
    Abort { name: String },
    /// Start the steps of an aborted rollout again.
    Retry { name: String },
    /// Stop the rollout where it is.
    Pause { name: String },
    /// Continue after a pause.
    Resume { name: String },
    /// One line of state; --watch waits until Healthy (exit 0), Degraded (exit 1) or the
    /// timeout (exit 2).
    Status {
        name: String,
        #[arg(short, long)]
        watch: bool,
        /// How long --watch waits, like 30s, 10m, 1h.
        #[arg(long, default_value = "10m")]
        timeout: String,
    },
    /// Set a container's image: a spec change, so a new revision (warns when Git manages it).
    Set {
        #[command(subcommand)]
        what: SetCommand,
    },
    /// Print the plugin's version and, when reachable, the running controller's.
    Version,
    /// Print a shell completion script: `source <(kubectl fledge completion bash)`.
    Completion { shell: clap_complete::Shell },
    /// Show a Rollout as a tree: revisions, step and weight, pauses, AnalysisRuns, conditions.
    /// With -w, redraw as it changes.
    Get {
        /// What to show: rollout.
        #[arg(value_parser = ["rollout", "rollouts", "ro"])]
        kind: String,
        name: String,
        /// Keep watching and redraw on every change.
        #[arg(short, long)]
        watch: bool,
        /// Print the Rollout object instead of the tree.
        #[arg(short, long, value_parser = ["json", "yaml"])]
        output: Option<String>,
    },
    /// Check Rollout and AnalysisTemplate manifests offline, with the cluster's rules; exit 1 on
    /// any error. FILE `-` reads stdin.
    Lint { file: String },
    /// Print a Rollout manifest as a timeline: steps, traffic, pauses, analyses, time to full
    /// promotion and what a person must do. Offline.
    Plan { file: String },
    /// Convert Argo Rollouts (Rollout, AnalysisTemplate, ClusterAnalysisTemplate) and Flagger
    /// (Canary, MetricTemplate) manifests into fledge objects. Offline.
    Convert { file: String },
    /// Go back to the previous revision, or to --to-revision N: a spec change (warns when Git
    /// manages the Rollout).
    Undo {
        name: String,
        /// The revision number (`fledge.dev/revision` on its ReplicaSet) to go back to.
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Replace the stable revision's pods, a few at a time, without a new revision: sets
    /// spec.restartAt (warns when Git manages the Rollout).
    Restart {
        name: String,
        /// Restart later, like 10m.
        #[arg(long = "in")]
        delay: Option<String>,
    },
    /// Notification channels: `notify test CHANNEL` sends a test message and prints the answer.
    Notify {
        #[command(subcommand)]
        what: NotifyCommand,
    },
    /// List Rollouts, like `kubectl get`.
    List {
        /// What to list: rollouts.
        #[arg(value_parser = ["rollouts", "rollout", "ro"])]
        kind: String,
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output format.
        #[arg(short, long)]
        output: Option<Output>,
    },
}

#[derive(Subcommand)]
enum SetCommand {
    /// `set image NAME CONTAINER=IMAGE`.
    Image {
        name: String,
        /// CONTAINER=IMAGE.
        image: String,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send a test message through NotificationChannel CHANNEL (with --cluster, the
    /// ClusterNotificationChannel) and print the service's answer; exit 1 when it refuses.
    Test {
        channel: String,
        /// CHANNEL is a ClusterNotificationChannel.
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Json,
    Yaml,
    Wide,
}

/// An error with the message a person can act on.
struct Failure(String);

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        Failure(match e {
            kube::Error::Api(s) if s.code == 403 => format!(
                "not allowed: {} (runtime requests need `patch` on rollouts/status; \
                 ask for the fledge rollout-manager role)",
                s.message
            ),
            other => other.to_string(),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Completion needs no cluster.
    if let Command::Completion { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(
            shell,
            &mut command,
            "kubectl-fledge",
            &mut std::io::stdout(),
        );
        return ExitCode::from(exit::OK);
    }
    // The offline commands need no cluster either.
    let offline = match &cli.command {
        Command::Lint { file } => Some(offline::lint(file)),
        Command::Plan { file } => Some(offline::plan(file)),
        Command::Convert { file } => Some(offline::convert(file)),
        _ => None,
    };
    if let Some(result) = offline {
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(exit::FAILED)
            }
        };
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(exit::FAILED)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match &cli.kubeconfig {
        Some(path) => {
            // $KUBECONFIG may list several files; like kubectl, merge them.
            let mut merged: Option<Kubeconfig> = None;
            for p in std::env::split_paths(path) {
                let k = Kubeconfig::read_from(&p)
                    .map_err(|e| Failure(format!("reading kubeconfig {}: {e}", p.display())))?;
                merged = Some(match merged {
                    Some(m) => m.merge(k).map_err(|e| Failure(e.to_string()))?,
                    None => k,
                });
            }
            let kubeconfig = merged.ok_or_else(|| Failure("empty --kubeconfig".into()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| Failure(format!("no usable kubeconfig: {e}")))?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| Failure(e.to_string()))?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &namespace);

    match cli.command {
        Command::Completion { .. }
        | Command::Lint { .. }
        | Command::Plan { .. }
        | Command::Convert { .. } => Ok(exit::OK),
        Command::Get {
            name,
            output: Some(format),
            ..
        } => {
            let r = get(&rollouts, &namespace, &name).await?;
            let text = match format.as_str() {
                "json" => serde_json::to_string_pretty(&r)
                    .map(|t| t + "\n")
                    .map_err(|e| e.to_string()),
                _ => serde_yaml::to_string(&r).map_err(|e| e.to_string()),
            }
            .map_err(Failure)?;
            print!("{text}");
            Ok(exit::OK)
        }
        Command::Get { name, watch, .. } => {
            live::get_rollout(&client, &rollouts, &namespace, &name, watch).await
        }
        Command::Undo { name, to_revision } => {
            live::undo(&client, &rollouts, &namespace, &name, to_revision).await
        }
        Command::Restart { name, delay } => {
            live::restart(&rollouts, &namespace, &name, delay.as_deref()).await
        }
        Command::Set {
            what: SetCommand::Image { name, image },
        } => set_image(&rollouts, &namespace, &name, &image).await,
        Command::Notify {
            what: NotifyCommand::Test { channel, cluster },
        } => {
            let kind = if cluster {
                "ClusterNotificationChannel"
            } else {
                "NotificationChannel"
            };
            let target = format!("{kind}/{channel}");
            match fledge::notify::send::test(&client, &namespace, &target).await {
                Ok(answer) => {
                    println!("{target}: the service answered {answer}");
                    Ok(exit::OK)
                }
                Err(e) => Err(Failure(format!("{target}: {e}"))),
            }
        }
        Command::Version => {
            println!("client: kubectl-fledge {}", env!("CARGO_PKG_VERSION"));
            match controller_versions(&client).await {
                Ok(found) if found.is_empty() => {
                    println!("controller: none found (no fledge-controller Lease)")
                }
                Ok(found) => found.iter().for_each(|v| println!("controller: {v}")),
                Err(e) => println!("controller: unknown ({e})"),
            }
            Ok(exit::OK)
        }
        Command::Promote { name, full } => {
            let action = if full {
                RequestAction::PromoteFull
            } else {
                RequestAction::Promote
            };
            file_request(&rollouts, &namespace, &name, action).await
        }
        Command::Abort { name } => {
            file_request(&rollouts, &namespace, &name, RequestAction::Abort).await
        }
        Command::Retry { name } => {
            file_request(&rollouts, &namespace, &name, RequestAction::Retry).await
        }
        Command::Pause { name } => {
            file_request(&rollouts, &namespace, &name, RequestAction::Pause).await
        }
        Command::Resume { name } => {
            file_request(&rollouts, &namespace, &name, RequestAction::Resume).await
        }
        Command::Status {
            name,
            watch,
            timeout,
        } => {
            let timeout = fledge::api::duration::parse(&timeout)
                .map_err(|e| Failure(format!("--timeout: {e}")))?;
            status_of(&rollouts, &namespace, &name, watch, timeout).await
        }
        Command::List {
            all_namespaces,
            output,
            ..
        } => {
            let api: Api<Rollout> = if all_namespaces {
                Api::all(client)
            } else {
                rollouts
            };
            let list = api.list(&ListParams::default()).await?;
            match output {
                Some(Output::Json) => println!("{}", to_json(&list.items)?),
                Some(Output::Yaml) => print!("{}", to_yaml(&list.items)?),
                wide => {
                    let wide = matches!(wide, Some(Output::Wide));
                    let now = Timestamp::now();
                    let mut rows = vec![
                        status::header(all_namespaces, wide)
                            .into_iter()
                            .map(String::from)
                            .collect(),
                    ];
                    rows.extend(
                        list.items
                            .iter()
                            .map(|r| status::row(r, all_namespaces, wide, now)),
                    );
                    if list.items.is_empty() {
                        eprintln!(
                            "No rollouts found in {}.",
                            if all_namespaces {
                                "any namespace".into()
                            } else {
                                format!("namespace {namespace:?}")
                            }
                        );
                    } else {
                        print!("{}", status::table(&rows));
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}

async fn get(rollouts: &Api<Rollout>, namespace: &str, name: &str) -> Result<Rollout, Failure> {
    match rollouts.get(name).await {
        Ok(r) => Ok(r),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Failure(format!(
            "rollout {name:?} not found in namespace {namespace:?} (use -n to pick another)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Files `action` and waits until the controller has consumed it, then prints what it did.
async fn file_request(
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
    action: RequestAction,
) -> Result<u8, Failure> {
    get(rollouts, namespace, name).await?;
    let who = std::env::var("USER").unwrap_or_else(|_| "kubectl-fledge".into());
    rollouts
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(request::patch(action, &who)),
        )
        .await?;
    println!("{} requested on rollout {name:?}", action.as_str());
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let r = get(rollouts, namespace, name).await?;
        if request::consumed(&r) {
            println!("{}", status::line(&r));
            return Ok(exit::OK);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Failure(
        "the request is filed but no controller acted on it within 15s: is fledge running, and \
         does it handle this Rollout (--namespace / --instance-id)?"
            .into(),
    ))
}

async fn status_of(
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
    watch: bool,
    timeout: Duration,
) -> Result<u8, Failure> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let r = get(rollouts, namespace, name).await?;
        let line = status::line(&r);
        if line != last {
            println!("{line}");
            last = line;
        }
        match status::outcome(&r) {
            Some(Outcome::Healthy) => return Ok(exit::OK),
            Some(Outcome::Failed) => return Ok(exit::FAILED),
            None if !watch => return Ok(exit::OK),
            None if Instant::now() >= deadline => {
                eprintln!("timed out after {timeout:?}");
                return Ok(exit::TIMEOUT);
            }
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Sets one container's image in the Rollout's own template. A spec change by nature: warn when
/// a Git sync agent manages the Rollout, because its next sync will undo it.
async fn set_image(
    rollouts: &Api<Rollout>,
    namespace: &str,
    name: &str,
    assignment: &str,
) -> Result<u8, Failure> {
    let (container, image) = assignment
        .split_once('=')
        .filter(|(c, i)| !c.is_empty() && !i.is_empty())
        .ok_or_else(|| Failure(format!("{assignment:?}: expected CONTAINER=IMAGE")))?;
    let rollout = get(rollouts, namespace, name).await?;
    let Some(template) = rollout.spec.template.as_ref() else {
        return Err(Failure(format!(
            "rollout {name:?} runs a workloadRef Deployment's template: set the image there"
        )));
    };
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let Some(index) = containers.iter().position(|c| c.name == container) else {
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        return Err(Failure(format!(
            "rollout {name:?} has no container {container:?} (it has {names:?})"
        )));
    };
    warn_if_managed(&rollout);
    // A JSON patch that tests the container's name first, so a template changed meanwhile is
    // never patched at the wrong index.
    let path = format!("/spec/template/spec/containers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": format!("{path}/name"), "value": container},
        {"op": "replace", "path": format!("{path}/image"), "value": image},
    ]))
    .map_err(|e| Failure(e.to_string()))?;
    rollouts
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    println!("rollout {name:?}: container {container:?} image set to {image:?}");
    Ok(exit::OK)
}

/// A spec change on an object a Git sync agent manages will be undone by its next sync: say so.
fn warn_if_managed(rollout: &Rollout) {
    let meta = &rollout.metadata;
    if let Some(agent) = fledge::cli::gitops::managed_by(
        meta.labels.as_ref().unwrap_or(&Default::default()),
        meta.annotations.as_ref().unwrap_or(&Default::default()),
    ) {
        let name = meta.name.as_deref().unwrap_or_default();
        eprintln!("{}", fledge::cli::gitops::warning(agent, "rollout", name));
    }
}

/// Versions of the running controllers, from the annotation their leader puts on its Lease.
async fn controller_versions(client: &Client) -> Result<Vec<String>, kube::Error> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::all(client.clone());
    let list = leases.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|l| {
            let version = l
                .metadata
                .annotations
                .as_ref()?
                .get(fledge::leader::VERSION_ANNOTATION)?;
            let ns = l.metadata.namespace.as_deref().unwrap_or_default();
            let name = l.metadata.name.as_deref().unwrap_or_default();
            Some(format!("fledge {version} (Lease {ns}/{name})"))
        })
        .collect())
}

fn to_json(items: &[Rollout]) -> Result<String, Failure> {
    serde_json::to_string_pretty(&list_object(items)).map_err(|e| Failure(e.to_string()))
}

fn to_yaml(items: &[Rollout]) -> Result<String, Failure> {
    serde_yaml::to_string(&list_object(items)).map_err(|e| Failure(e.to_string()))
}

/// Output shaped like `kubectl get -o json`: a v1 List.
fn list_object(items: &[Rollout]) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
}
