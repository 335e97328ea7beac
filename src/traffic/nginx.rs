//! ingress-nginx: a canary Ingress, cloned from the stable one with its backends pointed at the
//! canary Service, carrying the `canary` annotations ingress-nginx reads. fledge creates and owns
//! it; the stable Ingress is only read. ingress-nginx routes on one header and has no mirror.

use serde_json::{Map, Value, json};

use super::{
    Found, Kind, ObjectKey, Objects, ReadBack, Target, TrafficRouter, TrafficState, Write,
    delete_owned, owned, require, skeleton,
};
use crate::api::NginxRouting;

const FIELD: &str = "strategy.canary.trafficRouting.nginx";
const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";
/// Which header route the canary Ingress carries, by name, for reading it back.
const HEADER_ROUTE_ANNOTATION: &str = "fledge.dev/header-route";

pub struct CanaryIngress {
    stable: ObjectKey,
    canary: ObjectKey,
    prefix: String,
}

impl CanaryIngress {
    pub fn new(nginx: &NginxRouting, rollout: &str) -> Self {
        CanaryIngress {
            stable: ObjectKey {
                kind: Kind::Ingress,
                name: nginx.stable_ingress.clone(),
            },
            canary: ObjectKey {
                kind: Kind::Ingress,
                name: format!("{rollout}-{}-canary", nginx.stable_ingress),
            },
            prefix: nginx
                .annotation_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PREFIX.into()),
        }
    }

    fn annotation(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// The stable Ingress's spec with only the paths to the stable Service, now to the canary.
    fn canary_spec(&self, stable: &Value, target: &Target) -> Result<Value, String> {
        let mut spec = stable.get("spec").cloned().unwrap_or_else(|| json!({}));
        let to_canary = |backend: &mut Value| -> bool {
            let svc = backend.pointer_mut("/service/name");
            match svc {
                Some(name) if name.as_str() == Some(target.stable_service.as_str()) => {
                    *name = target.canary_service.clone().into();
                    true
                }
                _ => false,
            }
        };
        let mut found = false;
        if let Some(rules) = spec.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut() {
                if let Some(paths) = rule
                    .pointer_mut("/http/paths")
                    .and_then(Value::as_array_mut)
                {
                    paths.retain_mut(|p| p.get_mut("backend").is_some_and(to_canary));
                    found |= !paths.is_empty();
                }
            }
            rules.retain(|r| {
                r.pointer("/http/paths")
                    .and_then(Value::as_array)
                    .is_some_and(|p| !p.is_empty())
            });
        }
        let default_to_stable = spec.get_mut("defaultBackend").is_some_and(to_canary);
        if !default_to_stable && let Some(obj) = spec.as_object_mut() {
            obj.remove("defaultBackend");
        }
        if !found && !default_to_stable {
            return Err(format!(
                "{FIELD}.stableIngress: {} has no backend to stableService {:?}",
                self.stable, target.stable_service
            ));
        }
        Ok(spec)
    }
}

impl TrafficRouter for CanaryIngress {
    fn field(&self) -> String {
        FIELD.into()
    }

    fn reads(&self) -> Vec<ObjectKey> {
        vec![self.canary.clone(), self.stable.clone()]
    }

    fn check(&self, objects: &Objects, target: &Target) -> Result<(), String> {
        let stable = require(
            objects,
            &self.stable,
            &format!("{FIELD}.stableIngress"),
            &target.namespace,
        )?;
        self.canary_spec(stable, target).map(|_| ())
    }

    fn render(
        &self,
        objects: &Objects,
        target: &Target,
        state: &TrafficState,
    ) -> Result<Vec<Write>, String> {
        let stable = require(
            objects,
            &self.stable,
            &format!("{FIELD}.stableIngress"),
            &target.namespace,
        )?;
        let current = match objects.get(&self.canary) {
            Some(Found::Object(v)) => Some(v),
            _ => None,
        };
        let mut body = skeleton(&self.canary, &target.namespace, current);
        let mut annotations = Map::new();
        annotations.insert(self.annotation("canary"), "true".into());
        annotations.insert(
            self.annotation("canary-weight"),
            state.weight.to_string().into(),
        );
        if let Some(h) = state.header_routes.first() {
            if state.header_routes.len() > 1 || h.matches.len() > 1 {
                return Err(format!("{FIELD}: ingress-nginx routes on one header only"));
            }
            let m = &h.matches[0];
            annotations.insert(
                self.annotation("canary-by-header"),
                m.header_name.clone().into(),
            );
            match &m.header_value.exact {
                Some(v) => {
                    annotations.insert(self.annotation("canary-by-header-value"), v.clone().into())
                }
                None => annotations.insert(
                    self.annotation("canary-by-header-pattern"),
                    super::header_regex(m).unwrap_or_default().into(),
                ),
            };
            annotations.insert(HEADER_ROUTE_ANNOTATION.into(), h.name.clone().into());
        }
        body["metadata"]["annotations"] = Value::Object(annotations);
        owned(&mut body, target);
        body.insert("spec".into(), self.canary_spec(stable, target)?);
        Ok(vec![Write::Apply {
            key: self.canary.clone(),
            body: Value::Object(body),
        }])
    }

    fn remove_all(&self, objects: &Objects, _: &Target) -> Result<Vec<Write>, String> {
        Ok(delete_owned(objects, &self.canary))
    }

    fn verify(&self, objects: &Objects, _: &Target) -> ReadBack {
        let Some(Found::Object(ingress)) = objects.get(&self.canary) else {
            return ReadBack {
                weight: Some(0),
                ..Default::default()
            };
        };
        let annotations = ingress.pointer("/metadata/annotations");
        let get = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
        ReadBack {
            weight: get(&self.annotation("canary-weight")).and_then(|w| w.parse().ok()),
            header_routes: get(HEADER_ROUTE_ANNOTATION)
                .map(String::from)
                .into_iter()
                .collect(),
            mirror_routes: Vec::new(),
        }
    }

    fn unsupported(&self, mirror: bool, count: usize) -> Option<String> {
        if mirror {
            Some(format!("mirror routes are not supported by {FIELD}"))
        } else if count > 1 {
            Some(format!(
                "{FIELD} routes on one header condition only; this header route has {count}"
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HeaderRouteMatch, HeaderValueMatch, SetHeaderRoute};

    fn target() -> Target {
        Target {
            rollout: "web".into(),
            namespace: "shop".into(),
            stable_service: "web-stable".into(),
            canary_service: "web-canary".into(),
            ..Default::default()
        }
    }

    fn stable() -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
               "spec": {"ingressClassName": "nginx",
                        "tls": [{"hosts": ["shop.example.com"], "secretName": "tls"}],
                        "rules": [
                            {"host": "shop.example.com", "http": {"paths": [
                                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}},
                                {"path": "/img", "pathType": "Prefix", "backend": {"service": {"name": "images", "port": {"number": 80}}}}]}},
                            {"host": "other.example.com", "http": {"paths": [
                                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}})
    }

    #[test]
    fn clones_the_stable_ingress_towards_the_canary() {
        let r = CanaryIngress::new(
            &NginxRouting {
                stable_ingress: "web".into(),
                annotation_prefix: None,
            },
            "web",
        );
        let objects = Objects::from([
            (r.stable.clone(), Found::Object(stable())),
            (r.canary.clone(), Found::Missing),
        ]);
        assert!(r.check(&objects, &target()).is_ok());
        let state = TrafficState {
            weight: 15,
            header_routes: vec![SetHeaderRoute {
                name: "beta".into(),
                matches: vec![HeaderRouteMatch {
                    header_name: "x-beta".into(),
                    header_value: HeaderValueMatch {
                        exact: Some("1".into()),
                        ..Default::default()
                    },
                }],
            }],
            mirror_routes: vec![],
        };
        let writes = r.render(&objects, &target(), &state).unwrap();
        let Write::Apply { key, body } = &writes[0] else {
            panic!()
        };
        assert_eq!(key.name, "web-web-canary");
        assert_eq!(
            body["metadata"]["annotations"],
            json!({"nginx.ingress.kubernetes.io/canary": "true",
                   "nginx.ingress.kubernetes.io/canary-weight": "15",
                   "nginx.ingress.kubernetes.io/canary-by-header": "x-beta",
                   "nginx.ingress.kubernetes.io/canary-by-header-value": "1",
                   "fledge.dev/header-route": "beta"})
        );
        assert_eq!(
            body["spec"]["rules"],
            json!([{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}}]}}])
        );
        assert_eq!(body["spec"]["ingressClassName"], "nginx");
        let read = Objects::from([(r.canary.clone(), Found::Object(body.clone()))]);
        assert!(r.verify(&read, &target()).holds(&state));
        assert_eq!(
            r.remove_all(&read, &target()).unwrap(),
            vec![Write::Delete {
                key: r.canary.clone()
            }]
        );
    }

    #[test]
    fn a_custom_prefix_and_an_ingress_without_the_stable_backend() {
        let r = CanaryIngress::new(
            &NginxRouting {
                stable_ingress: "web".into(),
                annotation_prefix: Some("custom.nginx.org".into()),
            },
            "web",
        );
        let mut s = stable();
        s["spec"]["rules"] = json!([]);
        let objects = Objects::from([(r.stable.clone(), Found::Object(s))]);
        let err = r.check(&objects, &target()).unwrap_err();
        assert_eq!(
            err,
            "strategy.canary.trafficRouting.nginx.stableIngress: Ingress \"web\" has no backend to stableService \"web-stable\""
        );
        assert_eq!(
            r.annotation("canary-weight"),
            "custom.nginx.org/canary-weight"
        );
        assert!(r.unsupported(true, 1).is_some());
        assert!(r.unsupported(false, 2).is_some());
        assert!(r.unsupported(false, 1).is_none());
    }
}
