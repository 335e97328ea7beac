//! The pod templates of the cached ReplicaSets, kept apart from the cache as the JSON they came
//! in.
//!
//! A plan never reads a ReplicaSet's template: fledge needs it only to write that ReplicaSet
//! again, because a server-side apply carries every field fledge owns (see `act.rs`). Parsed, a
//! template is the largest part of a cached ReplicaSet (k8s-openapi's `PodSpec` and `Container`
//! hold every field the API has, set or not); as JSON it is a few hundred bytes. So the watch
//! events are stripped of their templates before the cache stores them, and the templates are
//! parsed again only for the write.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::runtime::watcher;

/// (namespace, name).
type Key = (String, String);

/// Templates by ReplicaSet, in step with the ReplicaSet cache: it is fed the same watch events,
/// before the cache stores them.
#[derive(Clone, Default)]
pub struct ReplicaSetTemplates {
    inner: Arc<RwLock<Templates>>,
}

#[derive(Default)]
struct Templates {
    live: HashMap<Key, Box<[u8]>>,
    /// A re-list in progress: replaces `live` when it is done, as the cache does.
    relisting: Option<HashMap<Key, Box<[u8]>>>,
}

fn key(rs: &ReplicaSet) -> Key {
    (rs.namespace().unwrap_or_default(), rs.name_any())
}

/// Takes the template out of `rs`, as JSON. A ReplicaSet without one (the API server requires
/// one, so only in tests) has nothing to keep.
fn take(rs: &mut ReplicaSet) -> Option<Box<[u8]>> {
    let template = rs.spec.as_mut()?.template.take()?;
    // A PodTemplateSpec always serializes: it is plain data.
    serde_json::to_vec(&template)
        .ok()
        .map(Vec::into_boxed_slice)
}

impl ReplicaSetTemplates {
    /// Moves the templates of `event`'s ReplicaSets here, with the cache's semantics, and leaves
    /// the ReplicaSets without them.
    pub fn apply(&self, event: &mut watcher::Event<ReplicaSet>) {
        // A poisoned lock only means a panic elsewhere while holding it; the data is still a map
        // of bytes, so go on with it.
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => t.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(rs) => {
                let k = key(rs);
                let template = take(rs);
                if let (Some(buffer), Some(template)) = (t.relisting.as_mut(), template) {
                    buffer.insert(k, template);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = t.relisting.take() {
                    t.live = buffer;
                }
            }
            watcher::Event::Apply(rs) => {
                let k = key(rs);
                match take(rs) {
                    Some(template) => t.live.insert(k, template),
                    None => t.live.remove(&k),
                };
            }
            watcher::Event::Delete(rs) => {
                let k = key(rs);
                take(rs);
                t.live.remove(&k);
            }
        }
    }

    /// The template of ReplicaSet `name` in `namespace`, as the API server last sent it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<PodTemplateSpec> {
        let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let json = t.live.get(&(namespace.to_string(), name.to_string()))?;
        serde_json::from_slice(json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        }))
        .unwrap()
    }

    fn image(t: &ReplicaSetTemplates, name: &str) -> Option<String> {
        t.get("ns", name)
            .and_then(|t| t.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
    }

    #[test]
    fn keeps_the_template_apart_and_leaves_the_rest_to_the_cache() {
        let templates = ReplicaSetTemplates::default();
        let mut event = watcher::Event::Apply(rs("web-1", "app:1"));
        templates.apply(&mut event);
        let watcher::Event::Apply(stripped) = event else {
            unreachable!()
        };
        let spec = stripped.spec.unwrap();
        assert_eq!(spec.template, None);
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(image(&templates, "web-1").as_deref(), Some("app:1"));
        // The template comes back as it was sent.
        assert_eq!(
            templates.get("ns", "web-1"),
            rs("web-1", "app:1").spec.unwrap().template
        );
    }

    #[test]
    fn follows_applies_deletes_and_relists() {
        let templates = ReplicaSetTemplates::default();
        templates.apply(&mut watcher::Event::Apply(rs("web-1", "app:1")));
        templates.apply(&mut watcher::Event::Apply(rs("web-1", "app:2")));
        templates.apply(&mut watcher::Event::Apply(rs("web-2", "app:3")));
        assert_eq!(image(&templates, "web-1").as_deref(), Some("app:2"));

        templates.apply(&mut watcher::Event::Delete(rs("web-2", "app:3")));
        assert_eq!(image(&templates, "web-2"), None);

        // During a re-list the old view stays; at its end the new one replaces it whole.
        templates.apply(&mut watcher::Event::Init);
        templates.apply(&mut watcher::Event::InitApply(rs("web-3", "app:4")));
        assert_eq!(image(&templates, "web-1").as_deref(), Some("app:2"));
        assert_eq!(image(&templates, "web-3"), None);
        templates.apply(&mut watcher::Event::InitDone);
        assert_eq!(image(&templates, "web-1"), None);
        assert_eq!(image(&templates, "web-3").as_deref(), Some("app:4"));
    }
}
