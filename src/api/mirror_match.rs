//! The requests a `setMirrorRoute` step mirrors: header conditions, and (as Argo Rollouts'
//! `setMirrorRoute.match` allows) the request's method and path, in one alternative or several.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::rollout::{HeaderRouteMatch, SetMirrorRoute};

/// Exactly one of `exact`, `prefix`, `regex`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1").message("set exactly one of exact, prefix, regex"))]
pub struct StringMatch {
    /// The value, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub exact: Option<String>,
    /// A prefix of the value. For a path on a Gateway API route, a prefix of whole path elements
    /// (`/api` matches `/api` and `/api/v1`, not `/apiv1`); on Istio, of the string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub prefix: Option<String>,
    /// A regular expression the value matches (the router's dialect: RE2 for Envoy-based ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub regex: Option<String>,
}

/// One alternative of a mirror route: every condition it sets must hold (AND).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.method) || has(self.path) || (has(self.headers) && size(self.headers) > 0)").message("an alternative must set at least one of method, path, headers"))]
pub struct MirrorMatch {
    /// The request's HTTP method, like `GET` (Gateway API routes match methods exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// The request's path, like `{prefix: /api}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Header conditions, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderRouteMatch>,
}

impl MirrorMatch {
    /// No condition at all.
    pub fn is_empty(&self) -> bool {
        self.method.is_none() && self.path.is_none() && self.headers.is_empty()
    }
}

impl SetMirrorRoute {
    /// The alternatives the mirror copies requests of (any one may match); empty: every request
    /// of the routes. `match`, `method` and `path` are one alternative; `anyOf` lists several.
    pub fn alternatives(&self) -> Vec<MirrorMatch> {
        if !self.any_of.is_empty() {
            return self.any_of.clone();
        }
        let one = MirrorMatch {
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.matches.clone(),
        };
        if one.is_empty() {
            Vec::new()
        } else {
            vec![one]
        }
    }

    /// A step with no conditions and no percentage removes the mirror route of its name.
    pub fn removes(&self) -> bool {
        self.alternatives().is_empty() && self.percentage.is_none()
    }

    /// The field under `setMirrorRoute` that alternative `i` of [`Self::alternatives`] was
    /// written in: `anyOf[i]`, or the step itself.
    pub fn alternative_field(&self, i: usize) -> String {
        if self.any_of.is_empty() {
            String::new()
        } else {
            format!(".anyOf[{i}]")
        }
    }
}
