//! Runtime requests: `promote`, `abort`, `retry`, `pause`, `resume` write into the status
//! subresource, never the spec, so a Git sync agent sees no drift.

use serde_json::{Value, json};

use crate::api::{Request, RequestAction, Rollout};

/// The merge patch for the status subresource that files `action`.
pub fn patch(action: RequestAction, requested_by: &str) -> Value {
    let request = Request {
        action,
        requested_by: Some(requested_by.to_string()),
    };
    json!({"status": {"request": request}})
}

/// True once the controller has consumed the request (it clears it in the same write in which
/// it acts).
pub fn consumed(rollout: &Rollout) -> bool {
    rollout.status.as_ref().is_none_or(|s| s.request.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_writes_only_the_request() {
        assert_eq!(
            patch(RequestAction::PromoteFull, "alice"),
            json!({"status": {"request": {"action": "promoteFull", "requestedBy": "alice"}}})
        );
    }
}
