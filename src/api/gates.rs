//! Webhook gates (`spec.gates`): an outside system holds a rollout until it answers yes, or
//! aborts it by answering yes. Flagger's meanings: confirm-rollout, confirm-traffic-increase,
//! confirm-promotion and rollback. Checks that fail a rollout when they fail (Flagger's
//! pre-rollout and post-rollout hooks) are analyses with the `web` provider instead.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::analysis::WebHeader;
use super::duration::DURATION_PATTERN;

/// A webhook fledge asks, by a POST of the rollout's state, at each point where its type holds
/// the rollout. An answer with a 2xx status is "yes"; any other answer, or none, is "no".
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookGate {
    /// Name, unique among the gates; part of the AnalysisRun that asks.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// `confirmRollout`: before a new revision gets any pod or traffic, wait until yes.
    /// `confirmTrafficIncrease`: before each canary step that raises the weight, wait until yes.
    /// `confirmPromotion`: before the new revision becomes stable (canary: after the last step;
    /// blue-green: before the switch), wait until yes. Waiting never fails the rollout and never
    /// counts against `progressDeadlineSeconds`; `kubectl fledge promote` passes the gate as a
    /// yes would, and `kubectl fledge abort` aborts.
    /// `rollback`: asked from the start of a new revision until it is stable; a yes aborts.
    #[serde(rename = "type")]
    pub type_: GateType,
    /// The webhook's URL (`http` or `https`). Keep credentials out of it: put them in `headers`
    /// from a Secret. Status messages show only its host.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^/?#\s]+"))]
    pub url: String,
    /// Extra HTTP headers, literal or from a Secret of the Rollout's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<WebHeader>,
    /// Sent as `metadata` in the JSON body, as Flagger sends a webhook's metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub metadata: BTreeMap<String, String>,
    /// Time between two questions, like `30s` or `1m` (at least 1s). Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// Seconds to wait for an answer (none in time is "no"). Defaults to 10, at most 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: Option<i64>,
}

/// What a gate holds, or stops.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "camelCase")]
pub enum GateType {
    /// Before a new revision gets any pod or traffic: wait until yes.
    #[default]
    ConfirmRollout,
    /// Before each canary step that raises the weight: wait until yes.
    ConfirmTrafficIncrease,
    /// Before the new revision becomes stable: wait until yes.
    ConfirmPromotion,
    /// While a new revision is in progress: a yes aborts.
    Rollback,
}

impl GateType {
    /// The spelling users write, and the label value on the gate's AnalysisRun.
    pub fn as_str(self) -> &'static str {
        match self {
            GateType::ConfirmRollout => "confirmRollout",
            GateType::ConfirmTrafficIncrease => "confirmTrafficIncrease",
            GateType::ConfirmPromotion => "confirmPromotion",
            GateType::Rollback => "rollback",
        }
    }

    pub fn parse(s: &str) -> Option<GateType> {
        [
            GateType::ConfirmRollout,
            GateType::ConfirmTrafficIncrease,
            GateType::ConfirmPromotion,
            GateType::Rollback,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// Flagger's name for the same hook, sent as `type` in the body so that receivers written
    /// for Flagger (its load tester's gates included) answer fledge unchanged.
    pub fn flagger_name(self) -> &'static str {
        match self {
            GateType::ConfirmRollout => "confirm-rollout",
            GateType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            GateType::ConfirmPromotion => "confirm-promotion",
            GateType::Rollback => "rollback",
        }
    }
}
