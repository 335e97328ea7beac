//! Every manifest under examples/ (subdirectories included), and every complete manifest in a
//! `yaml` block of docs/ (one whose documents all name apiVersion, kind and metadata.name; the
//! fragments that show one field are left out), is accepted by the API server: each object is applied server-side as a dry run with strict field validation, so schema, CEL
//! rules and admission all run, a misspelled field is an error rather than a warning, and
//! nothing is created. The Argo CD Application and the Flux objects are checked against the real
//! CRDs of those tools, which `hack/cluster.sh up` installs (hack/gitops-crds.sh).

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;

use crate::harness::TestEnv;

/// The objects of a multi-document YAML text.
fn documents(text: &str, shown: &str) -> Vec<DynamicObject> {
    serde_yaml::Deserializer::from_str(text)
        .map(<serde_json::Value as serde::Deserialize>::deserialize)
        .map(|v| v.unwrap_or_else(|e| panic!("{shown}: {e}")))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{shown}: {e}")))
        .collect()
}

/// The complete manifests among the `yaml` blocks of a Markdown page, each named by its page
/// and the block's first line.
fn doc_manifests(page: &Path, shown: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(page).expect("readable");
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if line.trim() != "```yaml" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        let body = body.join("\n");
        let whole = serde_yaml::Deserializer::from_str(&body)
            .map(<serde_json::Value as serde::Deserialize>::deserialize)
            .filter(|v| !matches!(v, Ok(serde_json::Value::Null)))
            .all(|v| {
                v.is_ok_and(|v| {
                    v["apiVersion"].is_string()
                        && v["kind"].is_string()
                        && v["metadata"]["name"].is_string()
                })
            });
        if whole && !body.trim().is_empty() {
            blocks.push((format!("{shown}:{}", i + 1), body));
        }
    }
    blocks
}

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let env = TestEnv::new("examples").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let files = fledge::cli::manifest::yaml_files(&dir).expect("examples/ is readable");
    assert!(!files.is_empty(), "no examples found");
    let mut sources: Vec<(String, String)> = files
        .iter()
        .map(|file| {
            let shown = file
                .strip_prefix(&dir)
                .unwrap_or(file)
                .display()
                .to_string();
            (shown, std::fs::read_to_string(file).expect("readable"))
        })
        .collect();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut pages = vec![docs.join("notifications"), docs.clone()]
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).expect("docs/ is readable"))
        .map(|e| e.expect("a docs entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect::<Vec<_>>();
    pages.sort();
    let examples = sources.len();
    for page in pages {
        let shown = format!(
            "docs/{}",
            page.strip_prefix(&docs).unwrap_or(&page).display()
        );
        sources.extend(doc_manifests(&page, &shown));
    }
    assert!(sources.len() > examples, "no manifests found in docs/");

    // Discovery caches what is served; a CRD established a moment ago may take a few seconds
    // to appear in it, so a kind that is not served yet is looked up again after a fresh run.
    let mut discovery = Discovery::new(env.client.clone())
        .run()
        .await
        .expect("discovery");
    let mut checked = 0;
    let mut failures = Vec::new();
    for (shown, text) in sources {
        for mut obj in documents(&text, &shown) {
            let types = obj
                .types
                .clone()
                .unwrap_or_else(|| panic!("{shown}: no apiVersion/kind"));
            let (group, version) = match types.api_version.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), types.api_version.clone()),
            };
            let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &types.kind);
            let mut resolved = discovery.resolve_gvk(&gvk);
            for _ in 0..10 {
                if resolved.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                discovery = Discovery::new(env.client.clone())
                    .run()
                    .await
                    .expect("discovery");
                resolved = discovery.resolve_gvk(&gvk);
            }
            let Some((resource, caps)) = resolved else {
                failures.push(format!(
                    "{shown}: {} {} is not served (hack/cluster.sh up installs the Gateway API, \
                     Argo CD and Flux CRDs)",
                    types.api_version, types.kind
                ));
                continue;
            };
            let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
                Api::namespaced_with(env.client.clone(), &env.ns, &resource)
            } else {
                Api::all_with(env.client.clone(), &resource)
            };
            let name = obj
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| panic!("{shown}: unnamed"));
            // Examples name the namespace of their tool (argocd, flux-system, fledge-system) or
            // none; all go to the test's namespace.
            obj.metadata.namespace = None;
            let params = PatchParams::apply("e2e").dry_run().validation_strict();
            match api.patch(&name, &params, &Patch::Apply(&obj)).await {
                Ok(_) => checked += 1,
                Err(e) => failures.push(format!("{shown} ({} {name}): {e}", types.kind)),
            }
            // The schema is a real one: a field it does not know is refused, so the check
            // above would have caught a misspelling in this object's spec.
            if !obj.data["spec"].is_object() {
                continue;
            }
            let mut misspelled = obj.clone();
            misspelled.data["spec"]["notAField"] = true.into();
            match api.patch(&name, &params, &Patch::Apply(&misspelled)).await {
                Err(kube::Error::Api(e)) if e.message.contains("notAField") => {}
                other => failures.push(format!(
                    "{shown} ({} {name}): an unknown field in spec was not refused: {other:?}",
                    types.kind
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples rejected:\n{}",
        failures.join("\n")
    );
    eprintln!("{checked} example objects accepted");
}
