//! Istio: weights on the destinations of one or more VirtualServices' HTTP, TLS and TCP routes
//! (`istio_l4.rs` selects the TLS and TCP ones), header and mirror routes as HTTP routes of their
//! own ahead of them, and, with a DestinationRule, its stable and canary subsets pinned to their
//! revisions.
//!
//! Istio's CRDs keep unknown fields, so server-side apply may treat `spec` as one value: fledge
//! applies the whole spec as read, changed only where it manages it, and nothing is lost.

use serde_json::{Map, Value, json};

use super::mirror_match::istio_route_matches;
use super::{
    Found, Kind, ObjectKey, Objects, ReadBack, Target, TrafficRouter, TrafficState, Write, agreed,
    canary_share, header_regex, managed_annotation, require, skeleton,
};
use crate::api::{
    HASH_LABEL, HeaderRouteMatch, IstioDestinationRule, IstioRouting, IstioTcpRoute, IstioTlsRoute,
    SetMirrorRoute,
};

#[path = "istio_l4.rs"]
mod l4;

const FIELD: &str = "strategy.canary.trafficRouting.istio";

pub struct VirtualService {
    key: ObjectKey,
    /// `virtualService` or `virtualServices[i]`.
    field: String,
    routes: Vec<String>,
    tls_routes: Vec<IstioTlsRoute>,
    tcp_routes: Vec<IstioTcpRoute>,
    subsets: Option<(String, String)>,
}

impl VirtualService {
    /// One router per VirtualService the spec names.
    pub fn all(istio: &IstioRouting) -> Vec<Self> {
        istio
            .virtual_services()
            .into_iter()
            .map(|(field, vs)| VirtualService {
                key: ObjectKey {
                    kind: Kind::VirtualService,
                    name: vs.name.clone(),
                },
                field: format!("{FIELD}.{field}"),
                routes: vs.routes.clone(),
                tls_routes: vs.tls_routes.clone(),
                tcp_routes: vs.tcp_routes.clone(),
                subsets: istio
                    .destination_rule
                    .as_ref()
                    .map(|d| (d.stable_subset_name.clone(), d.canary_subset_name.clone())),
            })
            .collect()
    }

    /// Does destination `d` go to the stable (or, with `canary`, the canary) revision?
    fn is(&self, d: &Value, target: &Target, canary: bool) -> bool {
        let host = d.pointer("/destination/host").and_then(Value::as_str);
        let subset = d.pointer("/destination/subset").and_then(Value::as_str);
        match &self.subsets {
            Some((stable, canary_subset)) => {
                subset == Some(if canary { canary_subset } else { stable })
            }
            None => {
                let service = if canary {
                    &target.canary_service
                } else {
                    &target.stable_service
                };
                host.is_some_and(|h| h == service || h.starts_with(&format!("{service}.")))
            }
        }
    }

    fn weighed(&self, route: &Value, target: &Target, added: &[String]) -> bool {
        let name = route
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if added.iter().any(|a| a == name) {
            return false;
        }
        let named = if self.routes.is_empty() {
            true
        } else {
            self.routes.iter().any(|r| r == name)
        };
        named
            && destinations(route)
                .iter()
                .any(|d| self.is(d, target, false))
    }

    fn canary_destination(&self, route: &Value, target: &Target) -> Option<Value> {
        let mut d = destinations(route)
            .iter()
            .find(|d| self.is(d, target, false))?
            .clone();
        match &self.subsets {
            Some((_, canary)) => d["destination"]["subset"] = canary.clone().into(),
            None => d["destination"]["host"] = target.canary_service.clone().into(),
        }
        d.as_object_mut()?.remove("weight");
        Some(d)
    }

    fn http(&self, vs: &Value) -> Vec<Value> {
        vs.pointer("/spec/http")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn body(&self, vs: &Value, target: &Target, spec: Value, added: &[String]) -> Write {
        let mut body = skeleton(&self.key, &target.namespace, Some(vs));
        if !added.is_empty() {
            let mut a = Map::new();
            a.insert(
                managed_annotation(&target.rollout),
                serde_json::to_string(added).unwrap_or_default().into(),
            );
            body["metadata"]["annotations"] = Value::Object(a);
        }
        body.insert("spec".into(), spec);
        Write::Apply {
            key: self.key.clone(),
            body: Value::Object(body),
        }
    }

    /// Weighs a route's stable and canary destinations, adding the canary's when `add_canary`.
    fn set_weights(&self, route: &mut Value, target: &Target, weight: i32, add_canary: bool) {
        let canary = self.canary_destination(route, target);
        let Some(list) = route.get_mut("route").and_then(Value::as_array_mut) else {
            return;
        };
        if add_canary
            && !list.iter().any(|d| self.is(d, target, true))
            && let Some(c) = canary
        {
            list.push(c);
        }
        for d in list.iter_mut() {
            if self.is(d, target, true) {
                d["weight"] = weight.into();
            } else if self.is(d, target, false) {
                d["weight"] = (100 - weight).into();
            }
        }
    }
}

/// The HTTP routes into `spec`, leaving out a list the VirtualService never had.
fn set_http(spec: &mut Value, http: Vec<Value>) {
    if !http.is_empty() || spec.get("http").is_some() {
        spec["http"] = Value::Array(http);
    }
}

fn destinations(route: &Value) -> &[Value] {
    route
        .get("route")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn added_names(vs: &Value, rollout: &str) -> Vec<String> {
    vs.pointer("/metadata/annotations")
        .and_then(|a| a.get(managed_annotation(rollout)))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn string_match(m: &HeaderRouteMatch) -> Value {
    let v = &m.header_value;
    match (&v.exact, &v.prefix, &v.regex) {
        (Some(e), _, _) => json!({"exact": e}),
        (_, Some(p), _) => json!({"prefix": p}),
        _ => json!({"regex": header_regex(m).unwrap_or_default()}),
    }
}

/// `base`'s matches, each also requiring the headers.
fn with_headers(base: &Value, conditions: &[HeaderRouteMatch]) -> Value {
    let mut matches = base
        .get("match")
        .and_then(Value::as_array)
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![json!({})]);
    for m in &mut matches {
        for c in conditions {
            m["headers"][&c.header_name] = string_match(c);
        }
    }
    Value::Array(matches)
}

impl TrafficRouter for VirtualService {
    fn field(&self) -> String {
        self.field.clone()
    }

    fn reads(&self) -> Vec<ObjectKey> {
        vec![self.key.clone()]
    }

    fn check(&self, objects: &Objects, target: &Target) -> Result<(), String> {
        let vs = require(objects, &self.key, &self.field(), &target.namespace)?;
        let http = self.http(vs);
        let added = added_names(vs, &target.rollout);
        let user: Vec<&Value> = http
            .iter()
            .filter(|r| {
                let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
                !added.iter().any(|a| a == n)
            })
            .collect();
        // As Argo Rollouts: without names, at most one HTTP route, and that one is weighed.
        if self.routes.is_empty() && user.len() > 1 {
            return Err(format!(
                "{}.routes: {} has {} HTTP routes; name the ones to weigh",
                self.field(),
                self.key,
                user.len()
            ));
        }
        for name in &self.routes {
            let Some(route) = user
                .iter()
                .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
            else {
                return Err(format!(
                    "{}.routes: {} has no HTTP route named {name:?}",
                    self.field(),
                    self.key
                ));
            };
            if !destinations(route)
                .iter()
                .any(|d| self.is(d, target, false))
            {
                return Err(format!(
                    "{}.routes: HTTP route {name:?} of {} has no destination to the stable {}",
                    self.field(),
                    self.key,
                    if self.subsets.is_some() {
                        "subset"
                    } else {
                        "Service"
                    }
                ));
            }
        }
        let l4 = l4::check(self, vs, target)?;
        if l4 == 0 && !user.iter().any(|r| self.weighed(r, target, &added)) {
            return Err(format!(
                "{}: {} has no HTTP, TLS or TCP route with a destination to the stable revision",
                self.field(),
                self.key
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
        let vs = require(objects, &self.key, &self.field(), &target.namespace)?;
        let old = added_names(vs, &target.rollout);
        let mut http: Vec<Value> = self
            .http(vs)
            .into_iter()
            .filter(|r| {
                let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
                !old.iter().any(|a| a == n)
            })
            .collect();
        for r in http.iter_mut() {
            if self.weighed(r, target, &[]) {
                self.set_weights(r, target, state.weight, true);
            }
        }
        let mut spec = vs.get("spec").cloned().unwrap_or_else(|| json!({}));
        l4::weigh(self, &mut spec, target, state.weight, true)?;
        // A VirtualService with TLS or TCP routes only takes weights: header and mirror routes
        // are HTTP routes, and go to the VirtualServices that have one.
        let Some(first) = http.iter().position(|r| self.weighed(r, target, &[])) else {
            if spec.get("tls").is_none() && spec.get("tcp").is_none() {
                return Err(format!("{}: no HTTP route to weigh", self.field()));
            }
            set_http(&mut spec, http);
            return Ok(vec![self.body(vs, target, spec, &[])]);
        };
        let base = http[first].clone();
        let mut added_routes = Vec::new();
        let mut added = Vec::new();
        for h in &state.header_routes {
            let Some(canary) = self.canary_destination(&base, target) else {
                continue;
            };
            added_routes.push(json!({
                "name": h.name,
                "match": with_headers(&base, &h.matches),
                "route": [canary],
            }));
            added.push(h.name.clone());
        }
        for m in &state.mirror_routes {
            let Some(mut canary) = self.canary_destination(&base, target) else {
                continue;
            };
            let mut route = base.clone();
            route["name"] = m.name.clone().into();
            if !m.alternatives().is_empty() {
                let Ok(Some(matches)) = istio_route_matches(&base, m, string_match) else {
                    continue;
                };
                route["match"] = Value::Array(matches);
            }
            route["mirror"] = canary["destination"].take();
            route["mirrorPercentage"] =
                json!({"value": m.percentage.unwrap_or(crate::api::defaults::MIRROR_PERCENTAGE)});
            added_routes.push(route);
            added.push(m.name.clone());
        }
        http.splice(first..first, added_routes);
        set_http(&mut spec, http);
        Ok(vec![self.body(vs, target, spec, &added)])
    }

    fn takes_http_routes(&self, objects: &Objects, target: &Target) -> bool {
        let Some(Found::Object(vs)) = objects.get(&self.key) else {
            // A missing VirtualService is check()'s to report.
            return true;
        };
        let added = added_names(vs, &target.rollout);
        self.http(vs)
            .iter()
            .any(|r| self.weighed(r, target, &added))
    }

    fn mirror_unsupported(
        &self,
        route: &SetMirrorRoute,
        objects: &Objects,
        target: &Target,
    ) -> Option<String> {
        let Some(Found::Object(vs)) = objects.get(&self.key) else {
            return None;
        };
        let added = added_names(vs, &target.rollout);
        let base = self
            .http(vs)
            .into_iter()
            .find(|r| self.weighed(r, target, &added))?;
        match istio_route_matches(&base, route, string_match) {
            Err(why) => Some(format!("{why} ({})", self.key)),
            Ok(Some(_)) => None,
            Ok(None) => Some(format!(
                ": matches none of the requests {} sends to the stable revision, so it would \
                 mirror nothing",
                self.key
            )),
        }
    }

    fn remove_all(&self, objects: &Objects, target: &Target) -> Result<Vec<Write>, String> {
        let Some(Found::Object(vs)) = objects.get(&self.key) else {
            return Ok(Vec::new());
        };
        let old = added_names(vs, &target.rollout);
        let mut http: Vec<Value> = self
            .http(vs)
            .into_iter()
            .filter(|r| {
                let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
                !old.iter().any(|a| a == n)
            })
            .collect();
        for r in http.iter_mut() {
            if self.weighed(r, target, &[]) {
                self.set_weights(r, target, 0, false);
            }
        }
        let mut spec = vs.get("spec").cloned().unwrap_or_else(|| json!({}));
        let _ = l4::weigh(self, &mut spec, target, 0, false);
        set_http(&mut spec, http);
        Ok(vec![self.body(vs, target, spec, &[])])
    }

    fn verify(&self, objects: &Objects, target: &Target) -> ReadBack {
        let Some(Found::Object(vs)) = objects.get(&self.key) else {
            return ReadBack::default();
        };
        let added = added_names(vs, &target.rollout);
        let http = self.http(vs);
        let weights: Vec<i32> = http
            .iter()
            .filter(|r| self.weighed(r, target, &added))
            .chain(l4::weighed(self, vs))
            .map(|r| {
                let w = |canary: bool| -> i64 {
                    destinations(r)
                        .iter()
                        .filter(|d| self.is(d, target, canary))
                        .map(|d| d.get("weight").and_then(Value::as_i64).unwrap_or(0))
                        .sum()
                };
                canary_share(w(false), w(true))
            })
            .collect();
        let weight = agreed(&weights);
        let present = |mirror: bool| -> Vec<String> {
            http.iter()
                .filter(|r| r.get("mirror").is_some() == mirror)
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .filter(|n| added.iter().any(|a| a == n))
                .map(String::from)
                .collect()
        };
        ReadBack {
            weight,
            header_routes: present(false),
            mirror_routes: present(true),
        }
    }
}

/// Pins a DestinationRule's stable and canary subsets to their revisions' pod-template hashes.
pub struct DestinationRule {
    key: ObjectKey,
    stable: String,
    canary: String,
}

impl DestinationRule {
    pub fn new(dr: &IstioDestinationRule) -> Self {
        DestinationRule {
            key: ObjectKey {
                kind: Kind::DestinationRule,
                name: dr.name.clone(),
            },
            stable: dr.stable_subset_name.clone(),
            canary: dr.canary_subset_name.clone(),
        }
    }

    fn pinned(&self, dr: &Value, target: &Target, canary_hash: &str) -> Result<Value, String> {
        let mut spec = dr.get("spec").cloned().unwrap_or_else(|| json!({}));
        let subsets = spec
            .get_mut("subsets")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| format!("{}: {} has no subsets", self.field(), self.key))?;
        for (name, hash) in [
            (&self.stable, &target.stable_hash),
            (&self.canary, &canary_hash.to_string()),
        ] {
            let subset = subsets
                .iter_mut()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
                .ok_or_else(|| {
                    format!(
                        "{}: {} has no subset named {name:?}",
                        self.field(),
                        self.key
                    )
                })?;
            subset["labels"][HASH_LABEL] = hash.clone().into();
        }
        Ok(spec)
    }
}

impl TrafficRouter for DestinationRule {
    fn field(&self) -> String {
        format!("{FIELD}.destinationRule")
    }

    fn reads(&self) -> Vec<ObjectKey> {
        vec![self.key.clone()]
    }

    fn check(&self, objects: &Objects, target: &Target) -> Result<(), String> {
        let dr = require(objects, &self.key, &self.field(), &target.namespace)?;
        self.pinned(dr, target, &target.canary_hash).map(|_| ())
    }

    fn render(
        &self,
        objects: &Objects,
        target: &Target,
        _: &TrafficState,
    ) -> Result<Vec<Write>, String> {
        let dr = require(objects, &self.key, &self.field(), &target.namespace)?;
        let mut body = skeleton(&self.key, &target.namespace, Some(dr));
        body.insert("spec".into(), self.pinned(dr, target, &target.canary_hash)?);
        Ok(vec![Write::Apply {
            key: self.key.clone(),
            body: Value::Object(body),
        }])
    }

    /// Both subsets back on the stable revision.
    fn remove_all(&self, objects: &Objects, target: &Target) -> Result<Vec<Write>, String> {
        let Some(Found::Object(dr)) = objects.get(&self.key) else {
            return Ok(Vec::new());
        };
        let mut body = skeleton(&self.key, &target.namespace, Some(dr));
        body.insert("spec".into(), self.pinned(dr, target, &target.stable_hash)?);
        Ok(vec![Write::Apply {
            key: self.key.clone(),
            body: Value::Object(body),
        }])
    }

    fn verify(&self, _: &Objects, _: &Target) -> ReadBack {
        ReadBack::default()
    }

    fn carries_weight(&self) -> bool {
        false
    }

    fn canary_revision(&self, objects: &Objects) -> Option<String> {
        let Some(Found::Object(dr)) = objects.get(&self.key) else {
            return None;
        };
        dr.pointer("/spec/subsets")?
            .as_array()?
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(self.canary.as_str()))?
            .pointer(&format!("/labels/{HASH_LABEL}"))?
            .as_str()
            .map(String::from)
    }
}

#[cfg(test)]
#[path = "istio_tests.rs"]
mod tests;
