//! `kubectl fledge undo NAME [--to-revision N]`: which revision to go back to, and the pod
//! template that brings it back. Pure; the binary writes the template into `spec.template`.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use kube::ResourceExt;

use crate::api::{HASH_LABEL, REVISION_ANNOTATION, Rollout};
use crate::rollout::hash::template_hash;

/// The revision `undo` restores.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub revision: Option<i64>,
    pub hash: String,
    pub replica_set: String,
    pub template: PodTemplateSpec,
    /// The template hashes to the revision's own hash, so the controller recognises the old
    /// revision (and its ReplicaSet) instead of starting a new one.
    pub exact: bool,
}

fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.annotations().get(REVISION_ANNOTATION)?.parse().ok()
}

/// The revision to go back to: `to_revision`, or the newest one before the current.
pub fn choose(
    rollout: &Rollout,
    replica_sets: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<Target, String> {
    let name = rollout.name_any();
    if rollout.spec.template.is_none() {
        return Err(format!(
            "rollout {name:?} runs the template of its workloadRef Deployment: undo that Deployment instead"
        ));
    }
    let current = rollout
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .or_else(|| rollout.spec.template.as_ref().map(template_hash));
    let mut sets: Vec<&ReplicaSet> = replica_sets
        .iter()
        .filter(|rs| rs.labels().contains_key(HASH_LABEL))
        .collect();
    // Oldest first: by revision number, then creation for ReplicaSets made before numbering.
    sets.sort_by(|a, b| {
        revision(a).cmp(&revision(b)).then(
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp),
        )
    });
    let hash_of = |rs: &ReplicaSet| rs.labels().get(HASH_LABEL).cloned().unwrap_or_default();
    let rs = match to_revision {
        Some(n) => {
            let rs = sets
                .iter()
                .find(|rs| revision(rs) == Some(n))
                .ok_or_else(|| {
                    let known: Vec<String> = sets
                        .iter()
                        .filter_map(|rs| revision(rs))
                        .map(|n| n.to_string())
                        .collect();
                    format!(
                        "rollout {name:?} has no revision {n} (it has {})",
                        if known.is_empty() {
                            "no numbered revisions".into()
                        } else {
                            known.join(", ")
                        }
                    )
                })?;
            if Some(hash_of(rs)) == current {
                return Err(format!(
                    "revision {n} is already the current revision of {name:?}"
                ));
            }
            *rs
        }
        None => sets
            .iter()
            .rev()
            .find(|rs| Some(hash_of(rs)) != current)
            .copied()
            .ok_or_else(|| format!("rollout {name:?} has no earlier revision to go back to"))?,
    };
    let hash = hash_of(rs);
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| format!("ReplicaSet {:?} has no pod template", rs.name_any()))?;
    let (template, exact) = restore_template(template, &hash);
    Ok(Target {
        revision: revision(rs),
        hash,
        replica_set: rs.name_any(),
        template,
        exact,
    })
}

/// The Rollout template a ReplicaSet was made from: its template without the hash label, and,
/// when that does not hash to `hash`, without the defaults the API server filled in.
pub fn restore_template(mut template: PodTemplateSpec, hash: &str) -> (PodTemplateSpec, bool) {
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    if template_hash(&template) == hash {
        return (template, true);
    }
    let stripped = strip_server_defaults(template);
    let exact = template_hash(&stripped) == hash;
    (stripped, exact)
}

/// Removes the values the API server defaults in a pod template, so a template read back from a
/// ReplicaSet looks as it was written (assuming it did not spell the defaults out).
pub fn strip_server_defaults(mut template: PodTemplateSpec) -> PodTemplateSpec {
    let Some(spec) = template.spec.as_mut() else {
        return template;
    };
    let clear = |field: &mut Option<String>, default: &str| {
        if field.as_deref() == Some(default) {
            *field = None;
        }
    };
    clear(&mut spec.dns_policy, "ClusterFirst");
    clear(&mut spec.restart_policy, "Always");
    clear(&mut spec.scheduler_name, "default-scheduler");
    if spec.termination_grace_period_seconds == Some(30) {
        spec.termination_grace_period_seconds = None;
    }
    if spec
        .security_context
        .as_ref()
        .is_some_and(|s| *s == Default::default())
    {
        spec.security_context = None;
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        strip_container(c);
    }
    template
}

fn strip_container(c: &mut Container) {
    if c.termination_message_path.as_deref() == Some("/dev/termination-log") {
        c.termination_message_path = None;
    }
    if c.termination_message_policy.as_deref() == Some("File") {
        c.termination_message_policy = None;
    }
    // Always for `:latest` or no tag, else IfNotPresent.
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let untagged_or_latest =
        !last.contains(':') && !image.contains('@') || last.ends_with(":latest");
    let default = if untagged_or_latest {
        "Always"
    } else {
        "IfNotPresent"
    };
    if c.image_pull_policy.as_deref() == Some(default) {
        c.image_pull_policy = None;
    }
    if c.resources
        .as_ref()
        .is_some_and(|r| *r == Default::default())
    {
        c.resources = None;
    }
    for p in c.ports.iter_mut().flatten() {
        if p.protocol.as_deref() == Some("TCP") {
            p.protocol = None;
        }
    }
    for probe in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        let defaults = [
            (&mut probe.timeout_seconds, 1),
            (&mut probe.period_seconds, 10),
            (&mut probe.success_threshold, 1),
            (&mut probe.failure_threshold, 3),
        ];
        for (field, default) in defaults {
            if *field == Some(default) {
                *field = None;
            }
        }
        if let Some(h) = probe.http_get.as_mut()
            && h.scheme.as_deref() == Some("HTTP")
        {
            h.scheme = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> serde_json::Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "app", "image": image}]}})
    }

    fn rollout(image: &str, current: &str) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(image),
                     "strategy": {"canary": {}}},
            "status": {"currentRevision": current},
        }))
        .unwrap()
    }

    /// The ReplicaSet the controller made for `image`, as the API server returns it: the
    /// template defaulted, the hash label added.
    fn replica_set(image: &str, revision: Option<i64>) -> (ReplicaSet, String) {
        let spec_template: PodTemplateSpec = serde_json::from_value(template(image)).unwrap();
        let hash = template_hash(&spec_template);
        let mut t = template(image);
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        t["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        t["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
        t["spec"]["containers"][0]["terminationMessagePolicy"] = json!("File");
        t["spec"]["containers"][0]["resources"] = json!({});
        t["spec"]["restartPolicy"] = json!("Always");
        t["spec"]["dnsPolicy"] = json!("ClusterFirst");
        t["spec"]["schedulerName"] = json!("default-scheduler");
        t["spec"]["securityContext"] = json!({});
        t["spec"]["terminationGracePeriodSeconds"] = json!(30);
        let mut annotations = json!({});
        if let Some(n) = revision {
            annotations[REVISION_ANNOTATION] = json!(n.to_string());
        }
        let rs = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{hash}"), "labels": {HASH_LABEL: hash},
                         "annotations": annotations},
            "spec": {"selector": {}, "template": t},
        }))
        .unwrap();
        (rs, hash)
    }

    #[test]
    fn goes_back_to_the_newest_other_revision_with_its_exact_template() {
        let (rs1, h1) = replica_set("web:1", Some(1));
        let (rs2, h2) = replica_set("web:2", Some(2));
        let (rs3, h3) = replica_set("web:3", Some(3));
        let sets = [rs2.clone(), rs3, rs1];
        let target = choose(&rollout("web:3", &h3), &sets, None).unwrap();
        assert_eq!(
            (target.revision, target.hash.as_str()),
            (Some(2), h2.as_str())
        );
        assert!(
            target.exact,
            "server defaults are stripped, the hash label removed"
        );
        assert_eq!(
            serde_json::to_value(&target.template).unwrap(),
            template("web:2")
        );
        let target = choose(&rollout("web:3", &h3), &sets, Some(1)).unwrap();
        assert_eq!(target.hash, h1);
    }

    #[test]
    fn says_why_it_cannot_undo() {
        let (rs1, h1) = replica_set("web:1", Some(1));
        let (rs2, h2) = replica_set("web:2", Some(2));
        let sets = [rs1, rs2];
        let r = rollout("web:2", &h2);
        assert_eq!(
            choose(&r, &sets, Some(7)).unwrap_err(),
            "rollout \"web\" has no revision 7 (it has 1, 2)"
        );
        assert_eq!(
            choose(&r, &sets, Some(2)).unwrap_err(),
            "revision 2 is already the current revision of \"web\""
        );
        let only = [replica_set("web:1", Some(1)).0];
        assert_eq!(
            choose(&rollout("web:1", &h1), &only, None).unwrap_err(),
            "rollout \"web\" has no earlier revision to go back to"
        );
        let mut workload = rollout("web:1", &h1);
        workload.spec.template = None;
        assert!(
            choose(&workload, &only, None)
                .unwrap_err()
                .contains("workloadRef")
        );
    }

    #[test]
    fn a_template_that_spelled_out_other_values_is_restored_but_not_exact() {
        let (rs, hash) = replica_set("web:1", None);
        let mut t = rs.spec.unwrap().template.unwrap();
        t.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("Never".into());
        let (restored, exact) = restore_template(t, &hash);
        assert!(!exact);
        assert_eq!(
            restored.spec.unwrap().containers[0]
                .image_pull_policy
                .as_deref(),
            Some("Never")
        );
    }
}
