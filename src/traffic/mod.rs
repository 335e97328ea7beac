//! Traffic routers: the objects a gateway or mesh reads, edited so that the canary gets the weight
//! the planner decided. The planner never names a vendor: it asks each [`TrafficRouter`] to render
//! the desired [`TrafficState`] into the objects it owns, and to read back what an object holds.
//!
//! Every router is pure: it turns the object as cached into the body fledge server-side applies,
//! touching only what fledge manages. Objects are handled as JSON documents, not typed structs,
//! so fields fledge does not know (a newer API version's, another controller's) survive unchanged.

pub mod cache;
pub mod endpoints;
pub mod features;
pub mod gateway;
pub mod istio;
pub mod mirror_match;
pub mod nginx;
pub mod smi;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::discovery::ApiResource;
use serde_json::{Map, Value, json};

use crate::api::{HeaderRouteMatch, SetHeaderRoute, SetMirrorRoute, TrafficRouting};

/// A kind of routing object fledge can edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    HttpRoute,
    GrpcRoute,
    VirtualService,
    DestinationRule,
    TrafficSplit,
    Ingress,
    /// Read only: the parents of the Gateway API routes, for their class.
    Gateway,
    /// Read only, cluster-scoped: what a parent's gateway implements (`traffic/features.rs`).
    GatewayClass,
    /// Read only: the endpoints gateways and meshes route to, by Service.
    EndpointSlice,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::TrafficSplit,
        Kind::Ingress,
        Kind::Gateway,
        Kind::GatewayClass,
        Kind::EndpointSlice,
    ];

    /// (group, version, kind, plural).
    fn gvkp(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            Kind::GrpcRoute => ("gateway.networking.k8s.io", "v1", "GRPCRoute", "grpcroutes"),
            Kind::VirtualService => (
                "networking.istio.io",
                "v1beta1",
                "VirtualService",
                "virtualservices",
            ),
            Kind::DestinationRule => (
                "networking.istio.io",
                "v1beta1",
                "DestinationRule",
                "destinationrules",
            ),
            Kind::TrafficSplit => (
                "split.smi-spec.io",
                "v1alpha2",
                "TrafficSplit",
                "trafficsplits",
            ),
            Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Kind::Gateway => ("gateway.networking.k8s.io", "v1", "Gateway", "gateways"),
            Kind::GatewayClass => (
                "gateway.networking.k8s.io",
                "v1",
                "GatewayClass",
                "gatewayclasses",
            ),
            Kind::EndpointSlice => ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        }
    }

    /// Kinds fledge reads across namespaces whatever namespace it watches: a route's parent
    /// Gateway usually lives in the platform team's namespace, and a GatewayClass in none.
    pub fn cluster_wide(self) -> bool {
        matches!(self, Kind::Gateway | Kind::GatewayClass)
    }

    /// Kinds fledge only reads, never patches.
    pub fn read_only(self) -> bool {
        matches!(
            self,
            Kind::Gateway | Kind::GatewayClass | Kind::EndpointSlice
        )
    }

    pub fn name(self) -> &'static str {
        self.gvkp().2
    }

    pub fn api_version(self) -> String {
        let (group, version, ..) = self.gvkp();
        format!("{group}/{version}")
    }

    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = self.gvkp();
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: self.api_version(),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// One object, in the Rollout's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind.name(), self.name)
    }
}

/// What the observer found for one object.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// The object as cached.
    Object(Value),
    /// The API is served but no such object exists.
    Missing,
    /// The API itself is not served (its CRD is not installed), or not readable.
    NoApi(String),
}

/// The traffic the planner wants: the canary's weight and the header and mirror routes in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficState {
    /// Percentage of the default traffic for the canary.
    pub weight: i32,
    pub header_routes: Vec<SetHeaderRoute>,
    pub mirror_routes: Vec<SetMirrorRoute>,
}

/// What a router read back from its object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadBack {
    /// The canary's weight, when every weighed rule agrees on one.
    pub weight: Option<i32>,
    /// Names of the header routes fledge put there.
    pub header_routes: Vec<String>,
    /// Names of the mirror routes fledge put there.
    pub mirror_routes: Vec<String>,
}

impl ReadBack {
    /// True when the object holds exactly `state`.
    pub fn holds(&self, state: &TrafficState) -> bool {
        let mut headers: Vec<&str> = state
            .header_routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let mut mirrors: Vec<&str> = state
            .mirror_routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        headers.sort_unstable();
        mirrors.sort_unstable();
        let mut have_h: Vec<&str> = self.header_routes.iter().map(String::as_str).collect();
        let mut have_m: Vec<&str> = self.mirror_routes.iter().map(String::as_str).collect();
        have_h.sort_unstable();
        have_m.sort_unstable();
        self.weight == Some(state.weight) && headers == have_h && mirrors == have_m
    }
}

/// What the routers need to know of the Rollout.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub rollout: String,
    pub namespace: String,
    pub stable_service: String,
    pub canary_service: String,
    pub stable_hash: String,
    pub canary_hash: String,
    /// Controller reference for the objects fledge creates (TrafficSplit, canary Ingress).
    pub owner: Option<OwnerReference>,
}

/// A write a router asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply this body (only the fields fledge manages).
    Apply { key: ObjectKey, body: Value },
    /// Delete an object fledge created.
    Delete { key: ObjectKey },
}

/// One way of moving traffic. Every method is pure: the act layer does the I/O.
pub trait TrafficRouter: Send + Sync {
    /// The field of the spec this router comes from, for messages.
    fn field(&self) -> String;
    /// The objects the router reads; the first is the one it verifies.
    fn reads(&self) -> Vec<ObjectKey>;
    /// Checks what the objects must hold before fledge can use them (the stable backend is
    /// there, the named routes exist). An error is a message for `InvalidSpec`.
    fn check(&self, objects: &Objects, target: &Target) -> Result<(), String>;
    /// The writes that make the objects hold `state`. The planner drops those that would change
    /// nothing.
    fn render(
        &self,
        objects: &Objects,
        target: &Target,
        state: &TrafficState,
    ) -> Result<Vec<Write>, String>;
    /// The writes that take out everything fledge added and give the stable all traffic.
    fn remove_all(&self, objects: &Objects, target: &Target) -> Result<Vec<Write>, String>;
    /// What the objects hold now.
    fn verify(&self, objects: &Objects, target: &Target) -> ReadBack;
    /// A reason the data plane does not take the object (a gateway rejected a route), or `None`.
    fn rejected(&self, _objects: &Objects) -> Option<String> {
        None
    }
    /// The object exists but nobody reported on it yet (no gateway controller has seen it).
    fn unreported(&self, _objects: &Objects) -> bool {
        false
    }
    /// A gateway has reported on an older version of the objects than the one in place: it may
    /// still route by what they held before.
    fn lagging(&self, _objects: &Objects) -> bool {
        false
    }
    /// Whether the router carries the weight ([`Self::verify`] reads one back).
    fn carries_weight(&self) -> bool {
        true
    }
    /// Whether the objects, as they stand, have an HTTP route to put header and mirror routes
    /// beside (an Istio VirtualService may hold TLS and TCP routes only).
    fn takes_http_routes(&self, _objects: &Objects, _target: &Target) -> bool {
        true
    }
    /// Why this router cannot do header (`mirror == false`) or mirror routes, if it cannot.
    fn unsupported(&self, _mirror: bool, _count: usize) -> Option<String> {
        None
    }
    /// The revision the router's objects send the canary's traffic to now, where they name one
    /// (an Istio DestinationRule's canary subset): without a canary Service, the planner moves
    /// traffic off it before it moves on, as it does for the canary Service.
    fn canary_revision(&self, _objects: &Objects) -> Option<String> {
        None
    }
    /// Why this router cannot write mirror route `route` as the objects stand: a condition it
    /// cannot express, or one whose meet with the routes' own matches it cannot tell. The
    /// message starts with the field under `setMirrorRoute` it is about (or `:` for the step).
    fn mirror_unsupported(
        &self,
        _route: &SetMirrorRoute,
        _objects: &Objects,
        _target: &Target,
    ) -> Option<String> {
        None
    }
}

/// The observed objects, by key.
pub type Objects = BTreeMap<ObjectKey, Found>;

/// Looks up an object that must exist; the message names the spec field.
pub fn require<'a>(
    objects: &'a Objects,
    key: &ObjectKey,
    field: &str,
    ns: &str,
) -> Result<&'a Value, String> {
    match objects.get(key) {
        Some(Found::Object(v)) => Ok(v),
        Some(Found::NoApi(why)) => Err(format!("{field}: cannot read {}: {why}", key.kind.name())),
        _ => Err(format!("{field}: {key} not found in namespace {ns:?}")),
    }
}

/// The routers a canary strategy names.
pub fn routers(routing: &TrafficRouting, rollout: &str) -> Vec<Box<dyn TrafficRouter>> {
    let mut out: Vec<Box<dyn TrafficRouter>> = Vec::new();
    if let Some(g) = &routing.gateway_api {
        for (i, r) in g.http_routes.iter().enumerate() {
            out.push(Box::new(gateway::GatewayRoute::new(
                Kind::HttpRoute,
                &r.name,
                i,
            )));
        }
        for (i, r) in g.grpc_routes.iter().enumerate() {
            out.push(Box::new(gateway::GatewayRoute::new(
                Kind::GrpcRoute,
                &r.name,
                i,
            )));
        }
    }
    if let Some(istio) = &routing.istio {
        // The DestinationRule first: a promotion moves the stable subset to the new revision
        // before the VirtualServices give the stable subset all traffic.
        if let Some(dr) = &istio.destination_rule {
            out.push(Box::new(istio::DestinationRule::new(dr)));
        }
        for vs in istio::VirtualService::all(istio) {
            out.push(Box::new(vs));
        }
    }
    if let Some(smi) = &routing.smi {
        out.push(Box::new(smi::TrafficSplit::new(smi, rollout)));
    }
    if let Some(nginx) = &routing.nginx {
        out.push(Box::new(nginx::CanaryIngress::new(nginx, rollout)));
    }
    out
}

/// The kinds a canary strategy's routers read, for the caches.
pub fn kinds(routing: &TrafficRouting, rollout: &str) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = routers(routing, rollout)
        .iter()
        .flat_map(|r| r.reads())
        .map(|k| k.kind)
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// The header and mirror routes in force after the first `done` steps: later steps of the same
/// name replace earlier ones, and a step without matches removes its route.
pub fn routes_after(
    steps: &[crate::api::CanaryStep],
    done: usize,
) -> (Vec<SetHeaderRoute>, Vec<SetMirrorRoute>) {
    let mut headers: Vec<SetHeaderRoute> = Vec::new();
    let mut mirrors: Vec<SetMirrorRoute> = Vec::new();
    for step in steps.iter().take(done) {
        if let Some(h) = &step.set_header_route {
            headers.retain(|r| r.name != h.name);
            if !h.matches.is_empty() {
                headers.push(h.clone());
            }
        }
        if let Some(m) = &step.set_mirror_route {
            mirrors.retain(|r| r.name != m.name);
            if !m.removes() {
                mirrors.push(m.clone());
            }
        }
    }
    (headers, mirrors)
}

/// The SSA body skeleton for an object fledge edits: apiVersion, kind, name, namespace, and the
/// resourceVersion it was read at, so a write based on a stale read fails instead of undoing
/// someone's change.
pub fn skeleton(key: &ObjectKey, namespace: &str, current: Option<&Value>) -> Map<String, Value> {
    let mut metadata = json!({"name": key.name, "namespace": namespace});
    if let Some(rv) = current.and_then(|c| c.pointer("/metadata/resourceVersion")) {
        metadata["resourceVersion"] = rv.clone();
    }
    let mut body = Map::new();
    body.insert("apiVersion".into(), key.kind.api_version().into());
    body.insert("kind".into(), key.kind.name().into());
    body.insert("metadata".into(), metadata);
    body
}

/// True when applying `body` would change `current`: some field of the body (other than the
/// metadata that only identifies the object) differs. Objects compare field by field, lists
/// and values as a whole, as server-side apply of atomic lists does.
pub fn changes(body: &Value, current: Option<&Value>) -> bool {
    let Some(current) = current else { return true };
    let (Some(b), Some(c)) = (body.as_object(), current.as_object()) else {
        return body != current;
    };
    b.iter().any(|(k, v)| match k.as_str() {
        "apiVersion" | "kind" => false,
        "metadata" => metadata_changes(v, c.get("metadata")),
        _ => c.get(k).is_none_or(|cv| subset_differs(v, cv)),
    })
}

fn metadata_changes(body: &Value, current: Option<&Value>) -> bool {
    let Some(b) = body.as_object() else {
        return false;
    };
    b.iter().any(|(k, v)| match k.as_str() {
        "name" | "namespace" | "resourceVersion" => false,
        _ => current
            .and_then(|c| c.get(k))
            .is_none_or(|cv| subset_differs(v, cv)),
    })
}

fn subset_differs(body: &Value, current: &Value) -> bool {
    !covers(current, body)
}

/// `live` holds everything `written` says: objects field by field (`live` may have more fields:
/// the API server fills in defaults such as a backendRef's group and kind), lists element by
/// element with the same length, values equal.
pub fn covers(live: &Value, written: &Value) -> bool {
    match (live, written) {
        (Value::Object(l), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| covers(lv, v))),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        _ => live == written,
    }
}

/// The canary's share, in percent, of the weight two backends carry together.
pub fn canary_share(stable: i64, canary: i64) -> i32 {
    if stable + canary <= 0 {
        return 0;
    }
    (canary * 100 / (stable + canary)) as i32
}

/// The one weight every weighed rule carries; `None` when they disagree or there are none.
pub fn agreed(weights: &[i32]) -> Option<i32> {
    match weights.split_first() {
        Some((w, rest)) if rest.iter().all(|x| x == w) => Some(*w),
        _ => None,
    }
}

/// Marks `body` as fledge's own object of `target`'s Rollout: labelled with it and, when it has
/// a uid, owned by it, so that it goes with the Rollout.
pub fn owned(body: &mut Map<String, Value>, target: &Target) {
    body["metadata"]["labels"] = json!({crate::api::ROLLOUT_LABEL: target.rollout});
    if let Some(owner) = &target.owner {
        body["metadata"]["ownerReferences"] = json!([owner]);
    }
}

/// Deletes object `key` that fledge created, if it is there.
pub fn delete_owned(objects: &Objects, key: &ObjectKey) -> Vec<Write> {
    match objects.get(key) {
        Some(Found::Object(_)) => vec![Write::Delete { key: key.clone() }],
        _ => Vec::new(),
    }
}

/// The regular expression for a header condition, for routers that only know exact and regex
/// matches. Prefixes are escaped so that their characters match themselves.
pub fn header_regex(m: &HeaderRouteMatch) -> Option<String> {
    let v = &m.header_value;
    if let Some(r) = &v.regex {
        return Some(r.clone());
    }
    v.prefix.as_ref().map(|p| format!("^{}.*", regex_escape(p)))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The annotation on an edited object that records what fledge added to it, so that it can be
/// taken out again even after the Rollout's spec changed.
pub fn managed_annotation(rollout: &str) -> String {
    // An annotation name has at most 63 characters; a long Rollout name is shortened with a
    // digest so that two long names do not meet.
    if rollout.len() <= 48 {
        return format!("fledge.dev/routes.{rollout}");
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(rollout.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let cut = rollout
        .char_indices()
        .take_while(|(i, _)| *i < 36)
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    format!(
        "fledge.dev/routes.{}-{hex}",
        rollout[..cut].trim_end_matches(['-', '.'])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_compares_only_what_the_body_sets() {
        let current = json!({"metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "1"}},
            "spec": {"hostnames": ["h"], "rules": [{"backendRefs": [{"name": "s", "weight": 1}]}]}});
        let same = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a", "resourceVersion": "6"},
            "spec": {"rules": [{"backendRefs": [{"name": "s", "weight": 1}]}]}});
        assert!(!changes(&same, Some(&current)));
        let other = json!({"spec": {"rules": [{"backendRefs": [{"name": "s", "weight": 2}]}]}});
        assert!(changes(&other, Some(&current)));
        assert!(changes(&same, None));
        let annotated = json!({"metadata": {"annotations": {"k": "v"}}});
        assert!(changes(&annotated, Some(&current)));
    }

    #[test]
    fn prefixes_become_escaped_regexes() {
        let m = HeaderRouteMatch {
            header_name: "x".into(),
            header_value: crate::api::HeaderValueMatch {
                prefix: Some("a.b*".into()),
                ..Default::default()
            },
        };
        assert_eq!(header_regex(&m).as_deref(), Some(r"^a\.b\*.*"));
    }
}
