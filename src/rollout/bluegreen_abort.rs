//! An aborted blue-green rollout: the active Service is back on the stable revision (see
//! [`super::bluegreen::plan`]); the new revision's pods stay `abortScaleDownDelaySeconds` behind
//! the preview Service, where people can look at what failed, as in Argo Rollouts. Pure.

use crate::api::BlueGreenStrategy;

use super::plan::Draft;

/// Keeps the aborted revision `current` up, behind the preview Service, until its delay is over
/// (for ever with a delay of 0); then the preview Service goes back to the stable and the pods go.
pub(crate) fn aborted(d: &mut Draft, bg: &BlueGreenStrategy, current: &str, stable: &str) {
    let delay = d.settings.abort_scale_down_delay_seconds;
    let kept = delay == 0 || {
        let since = d.status.aborted_at.as_ref().map_or(d.now, |t| t.0);
        let until = d.after_seconds(since, delay);
        if d.now < until {
            d.requeue_at(until);
        }
        d.now < until
    };
    // A preview never scaled up (aborted at a confirm gate) has nothing to show.
    if kept && d.replica_set(current).is_some_and(|rs| rs.replicas > 0) {
        d.pin(bg.preview_service.as_ref(), current);
        return;
    }
    d.pin(bg.preview_service.as_ref(), stable);
    d.scale(current, 0);
}
