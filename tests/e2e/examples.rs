//! Every manifest under examples/ (subdirectories included) is accepted by the API server:
//! each object is applied server-side as a dry run with strict field validation, so schema, CEL
//! rules and admission all run, a misspelled field is an error rather than a warning, and
//! nothing is created. The Argo CD Application and the Flux objects are checked against the real
//! CRDs of those tools, which `hack/cluster.sh up` installs (hack/gitops-crds.sh).

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;

use crate::harness::TestEnv;

/// The objects of a multi-document YAML file.
fn documents(file: &Path) -> Vec<DynamicObject> {
    let text = std::fs::read_to_string(file).expect("readable");
    serde_yaml::Deserializer::from_str(&text)
        .map(<serde_json::Value as serde::Deserialize>::deserialize)
        .map(|v| v.unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        .collect()
}

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let env = TestEnv::new("examples").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let files = fledge::cli::manifest::yaml_files(&dir).expect("examples/ is readable");
    assert!(!files.is_empty(), "no examples found");

    // Discovery caches what is served; a CRD established a moment ago may take a few seconds
    // to appear in it, so a kind that is not served yet is looked up again after a fresh run.
    let mut discovery = Discovery::new(env.client.clone())
        .run()
        .await
        .expect("discovery");
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in files {
        let shown = file
            .strip_prefix(&dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        for mut obj in documents(&file) {
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
            // Examples name the namespace of their tool (argocd, flux-system) or none; all go
            // to the test's namespace.
            obj.metadata.namespace = None;
            let params = PatchParams::apply("e2e").dry_run().validation_strict();
            match api.patch(&name, &params, &Patch::Apply(&obj)).await {
                Ok(_) => checked += 1,
                Err(e) => failures.push(format!("{shown} ({} {name}): {e}", types.kind)),
            }
            // The schema is a real one: a field it does not know is refused, so the check
            // above would have caught a misspelling in this object's spec.
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
