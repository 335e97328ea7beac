//! The mirror guard: fledge never writes a mirror that a parent Gateway's class says its gateway
//! does not implement (`traffic/features.rs`; such a gateway may fail every request the rule
//! matches). A `setMirrorRoute` step that would write one holds the rollout, traffic unchanged,
//! until a person promotes past it (the mirror is then left out) or aborts.

use super::Draft;
use crate::api::{CanaryStep, PauseReason, SetMirrorRoute};
use crate::traffic::TrafficState;
use crate::traffic::features::mirror_unsupported;

const REASON: &str = "MirrorNotSupported";

impl Draft<'_> {
    /// Why mirror route `m` must not be written, if it must not.
    fn mirror_refused(&self, m: &SetMirrorRoute) -> Option<String> {
        mirror_unsupported(&self.observed.gateway_classes, m)
    }

    /// `state` without the mirror routes a parent Gateway cannot take: those are never written.
    pub fn writable(&self, state: &TrafficState) -> TrafficState {
        let mut state = state.clone();
        state
            .mirror_routes
            .retain(|m| self.mirror_refused(m).is_none());
        state
    }

    /// Why `step` is held: it adds a mirror route a parent Gateway cannot take.
    pub fn mirror_hold(&self, step: &CanaryStep) -> Option<String> {
        // A step with neither matches nor a percentage removes its route: nothing to refuse.
        let m = step
            .set_mirror_route
            .as_ref()
            .filter(|m| !m.matches.is_empty() || m.percentage.is_some())?;
        self.mirror_refused(m)
    }

    /// Holds the rollout at `step` when its mirror cannot be written (a Warning the first time)
    /// and returns true; otherwise returns false.
    pub fn hold_unsupported_mirror(&mut self, step: &CanaryStep) -> bool {
        let Some(why) = self.mirror_hold(step) else {
            return false;
        };
        if !self.has_pause(PauseReason::MirrorNotSupported) {
            self.warning(REASON, why);
            self.pause(PauseReason::MirrorNotSupported);
        }
        true
    }
}

/// The status message of a rollout held at a mirror step: what is missing, and where.
pub(super) fn held_message(d: &Draft) -> String {
    let i = d.status.current_step_index.unwrap_or(0);
    let why = d
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps.get(usize::try_from(i).ok()?))
        .and_then(|step| d.mirror_hold(step))
        .unwrap_or_else(|| "its mirror is not supported by a parent Gateway".into());
    format!("held at step {i}: {why}")
}
