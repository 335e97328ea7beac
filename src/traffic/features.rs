//! What a gateway says it implements: the `status.supportedFeatures` its GatewayClass publishes
//! (Gateway API's experimental channel). A gateway that does not implement a filter may still
//! accept a route carrying it and then fail every request the rule matches (Traefik v3.5 answers
//! 500 to a rule with a `RequestMirror` filter while the route shows `Accepted`), so fledge
//! writes a mirror only where no parent's class says it cannot take one. A class that lists no
//! features says nothing: fledge writes as it always did.

use serde_json::Value;

use crate::api::SetMirrorRoute;

use super::{Kind, ObjectKey};

const GROUP: &str = "gateway.networking.k8s.io";

/// Gateway API's feature names (sigs.k8s.io/gateway-api pkg/features) for mirroring.
pub const HTTP_ROUTE_REQUEST_MIRROR: &str = "HTTPRouteRequestMirror";
pub const HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR: &str = "HTTPRouteRequestPercentageMirror";
/// Gateway API's feature name for an HTTPRoute match on the request's method.
pub const HTTP_ROUTE_METHOD_MATCHING: &str = "HTTPRouteMethodMatching";

/// The class of one parent Gateway of a route fledge edits, as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct ParentClass {
    /// The route whose `parentRefs` name the Gateway.
    pub route: ObjectKey,
    /// The Gateway, `namespace/name`.
    pub gateway: String,
    /// Its `gatewayClassName`.
    pub class: String,
    /// The names in the class's `status.supportedFeatures`; empty when it lists none.
    pub supported: Vec<String>,
}

/// The Gateways (namespace, name) a route's `parentRefs` name; `namespace` is the route's own.
/// Other kinds of parent (a ListenerSet, a mesh's Service) are not Gateways and are left out.
pub fn parent_gateways(route: &Value, namespace: &str) -> Vec<(String, String)> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| text(p, "group").is_none_or(|g| g == GROUP))
        .filter(|p| text(p, "kind").is_none_or(|k| k == "Gateway"))
        .filter_map(|p| {
            let ns = text(p, "namespace").unwrap_or_else(|| namespace.to_string());
            Some((ns, text(p, "name")?))
        })
        .collect()
}

/// The feature names a GatewayClass lists in `status.supportedFeatures`: objects with a `name`
/// since Gateway API v1.2, plain strings before.
pub fn supported_features(class: &Value) -> Vec<String> {
    class
        .pointer("/status/supportedFeatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("name").unwrap_or(f).as_str().map(str::to_string))
        .collect()
}

/// The features a mirror route needs on a route of `kind`. Gateway API (v1.3) names no feature
/// for GRPCRoute's RequestMirror filter; a gateway mirrors gRPC requests with the same machinery
/// as HTTP ones, so a GRPCRoute needs what an HTTPRoute would.
fn mirror_features(_kind: Kind, route: &SetMirrorRoute) -> Vec<&'static str> {
    let mut features = vec![HTTP_ROUTE_REQUEST_MIRROR];
    // The router writes `percent` only below the default (see gateway.rs `mirror_rule`).
    if route
        .percentage
        .is_some_and(|p| p < crate::api::defaults::MIRROR_PERCENTAGE)
    {
        features.push(HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR);
    }
    // Method matching is Gateway API's extended conformance: a gateway that does not implement
    // it may ignore the method and mirror every method's requests.
    if route.alternatives().iter().any(|a| a.method.is_some()) {
        features.push(HTTP_ROUTE_METHOD_MATCHING);
    }
    features
}

/// Why mirror route `route` must not be written: a parent Gateway's class lists its features
/// and a feature the mirror needs is not among them. `None` when every class that says anything
/// implements it.
pub fn mirror_unsupported(parents: &[ParentClass], route: &SetMirrorRoute) -> Option<String> {
    parents
        .iter()
        .filter(|p| !p.supported.is_empty())
        .find_map(|p| {
            let missing = mirror_features(p.route.kind, route)
                .into_iter()
                .find(|f| !p.supported.iter().any(|s| s == f))?;
            Some(format!(
                "GatewayClass {:?} (of Gateway {}, a parent of {}) does not list {missing} in \
                 status.supportedFeatures: a mirror there would fail the requests it matches, so \
                 setMirrorRoute {:?} is not written; promote to go on without it, or abort",
                p.class, p.gateway, p.route, route.name
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(supported: &[&str]) -> ParentClass {
        ParentClass {
            route: ObjectKey {
                kind: Kind::HttpRoute,
                name: "web".into(),
            },
            gateway: "infra/gw".into(),
            class: "traefik".into(),
            supported: supported.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn mirror(percentage: Option<i32>) -> SetMirrorRoute {
        SetMirrorRoute {
            name: "m".into(),
            percentage,
            ..Default::default()
        }
    }

    #[test]
    fn a_class_that_lists_features_without_the_mirror_refuses_it() {
        let why = mirror_unsupported(&[parent(&["HTTPRoute", "GRPCRoute"])], &mirror(None))
            .expect("refused");
        assert!(why.contains("GatewayClass \"traefik\""), "{why}");
        assert!(why.contains(HTTP_ROUTE_REQUEST_MIRROR), "{why}");
    }

    #[test]
    fn a_class_that_lists_nothing_is_unknown_and_written_as_before() {
        assert_eq!(mirror_unsupported(&[parent(&[])], &mirror(Some(10))), None);
        assert_eq!(mirror_unsupported(&[], &mirror(Some(10))), None);
    }

    #[test]
    fn a_percentage_below_100_needs_the_percentage_feature_too() {
        let mirrors = [parent(&[HTTP_ROUTE_REQUEST_MIRROR])];
        assert_eq!(mirror_unsupported(&mirrors, &mirror(Some(100))), None);
        let why = mirror_unsupported(&mirrors, &mirror(Some(10))).expect("refused");
        assert!(why.contains(HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR), "{why}");
        let both = [parent(&[
            HTTP_ROUTE_REQUEST_MIRROR,
            HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR,
        ])];
        assert_eq!(mirror_unsupported(&both, &mirror(Some(10))), None);
    }

    #[test]
    fn parents_and_features_are_read_as_the_api_writes_them() {
        let route = serde_json::json!({"spec": {"parentRefs": [
            {"name": "gw"},
            {"name": "edge", "namespace": "infra", "sectionName": "http"},
            {"group": "", "kind": "Service", "name": "mesh"},
        ]}});
        assert_eq!(
            parent_gateways(&route, "apps"),
            vec![
                ("apps".to_string(), "gw".to_string()),
                ("infra".to_string(), "edge".to_string())
            ]
        );
        let class = serde_json::json!({"status": {"supportedFeatures": [
            {"name": "HTTPRoute"}, "GRPCRoute"]}});
        assert_eq!(supported_features(&class), ["HTTPRoute", "GRPCRoute"]);
        assert!(supported_features(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn any_parent_that_cannot_mirror_refuses_it() {
        let parents = [parent(&[HTTP_ROUTE_REQUEST_MIRROR]), parent(&["HTTPRoute"])];
        assert!(mirror_unsupported(&parents, &mirror(None)).is_some());
    }
}
