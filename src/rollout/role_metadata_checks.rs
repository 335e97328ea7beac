//! Checks of the role metadata (`canaryMetadata`, `stableMetadata`, `activeMetadata`,
//! `previewMetadata`) admission cannot make: label syntax (a bad label would fail every write to
//! the pods, forever), and no key the selector or the template already sets (taking a role's
//! label off again would take the template's with it, or orphan the pods).

use crate::api::{PodMetadata, RolloutSpec, SpecProblem};

pub fn problems(spec: &RolloutSpec) -> Vec<SpecProblem> {
    let roles: Vec<(&str, &Option<PodMetadata>)> =
        match (&spec.strategy.canary, &spec.strategy.blue_green) {
            (Some(c), _) => vec![
                ("strategy.canary.canaryMetadata", &c.canary_metadata),
                ("strategy.canary.stableMetadata", &c.stable_metadata),
            ],
            (None, Some(b)) => vec![
                ("strategy.blueGreen.activeMetadata", &b.active_metadata),
                ("strategy.blueGreen.previewMetadata", &b.preview_metadata),
            ],
            (None, None) => Vec::new(),
        };
    let selector = spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let template_annotations = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (path, md) in roles {
        let Some(md) = md else { continue };
        for (key, value) in &md.labels {
            let path = format!("{path}.labels[{key:?}]");
            let message = if let Err(e) = qualified_name(key) {
                format!("label key {e}")
            } else if let Err(e) = label_value(value) {
                format!("label value {e}")
            } else if selector.contains_key(key) {
                "the selector matches this label: a role must not change it".into()
            } else if template_labels.contains_key(key) {
                "the pod template sets this label: a role that ends would take it off".into()
            } else {
                continue;
            };
            out.push(SpecProblem { path, message });
        }
        for key in md.annotations.keys() {
            let path = format!("{path}.annotations[{key:?}]");
            let message = if let Err(e) = qualified_name(key) {
                format!("annotation key {e}")
            } else if template_annotations.contains_key(key) {
                "the pod template sets this annotation: a role that ends would take it off".into()
            } else {
                continue;
            };
            out.push(SpecProblem { path, message });
        }
    }
    out
}

/// `[prefix/]name`: a DNS subdomain prefix, a name of at most 63 alphanumerics, `-`, `_`, `.`
/// starting and ending alphanumeric.
pub(super) fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!("{key:?}: the prefix must be a DNS subdomain"));
        }
    }
    if name.is_empty() || !label_chars(name) {
        return Err(format!(
            "{key:?}: the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

pub(super) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || label_chars(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

fn label_chars(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    s.len() <= 63
        && s.bytes()
            .all(|b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CanaryStrategy, Strategy};
    use std::collections::BTreeMap;

    #[test]
    fn role_labels_must_be_valid_and_leave_the_selector_and_template_alone() {
        let md = PodMetadata {
            labels: BTreeMap::from([
                ("app".into(), "x".into()),
                ("role".into(), "canary".into()),
                ("bad key!".into(), "x".into()),
                ("ok".into(), "-bad-value".into()),
            ]),
            annotations: BTreeMap::from([("example.com/note".into(), "anything goes".into())]),
        };
        let spec = RolloutSpec {
            selector: Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                    ..Default::default()
                },
            ),
            strategy: Strategy {
                canary: Some(CanaryStrategy {
                    canary_metadata: Some(md),
                    ..Default::default()
                }),
                blue_green: None,
            },
            ..Default::default()
        };
        let found: Vec<String> = problems(&spec).iter().map(|p| p.path.clone()).collect();
        assert_eq!(
            found,
            [
                "strategy.canary.canaryMetadata.labels[\"app\"]",
                "strategy.canary.canaryMetadata.labels[\"bad key!\"]",
                "strategy.canary.canaryMetadata.labels[\"ok\"]",
            ]
        );
    }
}
