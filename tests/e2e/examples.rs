//! Every manifest under examples/ (subdirectories included) is accepted by the API server:
//! each object is applied server-side as a dry run, so schema, CEL rules and admission all run
//! and nothing is created. The Argo CD Application and Flux objects need their CRDs; minimal
//! stand-ins are installed first (tests/e2e/testdata/gitops-crds.yaml), which check their
//! required fields but not the whole of Argo CD's and Flux's schemas.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Discovery;

use crate::harness::{MINUTE, TestEnv};

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

/// Applies (for real) the stand-in CRDs and waits until they are served.
async fn install_gitops_crds(env: &TestEnv) {
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/testdata/gitops-crds.yaml");
    for obj in documents(&file) {
        let crd: CustomResourceDefinition =
            serde_json::from_value(serde_json::to_value(&obj).unwrap()).expect("a CRD");
        let name = obj.metadata.name.clone().expect("named");
        crds.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        env.wait_for(&format!("CRD {name} Established"), MINUTE, || async {
            let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        })
        .await;
    }
}

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let env = TestEnv::new("examples").await;
    install_gitops_crds(&env).await;
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
                    "{shown}: {} {} is not served",
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
            match api
                .patch(
                    &name,
                    &PatchParams::apply("e2e").dry_run(),
                    &Patch::Apply(&obj),
                )
                .await
            {
                Ok(_) => checked += 1,
                Err(e) => failures.push(format!("{shown} ({} {name}): {e}", types.kind)),
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
