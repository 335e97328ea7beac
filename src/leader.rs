//! Lease-based leader election, so that only one replica of fledge acts on rollouts at a time.
//!
//! The protocol is the one client-go uses with a `coordination.k8s.io/v1` Lease: the holder
//! writes `renewTime` every renew period, and anyone may take the Lease over once
//! `renewTime + leaseDurationSeconds` has passed. Every write carries the `resourceVersion` that
//! was read, so when two replicas race, the API server lets exactly one of them win (the other
//! gets 409 Conflict).
//!
//! Expiry compares the holder's `renewTime` with our own clock, so replicas need roughly
//! synchronized clocks (NTP); skew shorter than the renew period is harmless.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::{debug, info, instrument, warn};

use crate::{Error, Result};

const MIN_RENEW_PERIOD: Duration = Duration::from_millis(100);

/// Holds or competes for one named Lease on behalf of this replica.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    renew_period: Duration,
}

impl LeaderElector {
    /// `identity` must be unique per replica (the pod name is the usual choice); two replicas
    /// sharing one identity would both believe they lead.
    ///
    /// Renewing three times per lease duration lets a holder miss two renewals to a transient
    /// API error before a standby may take over.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
            // The floor only matters for a misconfigured near-zero duration, where it keeps the
            // loops from spinning against the API server.
            renew_period: (lease_duration / 3).max(MIN_RENEW_PERIOD),
        }
    }

    /// Waits until this replica holds the Lease.
    ///
    /// Only returns an error when retrying cannot help (RBAC denies access to Leases); network
    /// errors and lost races are retried every renew period.
    #[instrument(skip(self), fields(lease = %self.name, identity = %self.identity))]
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    info!("acquired leadership");
                    return Ok(());
                }
                Ok(false) => debug!("lease is held by another replica; waiting"),
                Err(Error::Kube(kube::Error::Api(status)))
                    if status.is_forbidden() || status.code == 401 =>
                {
                    return Err(Error::Leader(format!(
                        "not allowed to manage lease {}: {status}",
                        self.name
                    )));
                }
                Err(error) => warn!(%error, "acquiring lease failed; retrying"),
            }
            tokio::time::sleep(self.renew_period).await;
        }
    }

    /// Keeps the Lease renewed and returns only once leadership is lost.
    ///
    /// Call it right after [`acquire`](Self::acquire) and stop reconciling as soon as it returns:
    /// it returns when another identity holds the Lease, or when renewals have failed for a whole
    /// lease duration, at which point a standby may already have taken over.
    #[instrument(skip(self), fields(lease = %self.name, identity = %self.identity))]
    pub async fn renew_until_lost(&self) -> Error {
        // Until the first renewal succeeds, count from the call: acquire wrote renewTime just
        // before, so this errs on the side of holding slightly too long only by that gap, and the
        // immediate first renewal below shrinks the gap to one round trip.
        let mut last_renewed = Instant::now();
        // The Lease as last written by us; its resourceVersion makes the next write conditional,
        // and it is dropped to force a fresh read after a conflict.
        let mut cached: Option<Lease> = None;
        let retry_period = self.renew_period / 3;
        let mut wait = Duration::ZERO;

        loop {
            tokio::time::sleep(wait).await;
            // Taken before the request: the API server stamps renewTime no earlier than this, so
            // the lease cannot expire before `started + lease_duration`.
            let started = Instant::now();
            match self.try_renew(cached.take()).await {
                Ok(Renewal::Renewed(lease)) => {
                    debug!("renewed lease");
                    last_renewed = started;
                    cached = Some(*lease);
                    wait = self.renew_period;
                }
                Ok(Renewal::Lost { holder }) => {
                    warn!(holder = holder.as_deref(), "lost leadership");
                    return Error::Leader(format!(
                        "lost leadership: lease {} is now held by {}",
                        self.name,
                        holder.as_deref().unwrap_or("nobody")
                    ));
                }
                Err(error) => {
                    let held_for = last_renewed.elapsed();
                    if held_for >= self.lease_duration {
                        warn!(%error, "lost leadership: lease expired while renewals failed");
                        return Error::Leader(format!(
                            "lost leadership: could not renew lease {} for {:?}: {error}",
                            self.name, held_for
                        ));
                    }
                    warn!(%error, "renewing lease failed; retrying");
                    // Retry sooner than a normal renewal, but never sleep past the expiry so the
                    // loss is reported as soon as it happens.
                    wait = retry_period.min(self.lease_duration - held_for);
                }
            }
        }
    }

    /// Hands the Lease back so a standby can take over at once instead of waiting for expiry.
    ///
    /// Best effort, for graceful shutdown: failures are logged, and if we no longer hold the
    /// Lease it is left alone.
    #[instrument(skip(self), fields(lease = %self.name, identity = %self.identity))]
    pub async fn release(&self) {
        let mut lease = match self.api.get_opt(&self.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, "reading lease for release failed");
                return;
            }
        };
        if holder(&lease) != Some(self.identity.as_str()) {
            return;
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released leadership"),
            Err(error) => warn!(%error, "releasing lease failed"),
        }
    }

    /// One attempt to become the holder; `Ok(false)` means someone else holds it or won a race.
    async fn try_acquire(&self) -> Result<bool> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: None,
            };
            let lease = claim(lease, &self.identity, now, self.lease_duration_seconds());
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
                Err(error) => Err(error.into()),
            };
        };
        if !can_acquire(&lease, &self.identity, now) {
            return Ok(false);
        }
        let lease = claim(lease, &self.identity, now, self.lease_duration_seconds());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// One renewal, re-reading the Lease when the cached copy is missing or stale.
    async fn try_renew(&self, cached: Option<Lease>) -> Result<Renewal> {
        // One write from the cache, then a few re-reads: a conflict from a concurrent no-op
        // update (labels, managedFields) must not count as a failed renewal.
        const ATTEMPTS: usize = 3;
        let mut cached = cached;
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let lease = match cached.take() {
                Some(lease) => lease,
                None => match self.api.get_opt(&self.name).await? {
                    Some(lease) => lease,
                    // Someone deleted it; whoever recreates it first leads, and that may not be us.
                    None => return Ok(Renewal::Lost { holder: None }),
                },
            };
            if holder(&lease) != Some(self.identity.as_str()) {
                return Ok(Renewal::Lost {
                    holder: holder(&lease).map(str::to_owned),
                });
            }
            let mut lease = lease;
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            spec.lease_duration_seconds = Some(self.lease_duration_seconds());
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(written) => return Ok(Renewal::Renewed(Box::new(written))),
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    debug!(
                        resource_version = lease.resource_version(),
                        "lease changed; re-reading"
                    );
                    last_error = Some(kube::Error::Api(status));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(last_error.map_or_else(
            || Error::Leader(format!("renewing lease {} kept conflicting", self.name)),
            Error::from,
        ))
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1)
    }
}

/// Outcome of one renewal attempt.
enum Renewal {
    /// We still lead; the Lease as written, carrying the resourceVersion for the next write.
    Renewed(Box<Lease>),
    /// Another identity (or none, if the Lease was deleted or released) holds the Lease.
    Lost { holder: Option<String> },
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|spec| spec.holder_identity.as_deref())
        .filter(|holder| !holder.is_empty())
}

/// Whether `identity` may write itself into `lease` as holder at `now`.
///
/// A Lease is free when nobody holds it, when we already hold it, or when its holder has not
/// renewed within `leaseDurationSeconds`. A held Lease missing `renewTime` or
/// `leaseDurationSeconds` cannot be shown to be fresh, so it counts as expired; otherwise a
/// holder that crashed while writing a bad Lease would block election forever.
fn can_acquire(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(current) = holder(lease) else {
        return true;
    };
    if current == identity {
        return true;
    }
    let Some(spec) = lease.spec.as_ref() else {
        return true;
    };
    let (Some(renewed), Some(seconds)) = (spec.renew_time.as_ref(), spec.lease_duration_seconds)
    else {
        return true;
    };
    match renewed
        .0
        .checked_add(SignedDuration::from_secs(i64::from(seconds)))
    {
        Ok(expires) => expires <= now,
        // Only reachable with a renewTime near the end of representable time: not expired.
        Err(_) => false,
    }
}

/// `lease` rewritten with `identity` as holder, keeping its metadata (and so its
/// resourceVersion, which makes the write conditional).
///
/// A change of holder bumps `leaseTransitions` and `acquireTime`; re-claiming our own Lease, as
/// after a restart with the same identity, only renews it.
fn claim(mut lease: Lease, identity: &str, now: Timestamp, duration_seconds: i32) -> Lease {
    let previous = holder(&lease).map(str::to_owned);
    let is_new = lease.spec.is_none();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if previous.as_deref() != Some(identity) {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(if is_new {
            0
        } else {
            spec.lease_transitions.unwrap_or(0).saturating_add(1)
        });
    }
    spec.holder_identity = Some(identity.to_owned());
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration_seconds);
    // The leader's version, for `kubectl fledge version`: the Lease is the one object every
    // running installation has.
    lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            VERSION_ANNOTATION.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        );
    lease
}

/// Annotation on the leader Lease: the version of the controller holding it.
pub const VERSION_ANNOTATION: &str = "fledge.dev/controller-version";

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid timestamp")
    }

    fn lease(holder: Option<&str>, renewed_at: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("fledge".to_owned()),
                resource_version: Some("42".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                acquire_time: Some(MicroTime(ts(renewed_at))),
                renew_time: Some(MicroTime(ts(renewed_at))),
                lease_duration_seconds: Some(duration),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn free_lease_can_be_acquired() {
        let now = ts(1_000);
        assert!(can_acquire(&lease(None, 995, 15), "me", now));
        assert!(can_acquire(&lease(Some(""), 995, 15), "me", now));
        let no_spec = Lease {
            spec: None,
            ..lease(None, 0, 0)
        };
        assert!(can_acquire(&no_spec, "me", now));
    }

    #[test]
    fn expired_lease_can_be_acquired() {
        assert!(can_acquire(&lease(Some("other"), 980, 15), "me", ts(1_000)));
        // Expiry is inclusive: at exactly renewTime + duration the holder is out of time.
        assert!(can_acquire(&lease(Some("other"), 985, 15), "me", ts(1_000)));
    }

    #[test]
    fn fresh_lease_held_by_another_cannot_be_acquired() {
        assert!(!can_acquire(
            &lease(Some("other"), 995, 15),
            "me",
            ts(1_000)
        ));
    }

    #[test]
    fn lease_held_by_me_can_be_acquired() {
        assert!(can_acquire(&lease(Some("me"), 995, 15), "me", ts(1_000)));
    }

    #[test]
    fn held_lease_without_renew_time_counts_as_expired() {
        let mut l = lease(Some("other"), 995, 15);
        if let Some(spec) = l.spec.as_mut() {
            spec.renew_time = None;
        }
        assert!(can_acquire(&l, "me", ts(1_000)));
    }

    #[test]
    fn claiming_from_another_holder_counts_a_transition() {
        let claimed = claim(lease(Some("other"), 980, 15), "me", ts(1_000), 15);
        let spec = claimed.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(1_000))));
        assert_eq!(spec.renew_time, Some(MicroTime(ts(1_000))));
        assert_eq!(claimed.metadata.resource_version.as_deref(), Some("42"));
        let annotations = claimed.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations.get(VERSION_ANNOTATION).map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn reclaiming_my_own_lease_only_renews() {
        let claimed = claim(lease(Some("me"), 995, 15), "me", ts(1_000), 15);
        let spec = claimed.spec.expect("spec");
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(995))));
        assert_eq!(spec.renew_time, Some(MicroTime(ts(1_000))));
    }

    #[test]
    fn claiming_a_new_lease_starts_at_zero_transitions() {
        let new = Lease {
            metadata: ObjectMeta {
                name: Some("fledge".to_owned()),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        let spec = claim(new, "me", ts(1_000), 15).spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }
}

/// The elector against a mocked API server, checking the requests it sends.
#[cfg(test)]
mod api_tests {
    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock::{self, Handle, SendResponse};

    const LEASE_URL: &str = "/apis/coordination.k8s.io/v1/namespaces/fledge-system/leases";

    type ApiHandle = Handle<Request<Body>, Response<Body>>;

    fn elector(lease_duration: Duration) -> (LeaderElector, ApiHandle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let elector = LeaderElector::new(client, "fledge-system", "fledge", "me", lease_duration);
        (elector, handle)
    }

    fn lease_json(holder: &str, renewed: Timestamp, transitions: i32) -> Value {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("fledge".to_owned()),
                namespace: Some("fledge-system".to_owned()),
                resource_version: Some("7".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(15),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        };
        serde_json::to_value(&lease).expect("serialize lease")
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": reason, "code": code, "message": reason})
    }

    /// Waits for the next request and returns its method, path and JSON body.
    async fn next(handle: &mut ApiHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
        let (request, send) = handle.next_request().await.expect("a request");
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let body = crate::test_support::json_body(request.into_body()).await;
        (method, path, body, send)
    }

    use crate::test_support::reply;

    #[tokio::test]
    async fn acquire_creates_a_missing_lease() {
        let (elector, mut handle) = elector(Duration::from_secs(15));
        let task = tokio::spawn(async move { elector.acquire().await });

        let (method, path, _, send) = next(&mut handle).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::GET, &*format!("{LEASE_URL}/fledge"))
        );
        reply(send, 404, &status(404, "NotFound"));

        let (method, path, body, send) = next(&mut handle).await;
        assert_eq!((method, path.as_str()), (Method::POST, LEASE_URL));
        assert_eq!(body["spec"]["holderIdentity"], "me");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(body["spec"]["leaseTransitions"], 0);
        assert!(body["spec"]["renewTime"].is_string(), "{body}");
        reply(send, 201, &body);

        task.await.expect("join").expect("acquired");
    }

    #[tokio::test]
    async fn takeover_is_conditional_and_backs_off_on_conflict() {
        let (elector, mut handle) = elector(Duration::from_millis(300));
        let task = tokio::spawn(async move { elector.acquire().await });
        let expired = Timestamp::now() - SignedDuration::from_secs(60);

        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        reply(send, 200, &lease_json("other", expired, 2));

        let (method, path, body, send) = next(&mut handle).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::PUT, &*format!("{LEASE_URL}/fledge"))
        );
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["spec"]["holderIdentity"], "me");
        assert_eq!(body["spec"]["leaseTransitions"], 3);
        reply(send, 409, &status(409, "Conflict"));

        // The winner now holds a fresh lease: we must only read, never write.
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        reply(send, 200, &lease_json("winner", Timestamp::now(), 3));
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        assert!(!task.is_finished());
        task.abort();
        drop(send);
    }

    #[tokio::test]
    async fn acquire_fails_fast_when_forbidden() {
        let (elector, mut handle) = elector(Duration::from_secs(15));
        let task = tokio::spawn(async move { elector.acquire().await });
        let (_, _, _, send) = next(&mut handle).await;
        reply(send, 403, &status(403, "Forbidden"));
        let result = task.await.expect("join");
        assert!(matches!(result, Err(Error::Leader(_))), "{result:?}");
    }

    #[tokio::test]
    async fn renewal_reports_a_new_holder() {
        let (elector, mut handle) = elector(Duration::from_secs(15));
        let task = tokio::spawn(async move { elector.renew_until_lost().await });
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        reply(send, 200, &lease_json("other", Timestamp::now(), 4));
        let error = task.await.expect("join");
        assert!(
            matches!(&error, Error::Leader(m) if m.contains("held by other")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn renewal_rereads_on_conflict_and_writes_from_the_response() {
        let (elector, mut handle) = elector(Duration::from_millis(300));
        let task = tokio::spawn(async move { elector.renew_until_lost().await });

        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        reply(send, 200, &lease_json("me", Timestamp::now(), 1));
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PUT);
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        reply(send, 409, &status(409, "Conflict"));

        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::GET);
        let mut fresh = lease_json("me", Timestamp::now(), 1);
        fresh["metadata"]["resourceVersion"] = json!("8");
        reply(send, 200, &fresh);
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PUT);
        assert_eq!(body["metadata"]["resourceVersion"], "8");
        let mut written = body.clone();
        written["metadata"]["resourceVersion"] = json!("9");
        reply(send, 200, &written);

        // The next renewal writes straight from what the server returned, without a read.
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PUT);
        assert_eq!(body["metadata"]["resourceVersion"], "9");
        assert!(!task.is_finished());
        task.abort();
        drop(send);
    }

    #[tokio::test]
    async fn renewal_gives_up_once_the_lease_would_have_expired() {
        let lease_duration = Duration::from_millis(300);
        let (elector, mut handle) = elector(lease_duration);
        let started = Instant::now();
        let task = tokio::spawn(async move { elector.renew_until_lost().await });
        let server = tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                reply(send, 500, &status(500, "InternalError"));
            }
        });
        let error = task.await.expect("join");
        let elapsed = started.elapsed();
        assert!(
            matches!(&error, Error::Leader(m) if m.contains("could not renew")),
            "{error}"
        );
        assert!(elapsed >= lease_duration, "gave up after {elapsed:?}");
        assert!(
            elapsed < lease_duration * 3,
            "gave up only after {elapsed:?}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn release_clears_the_holder() {
        let (elector, mut handle) = elector(Duration::from_secs(15));
        let task = tokio::spawn(async move { elector.release().await });
        let (_, _, _, send) = next(&mut handle).await;
        reply(send, 200, &lease_json("me", Timestamp::now(), 1));
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PUT);
        assert!(body["spec"].get("holderIdentity").is_none(), "{body}");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        reply(send, 200, &body);
        task.await.expect("join");
    }

    #[tokio::test]
    async fn release_leaves_someone_elses_lease_alone() {
        let (elector, mut handle) = elector(Duration::from_secs(15));
        let task = tokio::spawn(async move { elector.release().await });
        let (_, _, _, send) = next(&mut handle).await;
        reply(send, 200, &lease_json("other", Timestamp::now(), 1));
        task.await.expect("join");
    }
}
