//! Argo Rollouts' `antiAffinity`: a new revision's pods kept off the nodes that run the stable
//! revision's, so that scaling the old revision down empties whole nodes (which a cluster
//! autoscaler can then remove without restarting the new pods).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The topology a revision's pods avoid: one node.
pub const ANTI_AFFINITY_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// Keep a new revision's pods off the nodes of the stable revision's pods: fledge adds a pod
/// anti-affinity term on the stable's `rollouts-pod-template-hash` to the pod template of the
/// ReplicaSet it creates for a new revision (not to the Rollout's template, so the revision's
/// hash is the same). Exactly one of the two.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.preferredDuringSchedulingIgnoredDuringExecution) != has(self.requiredDuringSchedulingIgnoredDuringExecution)").message("antiAffinity sets exactly one of preferredDuringSchedulingIgnoredDuringExecution and requiredDuringSchedulingIgnoredDuringExecution"))]
pub struct AntiAffinity {
    /// The scheduler prefers other nodes, with this weight among the pod's preferences; pods
    /// still start where only the stable's nodes have room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_during_scheduling_ignored_during_execution: Option<PreferredAntiAffinity>,
    /// The new revision's pods never share a node with the stable's: they stay Pending where
    /// no other node has room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<RequiredAntiAffinity>,
}

/// A preferred anti-affinity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreferredAntiAffinity {
    /// Weight of the term among the pod's scheduling preferences, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
}

/// A required anti-affinity: no fields, its presence says it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RequiredAntiAffinity {}
