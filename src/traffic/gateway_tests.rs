use serde_json::{Value, json};

use super::*;
use crate::api::{HeaderValueMatch, SetHeaderRoute, SetMirrorRoute};

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

/// A route as a user writes it: two weighed rules with filters and a foreign backend, a rule
/// fledge has no business with, hostnames, parents, and another controller's status.
fn user_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "12", "generation": 3,
                     "annotations": {"team": "shop"}},
        "spec": {
            "parentRefs": [{"name": "eg", "sectionName": "https"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                 "backendRefs": [{"name": "cdn", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET"}],
                 "filters": [{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"add": [{"name": "x-team", "value": "shop"}]}}],
                 "backendRefs": [{"name": "web-stable", "port": 8080, "weight": 90},
                                 {"name": "legacy", "port": 8080, "weight": 10}]},
                {"backendRefs": [{"name": "web-stable", "port": 8080}],
                 "timeouts": {"request": "10s"}}
            ]
        },
        "status": {"parents": [{"parentRef": {"name": "eg"}, "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                                "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 3, "reason": "Accepted", "message": ""}]}]}
    })
}

fn objects(route: &Value) -> Objects {
    Objects::from([(key(), Found::Object(route.clone()))])
}

fn key() -> ObjectKey {
    ObjectKey {
        kind: Kind::HttpRoute,
        name: "web".into(),
    }
}

fn router() -> GatewayRoute {
    GatewayRoute::new(Kind::HttpRoute, "web", 0)
}

/// What the API server makes of a server-side apply by fledge: fledge's fields replace its own,
/// the rest stays.
fn apply(current: &Value, writes: Vec<Write>) -> Value {
    let mut out = current.clone();
    for w in writes {
        let Write::Apply { body, .. } = w else {
            panic!("unexpected {w:?}")
        };
        out["spec"]["rules"] = body["spec"]["rules"].clone();
        let ann = managed_annotation("web");
        let annotations = out["metadata"]["annotations"].as_object_mut().unwrap();
        match body
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(&ann))
        {
            Some(v) => annotations.insert(ann, v.clone()),
            None => annotations.remove(&ann),
        };
    }
    out
}

fn state(weight: i32) -> TrafficState {
    TrafficState {
        weight,
        ..Default::default()
    }
}

fn exact(name: &str, value: &str) -> crate::api::HeaderRouteMatch {
    crate::api::HeaderRouteMatch {
        header_name: name.into(),
        header_value: HeaderValueMatch {
            exact: Some(value.into()),
            ..Default::default()
        },
    }
}

/// Everything in the route but the stable/canary weights and the rules fledge added.
fn users_part(route: &Value) -> Value {
    let mut r = route.clone();
    let record = r["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(&managed_annotation("web"));
    let added: Vec<Value> = record
        .and_then(|v| serde_json::from_str::<Record>(v.as_str().unwrap()).ok())
        .map(|rec| rec.added_rules().cloned().collect())
        .unwrap_or_default();
    let rules = r["spec"]["rules"].as_array_mut().unwrap();
    rules.retain(|x| !added.contains(x));
    for rule in rules {
        if let Some(refs) = rule["backendRefs"].as_array_mut() {
            refs.retain(|b| b["name"] != "web-canary");
            for b in refs.iter_mut().filter(|b| b["name"] == "web-stable") {
                b.as_object_mut().unwrap().remove("weight");
            }
        }
    }
    r
}

#[test]
fn weights_follow_every_step_and_the_rest_survives_unchanged() {
    let t = target();
    let original = user_route();
    let mut route = original.clone();
    for w in [0, 10, 25, 50, 100, 0] {
        let writes = router().render(&objects(&route), &t, &state(w)).unwrap();
        route = apply(&route, writes);
        let back = router().verify(&objects(&route), &t);
        assert!(back.holds(&state(w)), "weight {w}: read back {back:?}");
        assert_eq!(users_part(&route), users_part(&original), "weight {w}");
        // The foreign rule and the foreign backend keep their exact bytes.
        assert_eq!(route["spec"]["rules"][0], original["spec"]["rules"][0]);
        assert_eq!(
            route["spec"]["rules"][1]["backendRefs"][1],
            json!({"name": "legacy", "port": 8080, "weight": 10})
        );
        assert_eq!(
            route["spec"]["rules"][1]["filters"],
            original["spec"]["rules"][1]["filters"]
        );
    }
    // The canary's backendRef was added with the stable one's port.
    assert_eq!(
        route["spec"]["rules"][2]["backendRefs"],
        json!([{"name": "web-stable", "port": 8080, "weight": 100},
               {"name": "web-canary", "port": 8080, "weight": 0}])
    );
}

#[test]
fn the_body_holds_only_rules_and_the_record() {
    let t = target();
    let writes = router()
        .render(&objects(&user_route()), &t, &state(30))
        .unwrap();
    let Write::Apply { body, .. } = &writes[0] else {
        panic!()
    };
    assert_eq!(body["metadata"]["resourceVersion"], "12");
    assert!(body["spec"].get("hostnames").is_none());
    assert!(body["spec"].get("parentRefs").is_none());
    assert!(body.get("status").is_none());
    assert_eq!(
        body["metadata"]["annotations"].as_object().unwrap().len(),
        1
    );
}

#[test]
fn a_second_render_of_the_same_state_changes_nothing() {
    let t = target();
    let s = TrafficState {
        weight: 20,
        header_routes: vec![SetHeaderRoute {
            name: "beta".into(),
            matches: vec![exact("x-beta", "1")],
        }],
        mirror_routes: vec![],
    };
    let route = apply(
        &user_route(),
        router().render(&objects(&user_route()), &t, &s).unwrap(),
    );
    let again = router().render(&objects(&route), &t, &s).unwrap();
    let Write::Apply { body, .. } = &again[0] else {
        panic!()
    };
    assert!(!super::super::changes(body, Some(&route)));
}

#[test]
fn header_routes_go_ahead_of_the_weighed_rules_and_send_to_the_canary_only() {
    let t = target();
    let s = TrafficState {
        weight: 10,
        header_routes: vec![SetHeaderRoute {
            name: "beta".into(),
            matches: vec![
                exact("x-beta", "1"),
                crate::api::HeaderRouteMatch {
                    header_name: "x-user".into(),
                    header_value: HeaderValueMatch {
                        prefix: Some("qa-".into()),
                        ..Default::default()
                    },
                },
            ],
        }],
        mirror_routes: vec![],
    };
    let route = apply(
        &user_route(),
        router().render(&objects(&user_route()), &t, &s).unwrap(),
    );
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0], user_route()["spec"]["rules"][0]);
    // One header rule per weighed rule, each keeping that rule's matches and non-mirror filters.
    assert_eq!(
        rules[1]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET",
                "headers": [{"type": "Exact", "name": "x-beta", "value": "1"},
                            {"type": "RegularExpression", "name": "x-user", "value": "^qa-.*"}]}])
    );
    assert_eq!(
        rules[1]["filters"],
        user_route()["spec"]["rules"][1]["filters"]
    );
    assert_eq!(
        rules[1]["backendRefs"],
        json!([{"name": "web-canary", "port": 8080}])
    );
    assert_eq!(
        rules[2]["matches"],
        json!([{"headers": [{"type": "Exact", "name": "x-beta", "value": "1"},
                            {"type": "RegularExpression", "name": "x-user", "value": "^qa-.*"}]}])
    );
    assert_eq!(rules[2]["timeouts"], json!({"request": "10s"}));
    let back = router().verify(&objects(&route), &t);
    assert_eq!(back.header_routes, vec!["beta".to_string()]);
    assert!(back.holds(&s));

    // Removing it gives back the user's rules exactly.
    let cleared = apply(
        &route,
        router().render(&objects(&route), &t, &state(10)).unwrap(),
    );
    assert_eq!(users_part(&cleared), users_part(&user_route()));
    assert_eq!(cleared["spec"]["rules"].as_array().unwrap().len(), 3);
}

#[test]
fn mirror_routes_copy_the_rule_and_add_a_request_mirror() {
    let t = target();
    let s = TrafficState {
        weight: 0,
        header_routes: vec![],
        mirror_routes: vec![SetMirrorRoute {
            name: "shadow".into(),
            percentage: Some(20),
            ..Default::default()
        }],
    };
    let route = apply(
        &user_route(),
        router().render(&objects(&user_route()), &t, &s).unwrap(),
    );
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 5);
    let mirror = &rules[2];
    assert_eq!(mirror["backendRefs"], rules[4]["backendRefs"]);
    assert_eq!(
        mirror["filters"],
        json!([{"type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "web-canary", "port": 8080}, "percent": 20}}])
    );
    assert!(router().verify(&objects(&route), &t).holds(&s));
    // A weight change re-renders the mirror rule with the new weights.
    let s2 = TrafficState {
        weight: 40,
        ..s.clone()
    };
    let route2 = apply(&route, router().render(&objects(&route), &t, &s2).unwrap());
    assert!(router().verify(&objects(&route2), &t).holds(&s2));
    assert_eq!(route2["spec"]["rules"].as_array().unwrap().len(), 5);
}

#[test]
fn remove_all_gives_the_stable_everything_and_takes_out_the_added_canary_refs() {
    let t = target();
    let s = TrafficState {
        weight: 50,
        header_routes: vec![SetHeaderRoute {
            name: "beta".into(),
            matches: vec![exact("x-beta", "1")],
        }],
        mirror_routes: vec![],
    };
    let route = apply(
        &user_route(),
        router().render(&objects(&user_route()), &t, &s).unwrap(),
    );
    let cleaned = apply(&route, router().remove_all(&objects(&route), &t).unwrap());
    let mut want = user_route();
    want["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(100);
    want["spec"]["rules"][2]["backendRefs"][0]["weight"] = json!(100);
    assert_eq!(cleaned, want);
}

#[test]
fn a_canary_ref_the_user_wrote_stays_at_weight_zero() {
    let t = target();
    let mut route = user_route();
    route["spec"]["rules"][2]["backendRefs"] = json!([{"name": "web-stable", "port": 8080, "weight": 100}, {"name": "web-canary", "port": 8080, "weight": 0}]);
    let moved = apply(
        &route,
        router().render(&objects(&route), &t, &state(30)).unwrap(),
    );
    let cleaned = apply(&moved, router().remove_all(&objects(&moved), &t).unwrap());
    assert_eq!(
        cleaned["spec"]["rules"][2]["backendRefs"],
        json!([{"name": "web-stable", "port": 8080, "weight": 100}, {"name": "web-canary", "port": 8080, "weight": 0}])
    );
}

#[test]
fn check_needs_the_route_and_a_stable_backend() {
    let t = target();
    assert!(router().check(&objects(&user_route()), &t).is_ok());
    let err = router().check(&Objects::new(), &t).unwrap_err();
    assert_eq!(
        err,
        "strategy.canary.trafficRouting.gatewayAPI.httpRoutes[0]: HTTPRoute \"web\" not found in namespace \"shop\""
    );
    let mut route = user_route();
    route["spec"]["rules"] = json!([{"backendRefs": [{"name": "other", "port": 80}]}]);
    let err = router().check(&objects(&route), &t).unwrap_err();
    assert!(
        err.contains("no rule with a backendRef to stableService \"web-stable\""),
        "{err}"
    );
    let no_api = Objects::from([(key(), Found::NoApi("the API is not served".into()))]);
    assert!(
        router()
            .check(&no_api, &t)
            .unwrap_err()
            .contains("not served")
    );
}

#[test]
fn rejected_quotes_the_gateway_and_ignores_stale_conditions() {
    let mut route = user_route();
    assert_eq!(router().rejected(&objects(&route)), None);
    route["status"]["parents"][0]["conditions"] = json!([
        {"type": "Accepted", "status": "True", "observedGeneration": 3},
        {"type": "ResolvedRefs", "status": "False", "observedGeneration": 3,
         "reason": "BackendNotFound", "message": "service shop/web-canary not found"}
    ]);
    assert_eq!(
        router().rejected(&objects(&route)).unwrap(),
        "HTTPRoute \"web\" on parent \"eg\": ResolvedRefs=False (BackendNotFound): service shop/web-canary not found"
    );
    route["metadata"]["generation"] = json!(4);
    assert_eq!(router().rejected(&objects(&route)), None);
    assert!(!router().unreported(&objects(&route)));
    route.as_object_mut().unwrap().remove("status");
    assert!(router().unreported(&objects(&route)));
}

#[test]
fn a_gateway_lags_while_it_reports_an_older_generation() {
    let mut route = user_route();
    assert!(!router().lagging(&objects(&route)), "generation 3 read");
    let status = route.as_object_mut().unwrap().remove("status").unwrap();
    route["metadata"]["generation"] = json!(4);
    assert!(
        !router().lagging(&objects(&route)),
        "no report: not known to lag"
    );
    route["status"] = status;
    assert!(
        router().lagging(&objects(&route)),
        "generation 3 read, 4 in place"
    );
}

#[test]
fn grpc_routes_are_weighed_the_same_way() {
    let t = target();
    let grpc = GatewayRoute::new(Kind::GrpcRoute, "api", 0);
    let route = json!({
        "metadata": {"name": "api", "namespace": "shop", "annotations": {}},
        "spec": {"rules": [{"matches": [{"method": {"service": "shop.Cart"}}],
                            "backendRefs": [{"name": "web-stable", "port": 9090}]}]}
    });
    let objs = Objects::from([(
        ObjectKey {
            kind: Kind::GrpcRoute,
            name: "api".into(),
        },
        Found::Object(route.clone()),
    )]);
    let writes = grpc.render(&objs, &t, &state(25)).unwrap();
    let Write::Apply { body, key } = &writes[0] else {
        panic!()
    };
    assert_eq!(key.kind, Kind::GrpcRoute);
    assert_eq!(body["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        body["spec"]["rules"][0]["backendRefs"],
        json!([{"name": "web-stable", "port": 9090, "weight": 75}, {"name": "web-canary", "port": 9090, "weight": 25}])
    );
    assert_eq!(
        grpc.field(),
        "strategy.canary.trafficRouting.gatewayAPI.grpcRoutes[0]"
    );
}

#[test]
fn remove_all_is_idempotent_and_never_adds_the_canary() {
    let t = target();
    let moved = apply(
        &user_route(),
        router()
            .render(&objects(&user_route()), &t, &state(30))
            .unwrap(),
    );
    let cleaned = apply(&moved, router().remove_all(&objects(&moved), &t).unwrap());
    let again = apply(
        &cleaned,
        router().remove_all(&objects(&cleaned), &t).unwrap(),
    );
    assert_eq!(again, cleaned);
    assert!(
        moved.to_string().contains("web-canary"),
        "the canary was routed before the removal"
    );
    assert!(
        !cleaned.to_string().contains("web-canary"),
        "no canary backendRef is left: {cleaned:#}"
    );
}

fn method_and_path(method: &str, path: &str) -> crate::api::MirrorMatch {
    crate::api::MirrorMatch {
        method: Some(crate::api::StringMatch {
            exact: Some(method.into()),
            ..Default::default()
        }),
        path: Some(crate::api::StringMatch {
            prefix: Some(path.into()),
            ..Default::default()
        }),
        headers: vec![],
    }
}

#[test]
fn mirror_matches_by_method_and_path_narrow_the_rules_own_matches() {
    let t = target();
    // One alternative: POST under /api/orders with a header; the weighed rules match GET /api
    // and everything.
    let one = SetMirrorRoute {
        name: "shadow".into(),
        method: Some(crate::api::StringMatch {
            exact: Some("POST".into()),
            ..Default::default()
        }),
        path: Some(crate::api::StringMatch {
            prefix: Some("/api/orders".into()),
            ..Default::default()
        }),
        matches: vec![exact("x-shadow", "1")],
        ..Default::default()
    };
    let s = TrafficState {
        weight: 0,
        header_routes: vec![],
        mirror_routes: vec![one.clone()],
    };
    assert_eq!(
        router().mirror_unsupported(&one, &objects(&user_route()), &t),
        None
    );
    let route = apply(
        &user_route(),
        router().render(&objects(&user_route()), &t, &s).unwrap(),
    );
    let rules = route["spec"]["rules"].as_array().unwrap();
    // The rule for GET /api meets POST in no request: only the catch-all rule gets a mirror.
    assert_eq!(rules.len(), 4, "{route}");
    assert_eq!(
        rules[1]["matches"],
        json!([{"method": "POST", "path": {"type": "PathPrefix", "value": "/api/orders"},
                "headers": [{"type": "Exact", "name": "x-shadow", "value": "1"}]}])
    );
    assert_eq!(rules[1]["filters"][0]["type"], "RequestMirror");
    assert!(router().verify(&objects(&route), &t).holds(&s));
    // Several alternatives (OR): each of a rule's matches with each alternative.
    let any = SetMirrorRoute {
        name: "shadow".into(),
        any_of: vec![
            method_and_path("GET", "/api/v1"),
            method_and_path("PUT", "/"),
        ],
        ..Default::default()
    };
    let s = TrafficState {
        mirror_routes: vec![any],
        ..s
    };
    let route = apply(&route, router().render(&objects(&route), &t, &s).unwrap());
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 5, "{route}");
    assert_eq!(
        rules[1]["matches"],
        json!([{"method": "GET", "path": {"type": "PathPrefix", "value": "/api/v1"}}])
    );
    assert_eq!(
        rules[2]["matches"],
        json!([{"method": "GET", "path": {"type": "PathPrefix", "value": "/api/v1"}},
               {"method": "PUT", "path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert!(router().verify(&objects(&route), &t).holds(&s));
    // Taken out again, the route is the user's.
    let cleared = apply(
        &route,
        router().render(&objects(&route), &t, &state(0)).unwrap(),
    );
    assert_eq!(users_part(&cleared), users_part(&user_route()));
    assert_eq!(cleared["spec"]["rules"].as_array().unwrap().len(), 3);
}

#[test]
fn mirror_conditions_a_route_cannot_express_are_refused_naming_the_field() {
    let t = target();
    let refused = |m: SetMirrorRoute, kind: Kind| {
        let mut route = user_route();
        route["kind"] = json!(kind.name());
        let objects = Objects::from([(
            ObjectKey {
                kind,
                name: "web".into(),
            },
            Found::Object(route),
        )]);
        GatewayRoute::new(kind, "web", 0)
            .mirror_unsupported(&m, &objects, &t)
            .unwrap_or_default()
    };
    let with = |method: Option<crate::api::StringMatch>, path: Option<crate::api::StringMatch>| {
        SetMirrorRoute {
            name: "m".into(),
            method,
            path,
            ..Default::default()
        }
    };
    let regex = |r: &str| crate::api::StringMatch {
        regex: Some(r.into()),
        ..Default::default()
    };
    let prefix = |p: &str| crate::api::StringMatch {
        prefix: Some(p.into()),
        ..Default::default()
    };
    let why = refused(with(Some(regex("^P")), None), Kind::HttpRoute);
    assert!(why.starts_with(".method.regex: "), "{why}");
    let why = refused(with(Some(prefix("G")), None), Kind::HttpRoute);
    assert!(why.starts_with(".method.prefix: "), "{why}");
    let why = refused(with(None, Some(prefix("api"))), Kind::HttpRoute);
    assert!(why.starts_with(".path.prefix: "), "{why}");
    // A GRPCRoute has neither an HTTP method nor a path.
    let why = refused(with(None, Some(prefix("/api"))), Kind::GrpcRoute);
    assert!(why.starts_with(".path: a GRPCRoute"), "{why}");
    // A regular expression against the rule's own /api prefix: fledge cannot tell the meet.
    let why = refused(with(None, Some(regex("^/v[0-9]"))), Kind::HttpRoute);
    assert!(
        why.starts_with(".path: the route's rule already matches prefix \"/api\""),
        "{why}"
    );
    // A path none of the weighed rules' requests has.
    let exact = crate::api::StringMatch {
        exact: Some("/nowhere".into()),
        ..Default::default()
    };
    let mut route = user_route();
    route["spec"]["rules"][2]["matches"] =
        json!([{"path": {"type": "PathPrefix", "value": "/web"}}]);
    let why = router()
        .mirror_unsupported(&with(None, Some(exact)), &objects(&route), &t)
        .unwrap_or_default();
    assert!(why.starts_with(": matches none of the requests"), "{why}");
    // In an alternative of anyOf, the field names it.
    let any = SetMirrorRoute {
        name: "m".into(),
        any_of: vec![method_and_path("GET", "/"), method_and_path("FETCH", "/")],
        ..Default::default()
    };
    let why = refused(any, Kind::HttpRoute);
    assert!(why.starts_with(".anyOf[1].method.exact: "), "{why}");
}
