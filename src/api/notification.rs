//! Notifications: `NotificationChannel`, `ClusterNotificationChannel`, the subscriptions a
//! Rollout names, and the delivery records in its status.
//!
//! A channel says where messages go (its type) and where its address and token are (a Secret,
//! never inline). A Rollout subscribes to channels by name, per event and severity.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Where notifications of Rollouts in its namespace go: a chat service, a webhook or PagerDuty.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "fledge.dev",
    version = "v1alpha1",
    kind = "NotificationChannel",
    namespaced,
    shortname = "flnc",
    category = "fledge",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NotificationChannelSpec {
    /// The service: `slack`, `msteams`, `discord`, `googlechat`, `webhook` or `pagerduty`.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// The Secret, in the channel's namespace, holding the address and token (see `type`).
    pub secret_ref: LocalSecretRef,
    /// Slack options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackOptions>,
    /// Generic webhook options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookOptions>,
    /// Messages sent at most per minute; more wait their turn. Defaults to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub rate_per_minute: Option<i32>,
}

/// A [`NotificationChannel`] for every namespace: Rollouts subscribe with `clusterScope: true`,
/// and the controller's default subscriptions usually name one.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "fledge.dev",
    version = "v1alpha1",
    kind = "ClusterNotificationChannel",
    shortname = "flcnc",
    category = "fledge",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNotificationChannelSpec {
    /// The service: `slack`, `msteams`, `discord`, `googlechat`, `webhook` or `pagerduty`.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// The Secret holding the address and token, and its namespace.
    pub secret_ref: ClusterSecretRef,
    /// Slack options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackOptions>,
    /// Generic webhook options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookOptions>,
    /// Messages sent at most per minute; more wait their turn. Defaults to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub rate_per_minute: Option<i32>,
}

/// A channel, namespaced or not, as the sender uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelConfig {
    pub kind: ChannelType,
    /// Namespace and name of the Secret.
    pub secret: (String, String),
    pub slack: Option<SlackOptions>,
    pub webhook: Option<WebhookOptions>,
    pub rate_per_minute: i32,
}

/// Messages per minute when a channel does not say.
pub const DEFAULT_RATE_PER_MINUTE: i32 = 20;

impl NotificationChannelSpec {
    pub fn config(&self, namespace: &str) -> ChannelConfig {
        ChannelConfig {
            kind: self.kind,
            secret: (namespace.to_string(), self.secret_ref.name.clone()),
            slack: self.slack.clone(),
            webhook: self.webhook.clone(),
            rate_per_minute: self.rate_per_minute.unwrap_or(DEFAULT_RATE_PER_MINUTE),
        }
    }
}

impl ClusterNotificationChannelSpec {
    pub fn config(&self) -> ChannelConfig {
        ChannelConfig {
            kind: self.kind,
            secret: (
                self.secret_ref.namespace.clone(),
                self.secret_ref.name.clone(),
            ),
            slack: self.slack.clone(),
            webhook: self.webhook.clone(),
            rate_per_minute: self.rate_per_minute.unwrap_or(DEFAULT_RATE_PER_MINUTE),
        }
    }
}

/// The services fledge sends to. What each reads from the Secret:
/// `slack`: `address` (an incoming webhook URL), or `token` (a bot token, with `slack.channel`;
/// `address` then overrides the API URL); `msteams`, `discord`, `googlechat`: `address` (the
/// webhook URL); `webhook`: `address`, and `token` sent as `Authorization: Bearer`;
/// `pagerduty`: `routingKey` (the Events API v2 integration key), `address` overriding the
/// Events API URL.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// Slack: an incoming webhook, or `chat.postMessage` with a bot token.
    #[default]
    Slack,
    /// Microsoft Teams: a Workflows webhook, sent an Adaptive Card.
    Msteams,
    /// Discord: a channel webhook.
    Discord,
    /// Google Chat: a space's incoming webhook.
    Googlechat,
    /// Any HTTP endpoint: fledge's JSON, or a CloudEvents 1.0 structured event.
    Webhook,
    /// PagerDuty Events API v2.
    Pagerduty,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Slack => "slack",
            ChannelType::Msteams => "msteams",
            ChannelType::Discord => "discord",
            ChannelType::Googlechat => "googlechat",
            ChannelType::Webhook => "webhook",
            ChannelType::Pagerduty => "pagerduty",
        }
    }
}

/// A Secret in the channel's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Secret in a named namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
}

/// Slack options.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlackOptions {
    /// The channel `chat.postMessage` posts to (with a bot `token`), like `#deploys` or a
    /// channel id. An incoming webhook posts to its own channel and ignores this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80))]
    pub channel: Option<String>,
}

/// Generic webhook options.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookOptions {
    /// Send a CloudEvents 1.0 event in structured mode (`application/cloudevents+json`)
    /// instead of fledge's own JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_events: Option<bool>,
}

/// What a Rollout tells people about.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum NotificationEvent {
    /// A new revision started its steps.
    #[default]
    NewRevision,
    /// A canary step was completed.
    StepCompleted,
    /// The rollout waits for a person: a pause step without duration, or a blue-green rollout
    /// without auto-promotion. The message says the `kubectl fledge promote` command.
    Paused,
    /// An analysis was Inconclusive: the rollout is paused until a promote or an abort.
    AnalysisInconclusive,
    /// An analysis Failed or Errored: which metric, its value and the condition it broke.
    AnalysisFailed,
    /// The rollout was aborted (a request, a failed analysis, the progress deadline).
    Aborted,
    /// The new revision was promoted to stable: the rollout is complete.
    Promoted,
    /// The rollout made no progress within `progressDeadlineSeconds`.
    ProgressDeadlineExceeded,
    /// A restart (`spec.restartAt`) replaced every pod of the stable revision.
    Restarted,
}

impl NotificationEvent {
    pub const ALL: [NotificationEvent; 9] = [
        NotificationEvent::NewRevision,
        NotificationEvent::StepCompleted,
        NotificationEvent::Paused,
        NotificationEvent::AnalysisInconclusive,
        NotificationEvent::AnalysisFailed,
        NotificationEvent::Aborted,
        NotificationEvent::Promoted,
        NotificationEvent::ProgressDeadlineExceeded,
        NotificationEvent::Restarted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::NewRevision => "NewRevision",
            NotificationEvent::StepCompleted => "StepCompleted",
            NotificationEvent::Paused => "Paused",
            NotificationEvent::AnalysisInconclusive => "AnalysisInconclusive",
            NotificationEvent::AnalysisFailed => "AnalysisFailed",
            NotificationEvent::Aborted => "Aborted",
            NotificationEvent::Promoted => "Promoted",
            NotificationEvent::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            NotificationEvent::Restarted => "Restarted",
        }
    }

    /// How bad the news is.
    pub fn severity(self) -> Severity {
        match self {
            NotificationEvent::NewRevision
            | NotificationEvent::StepCompleted
            | NotificationEvent::Promoted
            | NotificationEvent::Restarted => Severity::Info,
            NotificationEvent::Paused | NotificationEvent::AnalysisInconclusive => {
                Severity::Warning
            }
            NotificationEvent::AnalysisFailed
            | NotificationEvent::Aborted
            | NotificationEvent::ProgressDeadlineExceeded => Severity::Error,
        }
    }
}

/// How bad the news is; a subscription's `severity` is the least it sends.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Progress: a revision started, a step completed, a promotion, a restart.
    #[default]
    Info,
    /// A person is needed: a pause, an inconclusive analysis.
    Warning,
    /// Something went wrong: a failed analysis, an abort, the progress deadline.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Who hears about this Rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutNotifications {
    /// The channels, each with the events it gets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub subscriptions: Vec<Subscription>,
    /// Leave out the controller's default subscriptions (`--notification-defaults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_defaults: Option<bool>,
}

/// One channel and what it gets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Name of the NotificationChannel in the Rollout's namespace, or of the
    /// ClusterNotificationChannel with `clusterScope`.
    #[schemars(length(min = 1, max = 253))]
    pub channel: String,
    /// The channel is a ClusterNotificationChannel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// The events to send. Empty: all of them (at or above `severity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub events: Vec<NotificationEvent>,
    /// The least severity sent: `info` (all, the default), `warning` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl Subscription {
    /// How the channel is named in delivery records: `NotificationChannel/<name>` or
    /// `ClusterNotificationChannel/<name>`.
    pub fn target(&self) -> String {
        let kind = if self.cluster_scope == Some(true) {
            "ClusterNotificationChannel"
        } else {
            "NotificationChannel"
        };
        format!("{kind}/{}", self.channel)
    }

    pub fn wants(&self, event: NotificationEvent) -> bool {
        (self.events.is_empty() || self.events.contains(&event))
            && event.severity() >= self.severity.unwrap_or_default()
    }
}

/// One notification the controller decided to send, and to which channels it still owes it.
/// Recorded in the same status write as the change it reports, so a crash never loses it, and
/// kept (a bounded number) after delivery, so a new leader never sends it twice.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// `<revision>/<attempt>/<event>[/<detail>]`: one message per key.
    pub key: String,
    /// The event.
    pub event: NotificationEvent,
    /// The revision (pod-template hash) it is about.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// The text of the message.
    pub message: String,
    /// Facts the payloads carry: `metric`, `value`, `condition`, `step`, `command`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// When the event happened.
    pub time: Time,
    /// Channels still owed the message (`NotificationChannel/<name>`,
    /// `ClusterNotificationChannel/<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// Channels that were sent it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<String>,
    /// Channels that refused it after every retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}
