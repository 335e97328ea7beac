//! The blue-green machine. Called by [`super::plan`]; pure.
//!
//! The new revision runs beside the stable one behind `previewService`; promotion switches
//! `activeService` in one write, and only once the new revision is fully available.

use crate::api::PauseReason;

use super::gates::{RunKind, gate, hold};
use super::webhook_gates;
use crate::api::gates::GateType;

use super::plan::Draft;

pub(crate) fn plan(d: &mut Draft, current: &str) {
    let bg = d.spec.strategy.blue_green.clone().unwrap_or_default();
    let stable = d
        .status
        .stable_revision
        .clone()
        .unwrap_or_else(|| current.to_string());
    let r = d.replicas;
    d.status.current_step_index = None;
    d.status.canary_weight = None;

    // The stable revision stays at full size until a switch has happened.
    d.scale(&stable, r);
    d.pin(Some(&bg.active_service), &stable);
    if current == stable {
        d.pin(bg.preview_service.as_ref(), &stable);
        return;
    }
    if d.status.abort {
        super::bluegreen_abort::aborted(d, &bg, current, &stable);
        return;
    }
    d.pin(bg.preview_service.as_ref(), current);
    if webhook_gates::rollback(d, current) {
        return plan(d, current);
    }

    let full = d.status.promote_full;
    if !full && webhook_gates::confirm(d, current, GateType::ConfirmRollout, None) {
        // No pod of the new revision before the gate says yes.
        d.scale(current, 0);
        return;
    }
    let preview = if full || d.status.switch_approved {
        r
    } else {
        d.settings.preview_replicas
    };
    d.scale(current, preview);
    if !d.settled(current, preview) {
        return;
    }
    // The switch waits for the preview's analysis; a failure aborts with the active Service
    // never having moved. A full promotion skips it, as it skips the post-promotion analysis.
    if let Some(a) = bg.pre_promotion_analysis.as_ref().filter(|_| !full) {
        let g = gate(d, current, RunKind::PrePromotion, a.into());
        if hold(d, g) {
            if d.status.abort {
                return plan(d, current);
            }
            return;
        }
    }

    let promote = if full || d.status.switch_approved {
        true
    } else if d.user_paused() {
        false
    } else if d.settings.auto_promotion_enabled {
        match d.settings.auto_promotion_seconds {
            0 => true,
            seconds => {
                // The pause's start is when the preview became ready.
                let ready_since = d.pause(PauseReason::BlueGreenPause);
                let end = d.after_seconds(ready_since, seconds);
                if d.now < end {
                    d.requeue_at(end);
                }
                d.now >= end
            }
        }
    } else {
        d.pause(PauseReason::BlueGreenPause);
        false
    };
    if !promote {
        return;
    }
    // Remember the decision: the switch may wait for the preview to grow to full size, and for
    // the confirm-promotion gates.
    d.status.switch_approved = true;
    d.unpause(PauseReason::BlueGreenPause);
    if !full && webhook_gates::confirm(d, current, GateType::ConfirmPromotion, None) {
        return;
    }
    d.scale(current, r);
    if !d.settled(current, r) {
        return;
    }

    d.pin(Some(&bg.active_service), current);
    // After the switch the old revision stays at full size (it is still the stable one) until
    // the post-promotion analysis passes, so a failure can switch back at once.
    if let Some(a) = bg.post_promotion_analysis.as_ref().filter(|_| !full) {
        let g = gate(d, current, RunKind::PostPromotion, a.into());
        if hold(d, g) {
            if d.status.abort {
                return plan(d, current);
            }
            return;
        }
    }
    let delay = d.settings.scale_down_delay_seconds;
    d.delay_scale_down(delay);
    d.status.stable_revision = Some(current.to_string());
    d.status.promote_full = false;
    d.status.switch_approved = false;
    d.event(
        "Promoted",
        format!(
            "activeService {} switched to revision {current}",
            bg.active_service
        ),
    );
}
