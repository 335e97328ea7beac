//! Is this object managed by a Git sync agent? Then a spec change made here will be undone by
//! the next sync, and the plugin says so.

use std::collections::BTreeMap;

/// The agent managing an object with these labels and annotations, if any.
pub fn managed_by(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<&'static str> {
    if annotations.contains_key("argocd.argoproj.io/tracking-id")
        || labels.contains_key("argocd.argoproj.io/instance")
    {
        return Some("Argo CD");
    }
    let flux = [
        "kustomize.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/name",
    ];
    if flux.iter().any(|k| labels.contains_key(*k)) {
        return Some("Flux");
    }
    None
}

/// The warning printed before changing the spec of a managed object.
pub fn warning(agent: &str, kind: &str, name: &str) -> String {
    format!(
        "warning: {kind} {name:?} is managed by {agent}: the next sync will undo this change. \
         Make it in Git instead (and let {agent} apply it)."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn recognises_argo_cd_and_flux() {
        let none = map(&[]);
        assert_eq!(managed_by(&none, &none), None);
        let tracking = map(&[(
            "argocd.argoproj.io/tracking-id",
            "app:fledge.dev/Rollout:shop/web",
        )]);
        assert_eq!(managed_by(&none, &tracking), Some("Argo CD"));
        assert_eq!(
            managed_by(&map(&[("argocd.argoproj.io/instance", "app")]), &none),
            Some("Argo CD")
        );
        assert_eq!(
            managed_by(&map(&[("kustomize.toolkit.fluxcd.io/name", "apps")]), &none),
            Some("Flux")
        );
        assert_eq!(
            managed_by(&map(&[("helm.toolkit.fluxcd.io/name", "web")]), &none),
            Some("Flux")
        );
        assert_eq!(managed_by(&map(&[("app", "web")]), &none), None);
    }
}
