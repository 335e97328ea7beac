//! TLS and TCP routes, several VirtualServices, and the subset-level split without Services.

use serde_json::{Value, json};

use super::super::{DestinationRule, VirtualService};
use crate::api::{
    HeaderValueMatch, IstioDestinationRule, IstioRouting, IstioTcpRoute, IstioTlsRoute,
    IstioVirtualService, SetHeaderRoute, TrafficRouting,
};
use crate::traffic::{
    Found, Kind, ObjectKey, Objects, Target, TrafficRouter, TrafficState, Write, routers,
};

/// No Services: the subsets alone separate the revisions.
fn target() -> Target {
    Target {
        rollout: "web".into(),
        namespace: "shop".into(),
        stable_hash: "s1".into(),
        canary_hash: "c1".into(),
        ..Default::default()
    }
}

fn dr_spec() -> IstioDestinationRule {
    IstioDestinationRule {
        name: "web-dr".into(),
        canary_subset_name: "canary".into(),
        stable_subset_name: "stable".into(),
    }
}

fn stable() -> Value {
    json!({"destination": {"host": "web", "subset": "stable", "port": {"number": 443}}})
}

fn router(vs: IstioVirtualService) -> VirtualService {
    VirtualService::all(&IstioRouting {
        virtual_service: Some(vs),
        destination_rule: Some(dr_spec()),
        ..Default::default()
    })
    .remove(0)
}

fn named(name: &str) -> IstioVirtualService {
    IstioVirtualService {
        name: name.into(),
        ..Default::default()
    }
}

fn objects(docs: &[(&str, Value)]) -> Objects {
    docs.iter()
        .map(|(name, doc)| {
            (
                ObjectKey {
                    kind: Kind::VirtualService,
                    name: (*name).into(),
                },
                Found::Object(doc.clone()),
            )
        })
        .collect()
}

fn body(writes: Vec<Write>) -> Value {
    let Some(Write::Apply { body, .. }) = writes.into_iter().next() else {
        panic!("no apply")
    };
    body
}

fn weight(w: i32) -> TrafficState {
    TrafficState {
        weight: w,
        ..Default::default()
    }
}

fn tls_vs() -> Value {
    json!({"metadata": {"name": "web"}, "spec": {"hosts": ["web"], "tls": [
        {"match": [{"port": 443, "sniHosts": ["a.example.com"]}], "route": [stable()]},
        {"match": [{"port": 443, "sniHosts": ["b.example.com"]}, {"port": 443, "sniHosts": ["c.example.com"]}],
         "route": [stable()]},
        {"match": [{"port": 443, "sniHosts": ["b.example.com", "c.example.com"]}, {"port": 8443, "sniHosts": []}],
         "route": [stable()]}]}})
}

#[test]
fn tls_routes_are_chosen_by_their_one_port_and_all_their_sni_hosts() {
    let r = router(IstioVirtualService {
        tls_routes: vec![IstioTlsRoute {
            port: Some(443),
            sni_hosts: vec!["c.example.com".into(), "b.example.com".into()],
        }],
        ..named("web")
    });
    let t = target();
    let objs = objects(&[("web", tls_vs())]);
    r.check(&objs, &t).unwrap();
    let b = body(r.render(&objs, &t, &weight(30)).unwrap());
    let tls = b["spec"]["tls"].as_array().unwrap();
    // Only the route whose matches name port 443 alone and exactly b and c.
    assert_eq!(tls[0], tls_vs()["spec"]["tls"][0]);
    assert_eq!(tls[2], tls_vs()["spec"]["tls"][2]);
    assert_eq!(
        tls[1]["route"],
        json!([{"destination": {"host": "web", "subset": "stable", "port": {"number": 443}}, "weight": 70},
               {"destination": {"host": "web", "subset": "canary", "port": {"number": 443}}, "weight": 30}])
    );
    assert_eq!(tls[1]["match"], tls_vs()["spec"]["tls"][1]["match"]);
    // A VirtualService without HTTP routes gets none.
    assert!(b["spec"].get("http").is_none(), "{b}");
    assert_eq!(
        r.verify(&objects(&[("web", b.clone())]), &t).weight,
        Some(30)
    );
    let back = body(r.remove_all(&objects(&[("web", b)]), &t).unwrap());
    assert_eq!(back["spec"]["tls"][1]["route"][0]["weight"], 100);
    assert_eq!(back["spec"]["tls"][1]["route"][1]["weight"], 0);
}

#[test]
fn tcp_routes_are_chosen_by_port_and_a_match_without_one_is_port_0() {
    let doc = json!({"metadata": {"name": "db"}, "spec": {"tcp": [
        {"match": [{"port": 5432}], "route": [stable()]},
        {"match": [{"port": 6379}], "route": [stable()]},
        {"route": [stable()]}]}});
    let objs = objects(&[("db", doc)]);
    let t = target();
    let r = router(IstioVirtualService {
        tcp_routes: vec![
            IstioTcpRoute { port: Some(6379) },
            IstioTcpRoute { port: None },
        ],
        ..named("db")
    });
    r.check(&objs, &t).unwrap();
    let b = body(r.render(&objs, &t, &weight(10)).unwrap());
    let tcp = b["spec"]["tcp"].as_array().unwrap();
    assert_eq!(tcp[0]["route"], json!([stable()]));
    for i in [1, 2] {
        assert_eq!(tcp[i]["route"][0]["weight"], 90, "{i}");
        assert_eq!(tcp[i]["route"][1]["destination"]["subset"], "canary");
        assert_eq!(tcp[i]["route"][1]["weight"], 10);
    }
}

#[test]
fn without_selectors_the_only_tls_route_is_weighed_and_two_must_be_selected() {
    let t = target();
    let mut doc = tls_vs();
    doc["spec"]["tls"].as_array_mut().unwrap().truncate(1);
    doc["spec"]["http"] = json!([{"name": "primary", "route": [stable()]}]);
    let objs = objects(&[("web", doc)]);
    // As Argo Rollouts: naming HTTP routes leaves the only TLS route weighed too.
    let r = router(IstioVirtualService {
        routes: vec!["primary".into()],
        ..named("web")
    });
    r.check(&objs, &t).unwrap();
    let b = body(r.render(&objs, &t, &weight(50)).unwrap());
    assert_eq!(b["spec"]["tls"][0]["route"][1]["weight"], 50);
    assert_eq!(b["spec"]["http"][0]["route"][1]["weight"], 50);

    let err = router(named("web"))
        .check(&objects(&[("web", tls_vs())]), &t)
        .unwrap_err();
    assert_eq!(
        err,
        "strategy.canary.trafficRouting.istio.virtualService.tlsRoutes: VirtualService \"web\" has 3 TLS routes; select the ones to weigh"
    );
}

#[test]
fn a_selector_that_matches_nothing_or_a_route_without_the_stable_subset_is_named() {
    let t = target();
    let objs = objects(&[("web", tls_vs())]);
    let err = router(IstioVirtualService {
        tls_routes: vec![IstioTlsRoute {
            port: Some(443),
            sni_hosts: vec!["b.example.com".into()],
        }],
        ..named("web")
    })
    .check(&objs, &t)
    .unwrap_err();
    assert_eq!(
        err,
        "strategy.canary.trafficRouting.istio.virtualService.tlsRoutes[0]: VirtualService \"web\" has no TLS route matching port 443 and sniHosts {\"b.example.com\"} alone"
    );
    let doc = json!({"spec": {"tcp": [{"match": [{"port": 1}], "route": [{"destination": {"host": "other"}}]}]}});
    let err = router(named("web"))
        .check(&objects(&[("web", doc)]), &t)
        .unwrap_err();
    assert_eq!(
        err,
        "strategy.canary.trafficRouting.istio.virtualService.tcpRoutes: TCP route 0 of VirtualService \"web\" has no destination to the stable subset"
    );
}

#[test]
fn header_routes_go_only_to_virtual_services_with_an_http_route() {
    let t = target();
    let state = TrafficState {
        weight: 20,
        header_routes: vec![SetHeaderRoute {
            name: "beta".into(),
            matches: vec![crate::api::HeaderRouteMatch {
                header_name: "x-beta".into(),
                header_value: HeaderValueMatch {
                    exact: Some("1".into()),
                    ..Default::default()
                },
            }],
        }],
        ..Default::default()
    };
    let tcp = json!({"spec": {"tcp": [{"match": [{"port": 5432}], "route": [stable()]}]}});
    let r = router(named("db"));
    let b = body(r.render(&objects(&[("db", tcp)]), &t, &state).unwrap());
    assert!(b["spec"].get("http").is_none(), "{b}");
    assert!(b["metadata"].get("annotations").is_none(), "{b}");
    assert_eq!(b["spec"]["tcp"][0]["route"][1]["weight"], 20);
}

#[test]
fn only_a_virtual_service_with_an_http_route_takes_header_and_mirror_routes() {
    let t = target();
    let tcp = json!({"spec": {"tcp": [{"match": [{"port": 5432}], "route": [stable()]}]}});
    let http = json!({"spec": {"http": [{"route": [stable()]}]}});
    let r = router(named("db"));
    assert!(!r.takes_http_routes(&objects(&[("db", tcp)]), &t));
    assert!(r.takes_http_routes(&objects(&[("db", http)]), &t));
}

#[test]
fn several_virtual_services_are_each_weighed_after_the_destination_rule() {
    let routing = TrafficRouting {
        istio: Some(IstioRouting {
            virtual_services: vec![
                IstioVirtualService {
                    tls_routes: vec![IstioTlsRoute {
                        port: Some(443),
                        sni_hosts: vec!["a.example.com".into()],
                    }],
                    ..named("web")
                },
                named("db"),
            ],
            destination_rule: Some(dr_spec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rs = routers(&routing, "web");
    let fields: Vec<String> = rs.iter().map(|r| r.field()).collect();
    assert_eq!(
        fields,
        [
            "strategy.canary.trafficRouting.istio.destinationRule",
            "strategy.canary.trafficRouting.istio.virtualServices[0]",
            "strategy.canary.trafficRouting.istio.virtualServices[1]",
        ]
    );
    let t = target();
    let tcp = json!({"spec": {"tcp": [{"match": [{"port": 5432}], "route": [stable()]}]}});
    let objs = objects(&[("web", tls_vs()), ("db", tcp)]);
    for r in &rs[1..] {
        r.check(&objs, &t).unwrap();
        let b = body(r.render(&objs, &t, &weight(40)).unwrap());
        assert_eq!(
            r.verify(&objects(&[(r.reads()[0].name.as_str(), b)]), &t)
                .weight,
            Some(40),
            "{}",
            r.field()
        );
    }
}

#[test]
fn the_destination_rule_tells_which_revision_its_canary_subset_serves() {
    let dr = DestinationRule::new(&dr_spec());
    let key = ObjectKey {
        kind: Kind::DestinationRule,
        name: "web-dr".into(),
    };
    let doc = |labels: Value| {
        Objects::from([(
            key.clone(),
            Found::Object(json!({"spec": {"host": "web", "subsets": [
                {"name": "stable", "labels": {"rollouts-pod-template-hash": "s1"}},
                {"name": "canary", "labels": labels}]}})),
        )])
    };
    assert_eq!(
        dr.canary_revision(&doc(json!({"rollouts-pod-template-hash": "c0"})))
            .as_deref(),
        Some("c0")
    );
    assert_eq!(dr.canary_revision(&doc(json!({"app": "web"}))), None);
    assert_eq!(dr.canary_revision(&Objects::new()), None);
    // Pinned to the revisions the target names, nothing else of the object changed.
    let objs = doc(json!({"app": "web"}));
    let b = body(dr.render(&objs, &target(), &weight(0)).unwrap());
    assert_eq!(
        b["spec"]["subsets"][1]["labels"],
        json!({"app": "web", "rollouts-pod-template-hash": "c1"})
    );
    assert_eq!(b["spec"]["host"], "web");
}
