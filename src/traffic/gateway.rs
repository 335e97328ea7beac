//! Gateway API routes (HTTPRoute, GRPCRoute): native, no plugin.
//!
//! fledge weighs the backendRefs of `stableService` and `canaryService` in every rule that sends
//! to the stable Service (adding the canary's when only the stable's is there). Header and mirror
//! routes are rules of their own, put ahead of those rules: a header rule matches more headers, and
//! among equally specific rules the first in the list wins. Everything else in the route stays as
//! the user wrote it. Rules have no names in the standard channel, so the rules fledge added are
//! recorded in an annotation, which is how they are found and taken out again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Found, Kind, ObjectKey, Objects, ReadBack, Target, TrafficRouter, TrafficState, Write, agreed,
    canary_share, covers, header_regex, managed_annotation, require, skeleton,
};
use crate::api::{HeaderRouteMatch, SetHeaderRoute, SetMirrorRoute};

/// One HTTPRoute or GRPCRoute.
pub struct GatewayRoute {
    key: ObjectKey,
    index: usize,
}

impl GatewayRoute {
    pub fn new(kind: Kind, name: &str, index: usize) -> Self {
        GatewayRoute {
            key: ObjectKey {
                kind,
                name: name.to_string(),
            },
            index,
        }
    }
}

/// What fledge added to a route: its rules by route name, and the (indexes of the user's) rules
/// where it added the canary's backendRef, so that cleanup takes those out rather than leaving
/// them at weight 0, and leaves the ones the user wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    header: BTreeMap<String, Vec<Value>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    mirror: BTreeMap<String, Vec<Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    canary_ref_added: Vec<usize>,
}

impl Record {
    fn read(route: &Value, rollout: &str) -> Record {
        route
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(managed_annotation(rollout)))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }

    fn added_rules(&self) -> impl Iterator<Item = &Value> {
        self.header.values().chain(self.mirror.values()).flatten()
    }

    fn is_empty(&self) -> bool {
        self.header.is_empty() && self.mirror.is_empty() && self.canary_ref_added.is_empty()
    }
}

/// A backendRef to Service `name` (no group or the core group, no kind or kind Service, and in
/// the route's own namespace).
fn refers_to(backend: &Value, name: &str) -> bool {
    backend.get("name").and_then(Value::as_str) == Some(name)
        && backend
            .get("group")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        && backend
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(|k| k == "Service")
        && backend.get("namespace").is_none()
}

fn backends(rule: &Value) -> &[Value] {
    rule.get("backendRefs")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A rule fledge weighs: it sends to the stable Service.
fn weighed(rule: &Value, target: &Target) -> bool {
    backends(rule)
        .iter()
        .any(|b| refers_to(b, &target.stable_service))
}

fn weight_of(backend: &Value) -> i64 {
    backend.get("weight").and_then(Value::as_i64).unwrap_or(1)
}

/// Sets the stable/canary weights of a weighed rule, adding the canary's backendRef when
/// `add_canary` and it is missing; returns true when it was added.
fn set_weights(rule: &mut Value, target: &Target, weight: i32, add_canary: bool) -> bool {
    let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
        return false;
    };
    let Some(stable) = refs
        .iter()
        .find(|b| refers_to(b, &target.stable_service))
        .cloned()
    else {
        return false;
    };
    let mut added = false;
    if add_canary && !refs.iter().any(|b| refers_to(b, &target.canary_service)) {
        let mut canary = stable.clone();
        canary["name"] = target.canary_service.clone().into();
        refs.push(canary);
        added = true;
    }
    for b in refs.iter_mut() {
        if refers_to(b, &target.stable_service) {
            b["weight"] = (100 - weight).into();
        } else if refers_to(b, &target.canary_service) {
            b["weight"] = weight.into();
        }
    }
    added
}

/// The canary's backendRef, as the rule's stable one with the canary's name, without a weight.
fn canary_ref(rule: &Value, target: &Target) -> Option<Value> {
    let mut r = backends(rule)
        .iter()
        .find(|b| refers_to(b, &target.stable_service))?
        .clone();
    let obj = r.as_object_mut()?;
    obj.insert("name".into(), target.canary_service.clone().into());
    obj.remove("weight");
    obj.remove("filters");
    Some(r)
}

pub(super) fn header_matches(conditions: &[HeaderRouteMatch]) -> Vec<Value> {
    conditions
        .iter()
        .map(|m| match &m.header_value.exact {
            Some(v) => json!({"type": "Exact", "name": m.header_name, "value": v}),
            None => json!({
                "type": "RegularExpression",
                "name": m.header_name,
                "value": header_regex(m).unwrap_or_default(),
            }),
        })
        .collect()
}

/// `base`'s matches, each also requiring `conditions`.
fn with_headers(base: &Value, conditions: &[HeaderRouteMatch]) -> Value {
    let extra = header_matches(conditions);
    let mut matches = base
        .get("matches")
        .and_then(Value::as_array)
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})]);
    for m in &mut matches {
        if let Some(obj) = m.as_object_mut() {
            let headers = obj
                .entry("headers")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = headers.as_array_mut() {
                list.extend(extra.iter().cloned());
            }
        }
    }
    Value::Array(matches)
}

fn without_mirrors(filters: Option<&Value>) -> Option<Value> {
    let kept: Vec<Value> = filters?
        .as_array()?
        .iter()
        .filter(|f| f.get("type").and_then(Value::as_str) != Some("RequestMirror"))
        .cloned()
        .collect();
    (!kept.is_empty()).then_some(Value::Array(kept))
}

/// A header route: `base`'s matches plus the headers, all of it to the canary.
fn header_rule(base: &Value, route: &SetHeaderRoute, target: &Target) -> Option<Value> {
    let mut rule = base.as_object()?.clone();
    rule.insert("matches".into(), with_headers(base, &route.matches));
    rule.insert(
        "backendRefs".into(),
        Value::Array(vec![canary_ref(base, target)?]),
    );
    match without_mirrors(base.get("filters")) {
        Some(f) => rule.insert("filters".into(), f),
        None => rule.remove("filters"),
    };
    Some(Value::Object(rule))
}

/// A mirror route: `base` as it is (same backends and weights), narrowed by the mirror's
/// conditions when given (`mirror_match.rs`), with a RequestMirror filter to the canary. `None`
/// when the conditions take none of `base`'s requests.
fn mirror_rule(base: &Value, route: &SetMirrorRoute, target: &Target, kind: Kind) -> Option<Value> {
    let mut rule = base.as_object()?.clone();
    if !route.alternatives().is_empty() {
        let matches =
            super::mirror_match::gateway_rule_matches(base, route, kind == Kind::GrpcRoute)
                .ok()??;
        rule.insert("matches".into(), Value::Array(matches));
    }
    let mut mirror_ref = canary_ref(base, target)?;
    if let Some(obj) = mirror_ref.as_object_mut() {
        obj.remove("weight");
    }
    let mut mirror = json!({"backendRef": mirror_ref});
    if let Some(p) = route
        .percentage
        .filter(|p| *p < crate::api::defaults::MIRROR_PERCENTAGE)
    {
        mirror["percent"] = p.into();
    }
    let filters = rule
        .entry("filters")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = filters.as_array_mut() {
        list.push(json!({"type": "RequestMirror", "requestMirror": mirror}));
    }
    Some(Value::Object(rule))
}

impl GatewayRoute {
    fn plural_field(&self) -> &'static str {
        match self.key.kind {
            Kind::GrpcRoute => "grpcRoutes",
            _ => "httpRoutes",
        }
    }

    /// The route's rules without those fledge added, and the record of what it added.
    fn user_rules(&self, route: &Value, target: &Target) -> (Vec<Value>, Record) {
        let record = Record::read(route, &target.rollout);
        let added: Vec<&Value> = record.added_rules().collect();
        let rules = route
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter(|r| !added.iter().any(|a| covers(r, a)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        (rules, record)
    }

    fn body(&self, route: &Value, target: &Target, rules: Vec<Value>, record: &Record) -> Write {
        let mut body = skeleton(&self.key, &target.namespace, Some(route));
        if !record.is_empty() {
            let mut annotations = Map::new();
            annotations.insert(
                managed_annotation(&target.rollout),
                serde_json::to_string(record).unwrap_or_default().into(),
            );
            body["metadata"]["annotations"] = Value::Object(annotations);
        }
        body.insert("spec".into(), json!({"rules": rules}));
        Write::Apply {
            key: self.key.clone(),
            body: Value::Object(body),
        }
    }
}

impl TrafficRouter for GatewayRoute {
    fn field(&self) -> String {
        format!(
            "strategy.canary.trafficRouting.gatewayAPI.{}[{}]",
            self.plural_field(),
            self.index
        )
    }

    fn reads(&self) -> Vec<ObjectKey> {
        vec![self.key.clone()]
    }

    fn check(&self, objects: &Objects, target: &Target) -> Result<(), String> {
        let route = require(objects, &self.key, &self.field(), &target.namespace)?;
        let (rules, _) = self.user_rules(route, target);
        if !rules.iter().any(|r| weighed(r, target)) {
            return Err(format!(
                "{}: {} has no rule with a backendRef to stableService {:?}",
                self.field(),
                self.key,
                target.stable_service
            ));
        }
        Ok(())
    }

    fn render(
        &self,
        objects: &Objects,
        target: &Target,
        state: &TrafficState,
    ) -> Result<Vec<Write>, String> {
        let route = require(objects, &self.key, &self.field(), &target.namespace)?;
        let (mut rules, old) = self.user_rules(route, target);
        let mut record = Record::default();
        for (i, rule) in rules.iter_mut().enumerate() {
            if !weighed(rule, target) {
                continue;
            }
            if set_weights(rule, target, state.weight, true) || old.canary_ref_added.contains(&i) {
                record.canary_ref_added.push(i);
            }
        }
        let Some(first) = rules.iter().position(|r| weighed(r, target)) else {
            return Err(format!(
                "{}: {} has no rule with a backendRef to stableService {:?}",
                self.field(),
                self.key,
                target.stable_service
            ));
        };
        let bases: Vec<Value> = rules
            .iter()
            .filter(|r| weighed(r, target))
            .cloned()
            .collect();
        let mut added = Vec::new();
        for h in &state.header_routes {
            let rules: Vec<Value> = bases
                .iter()
                .filter_map(|b| header_rule(b, h, target))
                .collect();
            added.extend(rules.iter().cloned());
            record.header.insert(h.name.clone(), rules);
        }
        for m in &state.mirror_routes {
            let rules: Vec<Value> = bases
                .iter()
                .filter_map(|b| mirror_rule(b, m, target, self.key.kind))
                .collect();
            added.extend(rules.iter().cloned());
            record.mirror.insert(m.name.clone(), rules);
        }
        rules.splice(first..first, added);
        Ok(vec![self.body(route, target, rules, &record)])
    }

    fn remove_all(&self, objects: &Objects, target: &Target) -> Result<Vec<Write>, String> {
        let route = match objects.get(&self.key) {
            Some(Found::Object(route)) => route,
            _ => return Ok(Vec::new()),
        };
        let (mut rules, record) = self.user_rules(route, target);
        for (i, rule) in rules.iter_mut().enumerate() {
            if !weighed(rule, target) {
                continue;
            }
            set_weights(rule, target, 0, false);
            if record.canary_ref_added.contains(&i)
                && let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut)
            {
                refs.retain(|b| !refers_to(b, &target.canary_service));
            }
        }
        Ok(vec![self.body(route, target, rules, &Record::default())])
    }

    fn verify(&self, objects: &Objects, target: &Target) -> ReadBack {
        let Some(Found::Object(route)) = objects.get(&self.key) else {
            return ReadBack::default();
        };
        let record = Record::read(route, &target.rollout);
        let all: Vec<Value> = route
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let present = |added: &BTreeMap<String, Vec<Value>>| -> Vec<String> {
            added
                .iter()
                .filter(|(_, rules)| rules.iter().all(|r| all.iter().any(|l| covers(l, r))))
                .map(|(name, _)| name.clone())
                .collect()
        };
        let (user, _) = self.user_rules(route, target);
        let weights: Vec<i32> = user
            .iter()
            .filter(|r| weighed(r, target))
            .map(|r| {
                let sum = |name: &str| -> i64 {
                    backends(r)
                        .iter()
                        .filter(|b| refers_to(b, name))
                        .map(weight_of)
                        .sum()
                };
                canary_share(sum(&target.stable_service), sum(&target.canary_service))
            })
            .collect();
        ReadBack {
            weight: agreed(&weights),
            header_routes: present(&record.header),
            mirror_routes: present(&record.mirror),
        }
    }

    fn mirror_unsupported(
        &self,
        route: &SetMirrorRoute,
        objects: &Objects,
        target: &Target,
    ) -> Option<String> {
        let Some(Found::Object(live)) = objects.get(&self.key) else {
            return None;
        };
        let (rules, _) = self.user_rules(live, target);
        let grpc = self.key.kind == Kind::GrpcRoute;
        let mut takes_some = false;
        for base in rules.iter().filter(|r| weighed(r, target)) {
            match super::mirror_match::gateway_rule_matches(base, route, grpc) {
                Err(why) => return Some(format!("{why} ({})", self.key)),
                Ok(found) => takes_some |= found.is_some(),
            }
        }
        (!takes_some).then(|| {
            format!(
                ": matches none of the requests {} sends to stableService {:?}, so it would \
                 mirror nothing",
                self.key, target.stable_service
            )
        })
    }

    fn rejected(&self, objects: &Objects) -> Option<String> {
        let Some(Found::Object(route)) = objects.get(&self.key) else {
            return None;
        };
        let generation = route
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        let parents = route.pointer("/status/parents")?.as_array()?;
        for parent in parents {
            let gateway = parent
                .pointer("/parentRef/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let conditions = parent.get("conditions").and_then(Value::as_array);
            for c in conditions.into_iter().flatten() {
                let type_ = c.get("type").and_then(Value::as_str).unwrap_or_default();
                if matches!(type_, "Accepted" | "ResolvedRefs")
                    && c.get("status").and_then(Value::as_str) == Some("False")
                    && !stale(c, generation)
                {
                    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
                    return Some(format!(
                        "{} on parent {gateway:?}: {type_}=False ({}): {}",
                        self.key,
                        text("reason"),
                        text("message")
                    ));
                }
            }
        }
        None
    }

    fn lagging(&self, objects: &Objects) -> bool {
        let Some(Found::Object(route)) = objects.get(&self.key) else {
            return false;
        };
        let generation = route
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        let parents = route.pointer("/status/parents").and_then(Value::as_array);
        parents.into_iter().flatten().any(|parent| {
            let conditions = parent.get("conditions").and_then(Value::as_array);
            conditions.into_iter().flatten().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Accepted") && stale(c, generation)
            })
        })
    }

    fn unreported(&self, objects: &Objects) -> bool {
        match objects.get(&self.key) {
            Some(Found::Object(route)) => route
                .pointer("/status/parents")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty),
            _ => false,
        }
    }
}

/// A route status condition about an older generation of the route than `generation` is stale:
/// the gateway that wrote it has not read the route as it stands yet.
fn stale(condition: &Value, generation: Option<i64>) -> bool {
    condition
        .get("observedGeneration")
        .and_then(Value::as_i64)
        .zip(generation)
        .is_some_and(|(seen, now)| seen < now)
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
