//! PURE: the HTTP request each service documents, for one message, and what its answer means.
//!
//! Slack: incoming webhooks and `chat.postMessage` take `text` (the fallback) and Block Kit
//! `blocks`; `chat.postMessage` also `channel`, with the bot token as a bearer token, and answers
//! 200 with `{"ok": false, "error": ...}` when it refuses. Microsoft Teams (Workflows webhooks):
//! a `message` whose attachment is an Adaptive Card. Discord: `content` (at most 2000
//! characters) and `embeds`, answered 204. Google Chat: `text`. PagerDuty Events API v2:
//! `routing_key`, `event_action`, `dedup_key` and a `payload` with `summary` (at most 1024),
//! `source` and `severity`, answered 202. CloudEvents 1.0 structured mode: the attributes
//! `specversion`, `id`, `source`, `type` (and `time`, `subject`, `datacontenttype`) with the event
//! in `data`, sent as `application/cloudevents+json`.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::api::notification::{ChannelConfig, ChannelType, NotificationRecord, Severity};

pub const SLACK_POST_MESSAGE: &str = "https://slack.com/api/chat.postMessage";
pub const PAGERDUTY_ENQUEUE: &str = "https://events.pagerduty.com/v2/enqueue";

/// What is said, whatever the service.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Unique per (rollout, revision, event): the CloudEvents id and what a receiver may
    /// de-duplicate on.
    pub id: String,
    pub namespace: String,
    pub rollout: String,
    /// `Aborted`, `Promoted`, ..., or `Test`.
    pub event: String,
    pub severity: Severity,
    pub revision: String,
    pub text: String,
    pub details: BTreeMap<String, String>,
    pub time: Timestamp,
    /// The news ends an incident (a promotion): PagerDuty resolves instead of triggering.
    pub resolves: bool,
}

impl Message {
    pub fn from_record(namespace: &str, rollout: &str, r: &NotificationRecord) -> Message {
        Message {
            id: format!("{namespace}/{rollout}/{}", r.key),
            namespace: namespace.to_string(),
            rollout: rollout.to_string(),
            event: r.event.as_str().to_string(),
            severity: r.event.severity(),
            revision: r.revision.clone(),
            text: r.message.clone(),
            details: r.details.clone(),
            time: r.time.0,
            resolves: r.event == crate::api::notification::NotificationEvent::Promoted,
        }
    }

    /// `shop/web: Aborted`.
    pub fn title(&self) -> String {
        format!(
            "Rollout {}/{}: {}",
            self.namespace, self.rollout, self.event
        )
    }

    /// The facts shown beside the text: the revision first, then the details.
    fn facts(&self) -> Vec<(String, String)> {
        let mut facts = Vec::new();
        if !self.revision.is_empty() {
            facts.push(("revision".to_string(), self.revision.clone()));
        }
        facts.push(("severity".to_string(), self.severity.as_str().to_string()));
        facts.extend(self.details.iter().map(|(k, v)| (k.clone(), v.clone())));
        facts
    }

    /// Title, text and facts as plain lines, for services that take text only.
    pub fn plain(&self) -> String {
        let mut s = format!("{}\n{}", self.title(), self.text);
        for (k, v) in self.facts() {
            s.push_str(&format!("\n{k}: {v}"));
        }
        s
    }

    /// fledge's own JSON: the `webhook` type's body and the CloudEvents `data`.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "event": self.event,
            "severity": self.severity.as_str(),
            "namespace": self.namespace,
            "rollout": self.rollout,
            "revision": self.revision,
            "message": self.text,
            "details": self.details,
            "time": self.time.to_string(),
        })
    }
}

/// What the Secret gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    pub address: Option<String>,
    pub token: Option<String>,
    pub routing_key: Option<String>,
}

impl Credentials {
    /// Every secret value, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        [&self.address, &self.token, &self.routing_key]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    }
}

/// One HTTP POST.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub url: String,
    pub content_type: &'static str,
    pub bearer: Option<String>,
    pub body: Value,
}

/// The request `channel` sends for `m`.
pub fn request(channel: &ChannelConfig, c: &Credentials, m: &Message) -> Result<Outgoing, String> {
    let address = || {
        c.address
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| "the Secret has no key \"address\"".to_string())
    };
    let json_type = "application/json; charset=utf-8";
    Ok(match channel.kind {
        ChannelType::Slack => {
            let mut body = slack(m);
            match c.token.clone().filter(|t| !t.is_empty()) {
                Some(token) => {
                    let ch = channel
                        .slack
                        .as_ref()
                        .and_then(|s| s.channel.clone())
                        .ok_or("a Slack bot token needs slack.channel on the channel")?;
                    body["channel"] = json!(ch);
                    Outgoing {
                        url: c
                            .address
                            .clone()
                            .filter(|a| !a.is_empty())
                            .unwrap_or_else(|| SLACK_POST_MESSAGE.into()),
                        content_type: json_type,
                        bearer: Some(token),
                        body,
                    }
                }
                None => Outgoing {
                    url: address().map_err(|e| format!("{e} (or \"token\")"))?,
                    content_type: json_type,
                    bearer: None,
                    body,
                },
            }
        }
        ChannelType::Msteams => Outgoing {
            url: address()?,
            content_type: json_type,
            bearer: None,
            body: teams(m),
        },
        ChannelType::Discord => Outgoing {
            url: address()?,
            content_type: json_type,
            bearer: None,
            body: discord(m),
        },
        ChannelType::Googlechat => Outgoing {
            url: address()?,
            content_type: json_type,
            bearer: None,
            body: json!({"text": google_chat_text(m)}),
        },
        ChannelType::Webhook => {
            let cloud = channel
                .webhook
                .as_ref()
                .and_then(|w| w.cloud_events)
                .unwrap_or(false);
            Outgoing {
                url: address()?,
                content_type: if cloud {
                    "application/cloudevents+json; charset=utf-8"
                } else {
                    json_type
                },
                bearer: c.token.clone().filter(|t| !t.is_empty()),
                body: if cloud { cloud_event(m) } else { m.json() },
            }
        }
        ChannelType::Pagerduty => {
            let key = c
                .routing_key
                .clone()
                .filter(|k| !k.is_empty())
                .ok_or("the Secret has no key \"routingKey\"")?;
            Outgoing {
                url: c
                    .address
                    .clone()
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| PAGERDUTY_ENQUEUE.into()),
                content_type: json_type,
                bearer: None,
                body: pagerduty(m, &key),
            }
        }
    })
}

/// What the service's answer means: `Ok` when it took the message.
pub fn judge(kind: ChannelType, status: u16, body: &str) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", excerpt(body)));
    }
    if kind == ChannelType::Slack
        && let Ok(v) = serde_json::from_str::<Value>(body)
        && v.get("ok") == Some(&Value::Bool(false))
    {
        let why = v.get("error").and_then(Value::as_str).unwrap_or("unknown");
        return Err(format!("Slack refused the message: {why}"));
    }
    Ok(())
}

/// Whether trying again may help: the service is down, overloaded or slow, not refusing.
pub fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

pub fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.len() <= 300 {
        return body.to_string();
    }
    let mut end = 300;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &body[..end])
}

fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max_chars.saturating_sub(3)).collect();
    s.push_str("...");
    s
}

fn emoji(s: Severity) -> &'static str {
    match s {
        Severity::Info => ":large_green_circle:",
        Severity::Warning => ":large_yellow_circle:",
        Severity::Error => ":red_circle:",
    }
}

fn slack(m: &Message) -> Value {
    let fields: Vec<Value> = m
        .facts()
        .into_iter()
        .take(10)
        .map(|(k, v)| json!({"type": "mrkdwn", "text": cut(&format!("*{k}*\n{v}"), 2000)}))
        .collect();
    json!({
        "text": cut(&format!("{} {}: {}", emoji(m.severity), m.title(), m.text), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(&m.title(), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(&m.text, 3000)}},
            {"type": "section", "fields": fields},
        ],
    })
}

fn teams(m: &Message) -> Value {
    let color = match m.severity {
        Severity::Info => "Good",
        Severity::Warning => "Warning",
        Severity::Error => "Attention",
    };
    let facts: Vec<Value> = m
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": v}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": m.title(), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
                    {"type": "TextBlock", "text": m.text, "wrap": true},
                    {"type": "FactSet", "facts": facts},
                ],
            },
        }],
    })
}

fn discord(m: &Message) -> Value {
    let color = match m.severity {
        Severity::Info => 0x2E_B8_86,
        Severity::Warning => 0xDA_A0_38,
        Severity::Error => 0xD0_3A_3A,
    };
    let fields: Vec<Value> = m
        .facts()
        .into_iter()
        .take(25)
        .map(|(k, v)| json!({"name": cut(&k, 256), "value": cut(&v, 1024), "inline": true}))
        .collect();
    json!({
        "username": "fledge",
        "content": cut(&m.title(), 2000),
        "embeds": [{
            "title": cut(&m.title(), 256),
            "description": cut(&m.text, 4096),
            "color": color,
            "fields": fields,
            "timestamp": m.time.to_string(),
        }],
        // Text from a rollout never pings anyone.
        "allowed_mentions": {"parse": []},
    })
}

fn google_chat_text(m: &Message) -> String {
    let mut s = format!("*{}*\n{}", m.title(), m.text);
    for (k, v) in m.facts() {
        s.push_str(&format!("\n*{k}:* {v}"));
    }
    cut(&s, 4000)
}

fn pagerduty(m: &Message, key: &str) -> Value {
    // One incident per rollout revision: later news about it updates or resolves that incident.
    let dedup = cut(
        &format!("fledge/{}/{}/{}", m.namespace, m.rollout, m.revision),
        255,
    );
    if m.resolves {
        return json!({"routing_key": key, "event_action": "resolve", "dedup_key": dedup});
    }
    json!({
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": {
            "summary": cut(&format!("{}: {}", m.title(), m.text), 1024),
            "source": format!("fledge/{}/{}", m.namespace, m.rollout),
            "severity": m.severity.as_str(),
            "timestamp": m.time.to_string(),
            "component": m.rollout,
            "group": m.namespace,
            "class": m.event,
            "custom_details": m.json(),
        },
    })
}

fn cloud_event(m: &Message) -> Value {
    json!({
        "specversion": "1.0",
        "id": m.id,
        "source": format!("/apis/fledge.dev/v1alpha1/namespaces/{}/rollouts/{}", m.namespace, m.rollout),
        "type": format!("dev.fledge.rollout.{}", m.event.to_ascii_lowercase()),
        "subject": m.revision,
        "time": m.time.to_string(),
        "datacontenttype": "application/json",
        "data": m.json(),
    })
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
