//! Notifications: people hear what their rollouts do, in the chat or pager they read.
//!
//! `record` (pure) reads what the planner decided (its Kubernetes Events and the new status)
//! and adds to the status the notifications that makes owed, so the write that makes a change
//! durable makes its notification durable too: a crash right after never loses one. `deliver`
//! sends what statuses owe, a queue per channel, and records each delivery in the status, which
//! is where a restarted controller or a new leader finds what was already sent. `payload` is the
//! body each service documents; `send` reads a channel and its Secret and posts.

pub mod deliver;
pub mod payload;
pub mod record;
pub mod send;

pub use deliver::Notifier;

/// What the controller's flags say about notifications.
pub struct Options {
    /// Subscriptions every Rollout has unless it skips them.
    pub defaults: Vec<crate::api::notification::Subscription>,
    /// The HTTP client messages go out through (the analysis providers' rules on addresses).
    pub http: reqwest::Client,
}

/// Parses `--notification-defaults`: a JSON (or YAML) list of subscriptions.
pub fn parse_defaults(text: &str) -> Result<Vec<crate::api::notification::Subscription>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_yaml::from_str(text).map_err(|e| format!("not a list of subscriptions: {e}"))
}
