//! Each payload against the shape its service documents.

use super::*;
use crate::api::notification::{SlackOptions, WebhookOptions};

fn message() -> Message {
    Message {
        id: "shop/web/abc123/0/Aborted".into(),
        namespace: "shop".into(),
        rollout: "web".into(),
        event: "Aborted".into(),
        severity: Severity::Error,
        revision: "abc123".into(),
        text: "aborted, all traffic back on the stable revision".into(),
        details: BTreeMap::from([
            ("metric".to_string(), "error-rate".to_string()),
            ("value".to_string(), "0.5".to_string()),
            ("condition".to_string(), "result >= 0.05".to_string()),
        ]),
        time: "2026-11-30T09:00:00Z".parse().unwrap(),
        resolves: false,
    }
}

fn channel(kind: ChannelType) -> ChannelConfig {
    ChannelConfig {
        kind,
        secret: ("shop".into(), "s".into()),
        slack: None,
        webhook: None,
        rate_per_minute: 20,
    }
}

fn address(url: &str) -> Credentials {
    Credentials {
        address: Some(url.into()),
        ..Default::default()
    }
}

fn obj<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or_else(|| panic!("no {key:?} in {v}"))
}

#[test]
fn slack_incoming_webhook_gets_text_and_blocks() {
    let o = request(
        &channel(ChannelType::Slack),
        &address("https://hooks.slack.com/services/T/B/X"),
        &message(),
    )
    .unwrap();
    assert_eq!(o.url, "https://hooks.slack.com/services/T/B/X");
    assert_eq!(o.bearer, None);
    assert!(obj(&o.body, "text").as_str().unwrap().contains("Aborted"));
    let blocks = obj(&o.body, "blocks").as_array().unwrap();
    assert_eq!(obj(&blocks[0], "type"), "header");
    assert_eq!(obj(obj(&blocks[0], "text"), "type"), "plain_text");
    assert_eq!(obj(&blocks[1], "type"), "section");
    assert_eq!(obj(obj(&blocks[1], "text"), "type"), "mrkdwn");
    let fields = obj(&blocks[2], "fields").as_array().unwrap();
    assert!(fields.len() <= 10, "Slack takes at most 10 fields");
    assert!(
        fields
            .iter()
            .any(|f| f["text"].as_str().unwrap().contains("0.5")),
        "the failed metric's value is shown: {fields:?}"
    );
    assert!(o.body.get("channel").is_none());
}

#[test]
fn slack_bot_token_posts_to_chat_post_message_with_a_channel() {
    let mut ch = channel(ChannelType::Slack);
    let creds = Credentials {
        token: Some("xoxb-1".into()),
        ..Default::default()
    };
    assert!(request(&ch, &creds, &message()).is_err(), "no channel");
    ch.slack = Some(SlackOptions {
        channel: Some("#deploys".into()),
    });
    let o = request(&ch, &creds, &message()).unwrap();
    assert_eq!(o.url, SLACK_POST_MESSAGE);
    assert_eq!(o.bearer.as_deref(), Some("xoxb-1"));
    assert_eq!(obj(&o.body, "channel"), "#deploys");
    assert!(o.body.get("blocks").is_some());
    // chat.postMessage answers 200 with ok: false when it refuses.
    assert!(judge(ChannelType::Slack, 200, r#"{"ok":true,"ts":"1"}"#).is_ok());
    let refused = judge(
        ChannelType::Slack,
        200,
        r#"{"ok":false,"error":"channel_not_found"}"#,
    );
    assert!(refused.unwrap_err().contains("channel_not_found"));
    // The incoming webhook answers a plain "ok".
    assert!(judge(ChannelType::Slack, 200, "ok").is_ok());
}

#[test]
fn teams_gets_a_message_with_an_adaptive_card() {
    let o = request(
        &channel(ChannelType::Msteams),
        &address("https://prod.westeurope.logic.azure.com/workflows/x"),
        &message(),
    )
    .unwrap();
    assert_eq!(obj(&o.body, "type"), "message");
    let a = &obj(&o.body, "attachments").as_array().unwrap()[0];
    assert_eq!(
        obj(a, "contentType"),
        "application/vnd.microsoft.card.adaptive"
    );
    let card = obj(a, "content");
    assert_eq!(obj(card, "type"), "AdaptiveCard");
    assert!(obj(card, "version").is_string());
    assert!(
        obj(card, "$schema")
            .as_str()
            .unwrap()
            .contains("adaptive-card")
    );
    let body = obj(card, "body").as_array().unwrap();
    assert_eq!(obj(&body[0], "type"), "TextBlock");
    let facts = obj(&body[2], "facts").as_array().unwrap();
    assert!(
        facts
            .iter()
            .all(|f| f["title"].is_string() && f["value"].is_string())
    );
}

#[test]
fn discord_gets_content_and_an_embed_and_pings_nobody() {
    let mut m = message();
    m.text = "x".repeat(5000);
    let o = request(
        &channel(ChannelType::Discord),
        &address("https://discord.com/api/webhooks/1/t"),
        &m,
    )
    .unwrap();
    assert!(obj(&o.body, "content").as_str().unwrap().chars().count() <= 2000);
    let e = &obj(&o.body, "embeds").as_array().unwrap()[0];
    assert!(obj(e, "title").as_str().unwrap().chars().count() <= 256);
    assert!(obj(e, "description").as_str().unwrap().chars().count() <= 4096);
    assert!(obj(e, "color").is_u64());
    let fields = obj(e, "fields").as_array().unwrap();
    assert!(fields.len() <= 25);
    assert!(
        fields
            .iter()
            .all(|f| f["name"].is_string() && f["value"].is_string())
    );
    assert_eq!(obj(obj(&o.body, "allowed_mentions"), "parse"), &json!([]));
    // Discord answers 204 No Content.
    assert!(judge(ChannelType::Discord, 204, "").is_ok());
}

#[test]
fn google_chat_gets_text() {
    let o = request(
        &channel(ChannelType::Googlechat),
        &address("https://chat.googleapis.com/v1/spaces/S/messages?key=K&token=T"),
        &message(),
    )
    .unwrap();
    let text = obj(&o.body, "text").as_str().unwrap();
    assert!(text.starts_with("*Rollout shop/web: Aborted*"), "{text}");
    assert!(text.contains("0.5") && text.contains("result >= 0.05"));
    assert_eq!(o.body.as_object().unwrap().len(), 1);
}

#[test]
fn webhook_gets_fledge_json_or_a_structured_cloud_event() {
    let mut ch = channel(ChannelType::Webhook);
    let creds = Credentials {
        address: Some("https://hooks.example/x".into()),
        token: Some("t0k".into()),
        ..Default::default()
    };
    let o = request(&ch, &creds, &message()).unwrap();
    assert_eq!(o.bearer.as_deref(), Some("t0k"));
    assert!(o.content_type.starts_with("application/json"));
    assert_eq!(obj(&o.body, "event"), "Aborted");
    assert_eq!(obj(obj(&o.body, "details"), "value"), "0.5");

    ch.webhook = Some(WebhookOptions {
        cloud_events: Some(true),
    });
    let o = request(&ch, &creds, &message()).unwrap();
    assert!(o.content_type.starts_with("application/cloudevents+json"));
    // The four required context attributes, and the optional ones fledge sets.
    assert_eq!(obj(&o.body, "specversion"), "1.0");
    assert!(!obj(&o.body, "id").as_str().unwrap().is_empty());
    assert_eq!(
        obj(&o.body, "source"),
        "/apis/fledge.dev/v1alpha1/namespaces/shop/rollouts/web"
    );
    assert_eq!(obj(&o.body, "type"), "dev.fledge.rollout.aborted");
    assert_eq!(obj(&o.body, "time"), "2026-11-30T09:00:00Z");
    assert_eq!(obj(&o.body, "datacontenttype"), "application/json");
    assert_eq!(obj(obj(&o.body, "data"), "rollout"), "web");
}

#[test]
fn pagerduty_triggers_an_alert_per_revision_and_a_promotion_resolves_it() {
    let creds = Credentials {
        routing_key: Some("R0UTING".into()),
        ..Default::default()
    };
    let ch = channel(ChannelType::Pagerduty);
    let o = request(&ch, &creds, &message()).unwrap();
    assert_eq!(o.url, PAGERDUTY_ENQUEUE);
    assert_eq!(obj(&o.body, "routing_key"), "R0UTING");
    assert_eq!(obj(&o.body, "event_action"), "trigger");
    assert_eq!(obj(&o.body, "dedup_key"), "fledge/shop/web/abc123");
    let p = obj(&o.body, "payload");
    assert!(obj(p, "summary").as_str().unwrap().chars().count() <= 1024);
    assert_eq!(obj(p, "source"), "fledge/shop/web");
    assert!(
        ["critical", "error", "warning", "info"].contains(&obj(p, "severity").as_str().unwrap())
    );
    assert_eq!(
        obj(obj(p, "custom_details"), "details")["metric"],
        "error-rate"
    );

    let mut m = message();
    m.resolves = true;
    let o = request(&ch, &creds, &m).unwrap();
    assert_eq!(obj(&o.body, "event_action"), "resolve");
    assert_eq!(obj(&o.body, "dedup_key"), "fledge/shop/web/abc123");
    assert!(request(&ch, &Credentials::default(), &message()).is_err());
    assert!(judge(ChannelType::Pagerduty, 202, r#"{"status":"success"}"#).is_ok());
}

#[test]
fn answers_other_than_2xx_fail_and_only_overload_is_retried() {
    assert!(judge(ChannelType::Webhook, 500, "boom").is_err());
    assert!(judge(ChannelType::Webhook, 404, "no_service").is_err());
    assert!(retryable(503) && retryable(429) && retryable(408));
    assert!(!retryable(400) && !retryable(403) && !retryable(404));
}
