//! One message to one channel: read the channel and its Secret, POST, read the answer. Secret
//! values never leave this file except in the request itself: every text it returns is redacted.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::payload::{self, Credentials, Message};
use crate::api::notification::{ChannelConfig, ClusterNotificationChannel, NotificationChannel};

/// The longest one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A channel ready to send to.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub config: ChannelConfig,
    pub credentials: Credentials,
}

/// A failed send: what to say (redacted) and whether trying again may help.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub text: String,
    pub retry: bool,
}

/// The service's answer to a message it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Reads `target` (`NotificationChannel/<name>` in `namespace`, or
/// `ClusterNotificationChannel/<name>`) and its Secret.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    target: &str,
) -> Result<Resolved, Failure> {
    let not_found = |e: kube::Error| {
        let retry = !matches!(&e, kube::Error::Api(s) if s.code == 403);
        Failure {
            text: format!("reading {target}: {e}"),
            retry,
        }
    };
    let config = match target.split_once('/') {
        Some(("NotificationChannel", name)) => {
            Api::<NotificationChannel>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(not_found)?
                .spec
                .config(namespace)
        }
        Some(("ClusterNotificationChannel", name)) => {
            Api::<ClusterNotificationChannel>::all(client.clone())
                .get(name)
                .await
                .map_err(not_found)?
                .spec
                .config()
        }
        _ => {
            return Err(Failure {
                text: format!("{target:?} names no channel"),
                retry: false,
            });
        }
    };
    let (ns, name) = &config.secret;
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 403 => Failure {
                text: format!(
                    "fledge may not read Secret {name:?} in namespace {ns:?}: with the Helm chart, \
                     set rbac.notifications.secrets=true"
                ),
                retry: false,
            },
            e => Failure {
                text: format!("reading Secret {name:?} in namespace {ns:?}: {e}"),
                retry: true,
            },
        })?;
    let key = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(k).cloned()))
            .map(|s| s.trim().to_string())
    };
    Ok(Resolved {
        credentials: Credentials {
            address: key("address"),
            token: key("token"),
            routing_key: key("routingKey"),
        },
        config,
    })
}

/// POSTs `m` to the resolved channel and judges the answer.
pub async fn send(http: &reqwest::Client, r: &Resolved, m: &Message) -> Result<Answer, Failure> {
    let secrets = r.credentials.secrets();
    let redact = |text: String| redact(text, &secrets);
    let out = payload::request(&r.config, &r.credentials, m).map_err(|e| Failure {
        text: redact(e),
        retry: false,
    })?;
    let url = reqwest::Url::parse(&out.url).map_err(|e| Failure {
        text: redact(format!("the channel's address is not a URL: {e}")),
        retry: false,
    })?;
    let mut request = http
        .post(url)
        .timeout(TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, out.content_type)
        .body(out.body.to_string());
    if let Some(token) = &out.bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| Failure {
        text: redact(crate::analysis::providers::error_text(&e)),
        retry: true,
    })?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut stream = response;
    while let Ok(Some(chunk)) = stream.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match payload::judge(r.config.kind, status, &text) {
        Ok(()) => Ok(Answer {
            status,
            body: redact(payload::excerpt(&text)),
        }),
        Err(e) => Err(Failure {
            text: redact(e),
            retry: payload::retryable(status),
        }),
    }
}

/// Sends a test message through `target` with the caller's credentials, as
/// `kubectl fledge notify test` does; returns the service's answer ("HTTP 200: ok").
pub async fn test(client: &kube::Client, namespace: &str, target: &str) -> Result<String, String> {
    let resolved = resolve(client, namespace, target)
        .await
        .map_err(|f| f.text)?;
    // The person running the test may reach what they like: no denied ranges.
    let denied = crate::analysis::providers::network::Denied(std::sync::Arc::new(Vec::new()));
    let http = crate::analysis::providers::http_clients(denied)?.verifying;
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let message = Message {
        id: format!(
            "{namespace}/test/{}",
            k8s_openapi::jiff::Timestamp::now().as_millisecond()
        ),
        namespace: namespace.to_string(),
        rollout: "test".into(),
        event: "Test".into(),
        severity: crate::api::notification::Severity::Info,
        revision: String::new(),
        text: format!("a test message from `kubectl fledge notify test`, sent by {user}"),
        details: Default::default(),
        time: k8s_openapi::jiff::Timestamp::now(),
        resolves: false,
    };
    let answer = send(&http, &resolved, &message).await.map_err(|f| f.text)?;
    Ok(format!("HTTP {}: {}", answer.status, answer.body))
}

/// `text` with every secret value (and any URL-encoded form of it) replaced.
pub fn redact(mut text: String, secrets: &[String]) -> String {
    for s in secrets {
        if s.len() >= 4 {
            text = text.replace(s.as_str(), "[redacted]");
            if let Ok(u) = reqwest::Url::parse(s) {
                text = text.replace(u.as_str(), "[redacted]");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_addresses_and_tokens() {
        let secrets = vec![
            "https://hooks.slack.com/services/T/B/XYZ".to_string(),
            "xoxb-secret".to_string(),
        ];
        let text =
            "POST https://hooks.slack.com/services/T/B/XYZ failed; token xoxb-secret refused"
                .to_string();
        let shown = redact(text, &secrets);
        assert!(
            !shown.contains("XYZ") && !shown.contains("xoxb-secret"),
            "{shown}"
        );
        assert_eq!(shown.matches("[redacted]").count(), 2);
    }
}
