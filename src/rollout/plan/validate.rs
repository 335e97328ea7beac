//! Validation and routing: what admission could not check (the template source, the Services,
//! the spec checks, the analysis templates), and the traffic routers checked against the objects
//! they edit.

use kube::{Resource, ResourceExt};

use super::Action;
use super::draft::Routing;
use crate::api::{Rollout, RolloutSpec, RolloutStatus, TrafficRouting};
use crate::rollout::observe::{Observed, referenced_services};
use crate::traffic::{self, Found, Target, Write};

/// Checks what admission could not: the template source and the Services exist. Returns the
/// template to run.
pub(super) fn validate<'a>(
    rollout: &Rollout,
    observed: &'a Observed,
) -> Result<&'a k8s_openapi::api::core::v1::PodTemplateSpec, String> {
    let template = observed.template.as_ref().map_err(Clone::clone)?;
    let ns = rollout.metadata.namespace.as_deref().unwrap_or_default();
    for (field, name) in referenced_services(rollout) {
        if !observed.services.contains_key(&name) {
            return Err(format!(
                "{field}: Service {name:?} not found in namespace {ns:?}"
            ));
        }
    }
    if let Some(problem) = crate::rollout::spec_checks::problems(&rollout.spec)
        .into_iter()
        .next()
    {
        return Err(problem.to_string());
    }
    crate::rollout::gates::validate(rollout, &observed.analysis)?;
    Ok(template)
}

/// The routers of a canary with `trafficRouting`, checked against the objects they edit.
pub(super) fn routing(
    rollout: &Rollout,
    observed: &Observed,
    old: &RolloutStatus,
    hash: &str,
) -> Result<Option<Routing>, String> {
    let Some(canary) = &rollout.spec.strategy.canary else {
        return Ok(None);
    };
    let Some(spec) = &canary.traffic_routing else {
        return Ok(None);
    };
    let routers = traffic::routers(spec, &rollout.name_any());
    let target = target(
        rollout,
        old.stable_revision.as_deref().unwrap_or(hash),
        hash,
    );
    for router in &routers {
        router.check(&observed.traffic, &target)?;
    }
    for (i, step) in canary.steps.iter().enumerate() {
        let routes = [
            (
                false,
                "setHeaderRoute",
                step.set_header_route.as_ref().map(|h| h.matches.len()),
            ),
            (
                true,
                "setMirrorRoute",
                step.set_mirror_route.as_ref().map(|m| m.matches.len()),
            ),
        ];
        for (mirror, field, count) in routes {
            let Some(count) = count else { continue };
            if let Some(why) = routers.iter().find_map(|r| r.unsupported(mirror, count)) {
                return Err(format!("strategy.canary.steps[{i}].{field}: {why}"));
            }
            // Else the step would wait for ever for a route no object can hold.
            if !routers
                .iter()
                .filter(|r| r.carries_weight())
                .any(|r| r.takes_http_routes(&observed.traffic, &target))
            {
                return Err(format!(
                    "strategy.canary.steps[{i}].{field}: no routing object has an HTTP route to                      add it beside (the VirtualServices have TLS or TCP routes only)"
                ));
            }
        }
        if let Some(m) = &step.set_mirror_route
            && let Some(why) = routers
                .iter()
                .find_map(|r| r.mirror_unsupported(m, &observed.traffic, &target))
        {
            return Err(format!("strategy.canary.steps[{i}].setMirrorRoute{why}"));
        }
    }
    let rejected = routers.iter().find_map(|r| r.rejected(&observed.traffic));
    Ok(Some(Routing {
        routers,
        target,
        rejected,
    }))
}

/// What the routers need to know of `rollout`, with the revisions it moves between.
pub fn target(rollout: &Rollout, stable_hash: &str, canary_hash: &str) -> Target {
    let canary = rollout.spec.strategy.canary.as_ref();
    Target {
        rollout: rollout.name_any(),
        namespace: rollout.namespace().unwrap_or_default(),
        stable_service: canary
            .and_then(|c| c.stable_service.clone())
            .unwrap_or_default(),
        canary_service: canary
            .and_then(|c| c.canary_service.clone())
            .unwrap_or_default(),
        stable_hash: stable_hash.to_string(),
        canary_hash: canary_hash.to_string(),
        owner: rollout.controller_owner_ref(&()),
    }
}

/// The actions for router writes that would change something.
pub(super) fn pending_writes(objects: &traffic::Objects, writes: Vec<Write>) -> Vec<Action> {
    writes
        .into_iter()
        .filter_map(|w| match w {
            Write::Apply { key, body } => {
                let current = match objects.get(&key) {
                    Some(Found::Object(v)) => Some(v),
                    _ => None,
                };
                traffic::changes(&body, current).then_some(Action::ApplyRoute { key, body })
            }
            Write::Delete { key } => matches!(objects.get(&key), Some(Found::Object(_)))
                .then_some(Action::DeleteRoute { key }),
        })
        .collect()
}

pub(super) fn spec_routing(spec: &RolloutSpec) -> Option<&TrafficRouting> {
    spec.strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
}

/// The traffic routings of `rollout`: the spec's, and the one fledge last applied when that
/// differs (its objects still carry fledge's changes until
/// [`super::retire_routes::retire_routing`] undoes them).
pub fn routings(rollout: &Rollout) -> Vec<&TrafficRouting> {
    let spec = spec_routing(&rollout.spec);
    let applied = rollout
        .status
        .as_ref()
        .and_then(|s| s.applied_traffic_routing.as_ref())
        .filter(|a| Some(*a) != spec);
    spec.into_iter().chain(applied).collect()
}

/// The routing fledge last applied, as the status records it.
pub(super) fn old_routing(rollout: &Rollout) -> Option<&TrafficRouting> {
    rollout
        .status
        .as_ref()
        .and_then(|s| s.applied_traffic_routing.as_ref())
}
