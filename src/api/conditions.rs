//! Condition types and reasons, and the one helper that sets a condition.
//!
//! `Ready`, `Reconciling` and `Stalled` follow kstatus, so Flux health checks and Argo CD work
//! without custom code; `Progressing`, `Available`, `Paused` and `InvalidSpec` say more.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const PAUSED: &str = "Paused";
pub const INVALID_SPEC: &str = "InvalidSpec";
/// A routing taken out of `trafficRouting` could not be read, so it may still send traffic to
/// the canary; fledge retries until it can give it back to the stable.
pub const RETIRED_ROUTING_PENDING: &str = "RetiredRoutingPending";

pub const REASON_HEALTHY: &str = "RolloutHealthy";
pub const REASON_PROGRESSING: &str = "RolloutProgressing";
pub const REASON_PAUSED: &str = "RolloutPaused";
pub const REASON_ABORTED: &str = "RolloutAborted";
pub const REASON_DEADLINE: &str = "ProgressDeadlineExceeded";
pub const REASON_INVALID: &str = "InvalidSpec";
pub const REASON_AVAILABLE: &str = "AvailableReplicas";
pub const REASON_UNAVAILABLE: &str = "NotEnoughAvailableReplicas";
pub const REASON_ROUTING_UNREADABLE: &str = "RoutingUnreadable";

/// Sets condition `type_`, keeping `lastTransitionTime` when the status did not change, so that
/// an unchanged rollout produces an unchanged status and no write.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: transition,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Removes condition `type_`.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Finds condition `type_`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when condition `type_` is present with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}
