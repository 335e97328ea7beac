use serde_json::{Value, json};

use super::*;
use crate::api::{HeaderValueMatch, IstioVirtualService, SetHeaderRoute, SetMirrorRoute};

fn target() -> Target {
    Target {
        rollout: "web".into(),
        namespace: "shop".into(),
        stable_service: "web-stable".into(),
        canary_service: "web-canary".into(),
        stable_hash: "s1".into(),
        canary_hash: "c1".into(),
        owner: None,
    }
}

fn vs() -> Value {
    json!({"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "5"},
           "spec": {"hosts": ["web"], "gateways": ["mesh"],
                    "http": [
                        {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                         "route": [{"destination": {"host": "admin"}}]},
                        {"name": "primary", "retries": {"attempts": 3},
                         "route": [{"destination": {"host": "web-stable.shop.svc.cluster.local", "port": {"number": 80}}}]}]}})
}

fn router(routes: &[&str], dr: bool) -> VirtualService {
    VirtualService::all(&IstioRouting {
        virtual_service: Some(IstioVirtualService {
            name: "web".into(),
            routes: routes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        destination_rule: dr.then(|| IstioDestinationRule {
            name: "web".into(),
            canary_subset_name: "canary".into(),
            stable_subset_name: "stable".into(),
        }),
        ..Default::default()
    })
    .remove(0)
}

fn objects(v: &Value) -> Objects {
    Objects::from([(
        ObjectKey {
            kind: Kind::VirtualService,
            name: "web".into(),
        },
        Found::Object(v.clone()),
    )])
}

fn applied(writes: Vec<Write>) -> Value {
    let Write::Apply { body, .. } = writes.into_iter().next().unwrap() else {
        panic!()
    };
    body
}

#[test]
fn weighs_the_named_route_by_host_and_keeps_the_rest() {
    let r = router(&["primary"], false);
    let t = target();
    assert!(r.check(&objects(&vs()), &t).is_ok());
    let body = applied(
        r.render(
            &objects(&vs()),
            &t,
            &TrafficState {
                weight: 20,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(body["spec"]["hosts"], json!(["web"]));
    assert_eq!(body["spec"]["http"][0], vs()["spec"]["http"][0]);
    assert_eq!(
        body["spec"]["http"][1]["route"],
        json!([{"destination": {"host": "web-stable.shop.svc.cluster.local", "port": {"number": 80}}, "weight": 80},
               {"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 20}])
    );
    assert_eq!(body["spec"]["http"][1]["retries"], json!({"attempts": 3}));
    assert_eq!(r.verify(&objects(&body), &t).weight, Some(20));
}

#[test]
fn header_and_mirror_routes_are_named_routes_ahead_of_the_weighed_one() {
    let r = router(&["primary"], false);
    let t = target();
    let state = TrafficState {
        weight: 10,
        header_routes: vec![SetHeaderRoute {
            name: "beta".into(),
            matches: vec![crate::api::HeaderRouteMatch {
                header_name: "x-beta".into(),
                header_value: HeaderValueMatch {
                    prefix: Some("yes".into()),
                    ..Default::default()
                },
            }],
        }],
        mirror_routes: vec![SetMirrorRoute {
            name: "shadow".into(),
            percentage: Some(25),
            ..Default::default()
        }],
    };
    let body = applied(r.render(&objects(&vs()), &t, &state).unwrap());
    let http = body["spec"]["http"].as_array().unwrap();
    assert_eq!(http.len(), 4);
    assert_eq!(http[1]["name"], "beta");
    assert_eq!(
        http[1]["match"],
        json!([{"headers": {"x-beta": {"prefix": "yes"}}}])
    );
    assert_eq!(
        http[1]["route"],
        json!([{"destination": {"host": "web-canary", "port": {"number": 80}}}])
    );
    assert_eq!(http[2]["name"], "shadow");
    assert_eq!(
        http[2]["mirror"],
        json!({"host": "web-canary", "port": {"number": 80}})
    );
    assert_eq!(http[2]["mirrorPercentage"], json!({"value": 25}));
    assert!(r.verify(&objects(&body), &t).holds(&state));
    // Cleanup takes them out and gives the stable everything.
    let cleaned = applied(r.remove_all(&objects(&body), &t).unwrap());
    assert_eq!(cleaned["spec"]["http"].as_array().unwrap().len(), 2);
    assert_eq!(r.verify(&objects(&cleaned), &t).weight, Some(0));
    assert!(cleaned["metadata"].get("annotations").is_none());
}

#[test]
fn subsets_with_a_destination_rule() {
    let r = router(&[], true);
    let t = target();
    let mut v = vs();
    v["spec"]["http"] = json!([{"name": "primary", "route": [{"destination": {"host": "web", "subset": "stable"}}]}]);
    let body = applied(
        r.render(
            &objects(&v),
            &t,
            &TrafficState {
                weight: 40,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(
        body["spec"]["http"][0]["route"],
        json!([{"destination": {"host": "web", "subset": "stable"}, "weight": 60},
               {"destination": {"host": "web", "subset": "canary"}, "weight": 40}])
    );
    let dr = DestinationRule::new(&IstioDestinationRule {
        name: "web".into(),
        canary_subset_name: "canary".into(),
        stable_subset_name: "stable".into(),
    });
    let doc = json!({"metadata": {"name": "web"}, "spec": {"host": "web", "subsets": [
        {"name": "stable", "labels": {"app": "web"}}, {"name": "canary", "labels": {"app": "web"}}]}});
    let objs = Objects::from([(
        ObjectKey {
            kind: Kind::DestinationRule,
            name: "web".into(),
        },
        Found::Object(doc),
    )]);
    let body = applied(dr.render(&objs, &t, &TrafficState::default()).unwrap());
    assert_eq!(body["spec"]["host"], "web");
    assert_eq!(
        body["spec"]["subsets"][0]["labels"],
        json!({"app": "web", "rollouts-pod-template-hash": "s1"})
    );
    assert_eq!(
        body["spec"]["subsets"][1]["labels"],
        json!({"app": "web", "rollouts-pod-template-hash": "c1"})
    );
}

#[test]
fn check_names_what_is_missing() {
    let t = target();
    let err = router(&["nope"], false)
        .check(&objects(&vs()), &t)
        .unwrap_err();
    assert_eq!(
        err,
        "strategy.canary.trafficRouting.istio.virtualService.routes: VirtualService \"web\" has no HTTP route named \"nope\""
    );
    let err = router(&[], false).check(&objects(&vs()), &t).unwrap_err();
    assert!(
        err.contains("has 2 HTTP routes; name the ones to weigh"),
        "{err}"
    );
    let err = router(&["admin"], false)
        .check(&objects(&vs()), &t)
        .unwrap_err();
    assert!(
        err.contains("no destination to the stable Service"),
        "{err}"
    );
}

#[test]
fn mirror_matches_by_method_and_path_become_uri_and_method_of_the_mirror_route() {
    let r = router(&["primary"], false);
    let t = target();
    let m = SetMirrorRoute {
        name: "shadow".into(),
        any_of: vec![
            crate::api::MirrorMatch {
                method: Some(crate::api::StringMatch {
                    exact: Some("POST".into()),
                    ..Default::default()
                }),
                path: Some(crate::api::StringMatch {
                    prefix: Some("/orders".into()),
                    ..Default::default()
                }),
                headers: vec![],
            },
            crate::api::MirrorMatch {
                method: Some(crate::api::StringMatch {
                    regex: Some("GET|HEAD".into()),
                    ..Default::default()
                }),
                headers: vec![crate::api::HeaderRouteMatch {
                    header_name: "x-shadow".into(),
                    header_value: HeaderValueMatch {
                        exact: Some("1".into()),
                        ..Default::default()
                    },
                }],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    assert_eq!(r.mirror_unsupported(&m, &objects(&vs()), &t), None);
    let state = TrafficState {
        weight: 0,
        header_routes: vec![],
        mirror_routes: vec![m],
    };
    let body = applied(r.render(&objects(&vs()), &t, &state).unwrap());
    let http = body["spec"]["http"].as_array().unwrap();
    assert_eq!(http[1]["name"], "shadow");
    assert_eq!(
        http[1]["match"],
        json!([{"method": {"exact": "POST"}, "uri": {"prefix": "/orders"}},
               {"method": {"regex": "GET|HEAD"}, "headers": {"x-shadow": {"exact": "1"}}}])
    );
    assert!(r.verify(&objects(&body), &t).holds(&state));
    // Gone after: the VirtualService is the user's again.
    let cleaned = applied(r.remove_all(&objects(&body), &t).unwrap());
    assert_eq!(cleaned["spec"]["http"].as_array().unwrap().len(), 2);
}

#[test]
fn a_mirror_path_the_weighed_route_never_sees_is_refused_not_widened() {
    let r = router(&["primary"], false);
    let t = target();
    let mut v = vs();
    v["spec"]["http"][1]["match"] = json!([{"uri": {"prefix": "/shop"}}]);
    let path = |m: crate::api::StringMatch| SetMirrorRoute {
        name: "shadow".into(),
        path: Some(m),
        ..Default::default()
    };
    let why = r
        .mirror_unsupported(
            &path(crate::api::StringMatch {
                exact: Some("/admin".into()),
                ..Default::default()
            }),
            &objects(&v),
            &t,
        )
        .unwrap_or_default();
    assert!(why.starts_with(": matches none of the requests"), "{why}");
    let why = r
        .mirror_unsupported(
            &path(crate::api::StringMatch {
                regex: Some("/shop/.*".into()),
                ..Default::default()
            }),
            &objects(&v),
            &t,
        )
        .unwrap_or_default();
    assert!(
        why.starts_with(".path: the VirtualService's HTTP route already matches"),
        "{why}"
    );
    // Under the route's prefix: the narrower one.
    let m = path(crate::api::StringMatch {
        prefix: Some("/shop/cart".into()),
        ..Default::default()
    });
    assert_eq!(r.mirror_unsupported(&m, &objects(&v), &t), None);
    let state = TrafficState {
        weight: 0,
        header_routes: vec![],
        mirror_routes: vec![m],
    };
    let body = applied(r.render(&objects(&v), &t, &state).unwrap());
    assert_eq!(
        body["spec"]["http"][1]["match"],
        json!([{"uri": {"prefix": "/shop/cart"}}])
    );
}
