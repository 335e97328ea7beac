//! SMI: a TrafficSplit that fledge creates, owns and weighs. SMI has no header or mirror routes.

use serde_json::{Value, json};

use super::{
    Found, Kind, ObjectKey, Objects, ReadBack, Target, TrafficRouter, TrafficState, Write,
    canary_share, delete_owned, owned, skeleton,
};
use crate::api::{ROLLOUT_LABEL, SmiRouting};

const FIELD: &str = "strategy.canary.trafficRouting.smi";

pub struct TrafficSplit {
    key: ObjectKey,
    root: Option<String>,
}

impl TrafficSplit {
    pub fn new(smi: &SmiRouting, rollout: &str) -> Self {
        TrafficSplit {
            key: ObjectKey {
                kind: Kind::TrafficSplit,
                name: smi
                    .traffic_split_name
                    .clone()
                    .unwrap_or_else(|| rollout.to_string()),
            },
            root: smi.root_service.clone(),
        }
    }

    fn backend_weight(split: &Value, service: &str) -> i64 {
        split
            .pointer("/spec/backends")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|b| b.get("service").and_then(Value::as_str) == Some(service))
            .map(|b| b.get("weight").and_then(Value::as_i64).unwrap_or(0))
            .sum()
    }
}

impl TrafficRouter for TrafficSplit {
    fn field(&self) -> String {
        FIELD.into()
    }

    fn reads(&self) -> Vec<ObjectKey> {
        vec![self.key.clone()]
    }

    fn check(&self, objects: &Objects, target: &Target) -> Result<(), String> {
        match objects.get(&self.key) {
            Some(Found::NoApi(why)) => Err(format!("{FIELD}: cannot read TrafficSplit: {why}")),
            Some(Found::Object(split)) => {
                let owned = split
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(ROLLOUT_LABEL))
                    .and_then(Value::as_str)
                    == Some(target.rollout.as_str());
                if owned {
                    Ok(())
                } else {
                    Err(format!(
                        "{FIELD}.trafficSplitName: {} exists and is not fledge's; name another",
                        self.key
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    fn render(
        &self,
        objects: &Objects,
        target: &Target,
        state: &TrafficState,
    ) -> Result<Vec<Write>, String> {
        let current = match objects.get(&self.key) {
            Some(Found::Object(v)) => Some(v),
            _ => None,
        };
        let mut body = skeleton(&self.key, &target.namespace, current);
        owned(&mut body, target);
        let root = self
            .root
            .clone()
            .unwrap_or_else(|| target.stable_service.clone());
        body.insert(
            "spec".into(),
            json!({
                "service": root,
                "backends": [
                    {"service": target.stable_service, "weight": 100 - state.weight},
                    {"service": target.canary_service, "weight": state.weight},
                ],
            }),
        );
        Ok(vec![Write::Apply {
            key: self.key.clone(),
            body: Value::Object(body),
        }])
    }

    fn remove_all(&self, objects: &Objects, _: &Target) -> Result<Vec<Write>, String> {
        Ok(delete_owned(objects, &self.key))
    }

    fn verify(&self, objects: &Objects, target: &Target) -> ReadBack {
        let weight = match objects.get(&self.key) {
            Some(Found::Object(split)) => {
                let s = Self::backend_weight(split, &target.stable_service);
                let c = Self::backend_weight(split, &target.canary_service);
                Some(canary_share(s, c))
            }
            _ => None,
        };
        ReadBack {
            weight,
            ..Default::default()
        }
    }

    fn unsupported(&self, mirror: bool, _: usize) -> Option<String> {
        Some(format!(
            "{} routes are not supported by {FIELD} (TrafficSplit has only weights)",
            if mirror { "mirror" } else { "header" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            rollout: "web".into(),
            namespace: "shop".into(),
            stable_service: "web-stable".into(),
            canary_service: "web-canary".into(),
            ..Default::default()
        }
    }

    #[test]
    fn creates_owns_and_weighs_the_split() {
        let smi = TrafficSplit::new(
            &SmiRouting {
                traffic_split_name: None,
                root_service: Some("web".into()),
            },
            "web",
        );
        let t = target();
        let objects = Objects::from([(smi.key.clone(), Found::Missing)]);
        assert!(smi.check(&objects, &t).is_ok());
        let writes = smi
            .render(
                &objects,
                &t,
                &TrafficState {
                    weight: 30,
                    ..Default::default()
                },
            )
            .unwrap();
        let Write::Apply { body, key } = &writes[0] else {
            panic!()
        };
        assert_eq!(key.name, "web");
        assert_eq!(body["apiVersion"], "split.smi-spec.io/v1alpha2");
        assert_eq!(
            body["spec"],
            json!({"service": "web", "backends": [{"service": "web-stable", "weight": 70}, {"service": "web-canary", "weight": 30}]})
        );
        let read = Objects::from([(smi.key.clone(), Found::Object(body.clone()))]);
        assert_eq!(smi.verify(&read, &t).weight, Some(30));
        assert_eq!(
            smi.remove_all(&read, &t).unwrap(),
            vec![Write::Delete {
                key: smi.key.clone()
            }]
        );
        assert!(
            smi.unsupported(true, 1)
                .unwrap()
                .contains("mirror routes are not supported")
        );
    }

    #[test]
    fn a_foreign_split_of_the_same_name_is_refused() {
        let smi = TrafficSplit::new(&SmiRouting::default(), "web");
        let objects = Objects::from([(
            smi.key.clone(),
            Found::Object(json!({"metadata": {"name": "web"}})),
        )]);
        let err = smi.check(&objects, &target()).unwrap_err();
        assert!(err.contains("exists and is not fledge's"), "{err}");
    }
}
