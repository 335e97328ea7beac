use super::*;

fn prefix(p: &str) -> Cond {
    Cond::Prefix(p.into())
}

fn exact(p: &str) -> Cond {
    Cond::Exact(p.into())
}

#[test]
fn a_path_meets_the_rules_own_path_by_elements_on_gateway_api_and_by_characters_on_istio() {
    // The rule matches everything: the mirror's condition alone.
    assert_eq!(
        meet(None, &prefix("/api"), true),
        Meet::Both(prefix("/api"))
    );
    assert_eq!(
        meet(Some(&prefix("/")), &exact("/a"), true),
        Meet::Both(exact("/a"))
    );
    // The narrower of two nested prefixes.
    assert_eq!(
        meet(Some(&prefix("/api")), &prefix("/api/v1"), true),
        Meet::Both(prefix("/api/v1"))
    );
    assert_eq!(
        meet(Some(&prefix("/api/v1")), &prefix("/api"), true),
        Meet::Both(prefix("/api/v1"))
    );
    // Gateway API's PathPrefix is by elements: /api does not cover /apiv1; Istio's does.
    assert_eq!(
        meet(Some(&prefix("/api")), &prefix("/apiv1"), true),
        Meet::Never
    );
    assert_eq!(
        meet(Some(&prefix("/api")), &prefix("/apiv1"), false),
        Meet::Both(prefix("/apiv1"))
    );
    // An exact path under the rule's prefix, or outside it.
    assert_eq!(
        meet(Some(&prefix("/api")), &exact("/api/x"), true),
        Meet::Both(exact("/api/x"))
    );
    assert_eq!(
        meet(Some(&exact("/web")), &prefix("/api"), true),
        Meet::Never
    );
    assert_eq!(meet(Some(&exact("/a")), &exact("/b"), true), Meet::Never);
    // A regular expression meets only itself or everything.
    let re = Cond::Regex("^/v[0-9]+/".into());
    assert_eq!(meet(Some(&re), &re, true), Meet::Both(re.clone()));
    assert_eq!(meet(None, &re, true), Meet::Both(re.clone()));
    assert_eq!(meet(Some(&prefix("/api")), &re, true), Meet::Unknown);
    assert_eq!(meet(Some(&re), &prefix("/api"), false), Meet::Unknown);
}
