//! The numbers a plan works with, every default filled in once.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{Limit, RolloutSpec, defaults, scaled_value};

/// A Rollout's optional numbers resolved once per plan, with every default filled in
/// ([`crate::api::defaults`]): the steps of `plan()` and the strategies read these, never a spec
/// field's `Option`. Only a spec that passed validation reaches the strategies, so the fallback
/// for a `maxSurge` or `maxUnavailable` that does not parse is never used by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Pods above `replicas` an update may create (canary `maxSurge`).
    pub max_surge: i32,
    /// Pods below `replicas` that may be unavailable (canary `maxUnavailable`; 0 for blue-green).
    pub max_unavailable: i32,
    /// Seconds the old stable keeps its pods after a promotion (either strategy).
    pub scale_down_delay_seconds: i32,
    /// Old revisions that may wait out the scale-down delay at once; `None`: any number.
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds the canary (with a router) or the blue-green preview keeps its pods after an
    /// abort; for blue-green, 0 keeps them.
    pub abort_scale_down_delay_seconds: i32,
    pub progress_deadline_seconds: i32,
    /// Old ReplicaSets kept, at least 0.
    pub revision_history_limit: i32,
    /// Finished runs kept, at least 0.
    pub successful_run_history_limit: i32,
    pub unsuccessful_run_history_limit: i32,
    /// Blue-green: pods of the new revision before promotion, within 0..=`replicas`.
    pub preview_replicas: i32,
    /// Blue-green: promote without a request once the preview is ready.
    pub auto_promotion_enabled: bool,
    /// Blue-green: seconds the auto promotion waits after the preview is ready.
    pub auto_promotion_seconds: i32,
    /// Canary: the step from which the background analysis runs.
    pub analysis_starting_step: i32,
    /// Canary with a router: the fewest pods of a ReplicaSet asked for any, within 1..=`replicas`.
    pub min_pods_per_replica_set: i32,
}

impl Settings {
    /// The settings of `spec` for `replicas` desired pods.
    pub fn of(spec: &RolloutSpec, replicas: i32) -> Settings {
        let canary = spec.strategy.canary.as_ref();
        let scaled = |value: Option<&IntOrString>, limit: Limit, fallback: i32| {
            scaled_value(value, replicas, limit).unwrap_or(fallback)
        };
        // Blue-green wins when both are set, as in `plan()`.
        let (scale_down_delay, revision_limit) = match (&spec.strategy.blue_green, canary) {
            (Some(bg), _) => (
                bg.scale_down_delay_seconds,
                bg.scale_down_delay_revision_limit,
            ),
            (None, Some(c)) => (
                c.scale_down_delay_seconds,
                c.scale_down_delay_revision_limit,
            ),
            (None, None) => (None, None),
        };
        let history = spec.analysis.clone().unwrap_or_default();
        let bg = spec.strategy.blue_green.as_ref();
        Settings {
            max_surge: scaled(
                canary.and_then(|c| c.max_surge.as_ref()),
                Limit::MaxSurge,
                1,
            ),
            // Blue-green's maxUnavailable is a restart's only; its updates lose no pod.
            max_unavailable: if spec.strategy.blue_green.is_some() {
                0
            } else {
                max_unavailable(spec, replicas)
            },
            scale_down_delay_seconds: scale_down_delay
                .unwrap_or(defaults::SCALE_DOWN_DELAY_SECONDS),
            scale_down_delay_revision_limit: revision_limit.map(|n| n.max(0)),
            abort_scale_down_delay_seconds: match bg {
                Some(b) => b.abort_scale_down_delay_seconds,
                None => canary.and_then(|c| c.abort_scale_down_delay_seconds),
            }
            .unwrap_or(defaults::ABORT_SCALE_DOWN_DELAY_SECONDS),
            progress_deadline_seconds: spec
                .progress_deadline_seconds
                .unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS),
            revision_history_limit: spec
                .revision_history_limit
                .unwrap_or(defaults::REVISION_HISTORY_LIMIT)
                .max(0),
            successful_run_history_limit: history
                .successful_run_history_limit
                .unwrap_or(defaults::SUCCESSFUL_RUN_HISTORY_LIMIT)
                .max(0),
            unsuccessful_run_history_limit: history
                .unsuccessful_run_history_limit
                .unwrap_or(defaults::UNSUCCESSFUL_RUN_HISTORY_LIMIT)
                .max(0),
            preview_replicas: bg
                .and_then(|b| b.preview_replica_count)
                .unwrap_or(replicas)
                .clamp(0, replicas.max(0)),
            auto_promotion_enabled: bg
                .and_then(|b| b.auto_promotion_enabled)
                .unwrap_or(defaults::AUTO_PROMOTION_ENABLED),
            auto_promotion_seconds: bg
                .and_then(|b| b.auto_promotion_seconds)
                .unwrap_or(defaults::AUTO_PROMOTION_SECONDS),
            analysis_starting_step: canary
                .and_then(|c| c.analysis.as_ref())
                .and_then(|a| a.starting_step)
                .unwrap_or(defaults::ANALYSIS_STARTING_STEP),
            min_pods_per_replica_set: canary
                .and_then(|c| c.min_pods_per_replica_set)
                .unwrap_or(defaults::MIN_PODS_PER_REPLICA_SET)
                .clamp(1, replicas.max(1)),
        }
    }
}

/// The strategy's `maxUnavailable` against `total` pods (blue-green wins when both are set, as
/// in `plan()`). The restart reads it against the stable's own size, so it is a function rather
/// than only a setting.
pub(crate) fn max_unavailable(spec: &RolloutSpec, total: i32) -> i32 {
    let value = match (&spec.strategy.blue_green, &spec.strategy.canary) {
        (Some(b), _) => b.max_unavailable.as_ref(),
        (None, Some(c)) => c.max_unavailable.as_ref(),
        (None, None) => None,
    };
    // Only a spec that passed validation is planned, so the fallback is never used.
    scaled_value(value, total, Limit::MaxUnavailable).unwrap_or(defaults::MAX_UNAVAILABLE)
}
