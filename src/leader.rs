//! Lease-based leader election, so that only one replica of fledge acts on rollouts at a time.
//!
//! The protocol is client-go's, on a `coordination.k8s.io/v1` Lease. The leader rewrites the
//! Lease every retry period. Every write carries the `resourceVersion` that was read, so when two
//! replicas race, the API server lets exactly one of them win (the other gets 409 Conflict).
//!
//! No replica compares a timestamp in the Lease with its own wall clock: `renewTime` was written
//! by another machine, whose clock may be minutes or hours off. A standby only notes, on its own
//! monotonic clock, when it last saw the Lease's spec change, and may take the Lease over once it
//! has seen no change for the holder's `leaseDurationSeconds`. The leader stops acting when it
//! has not renewed within its renew deadline, counted on its own monotonic clock from when it
//! sent its last successful renewal, which is before any standby can have seen that renewal.
//! So wall clocks may disagree arbitrarily; what must roughly agree is how fast the clocks run:
//! the ratio of lease duration to renew deadline (1.5 by default) is the tolerated ratio.
//!
//! Every API call has a timeout shorter than the renew deadline, so a request stuck on a dead
//! connection cannot keep the leader believing it leads.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use crate::{Error, Result};

/// How long leadership lasts and how often it is checked, as client-go's `LeaseDuration`,
/// `RenewDeadline` and `RetryPeriod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

impl Default for Timing {
    /// client-go's defaults: 15s, 10s, 2s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// `lease_duration`: how long a standby waits, from when it last saw the Lease change, before
    /// it takes the Lease over. `renew_deadline`: how long the leader keeps acting without a
    /// successful renewal. `retry_period`: the time between attempts to acquire or renew.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self> {
        // Standbys count the whole seconds the Lease stores, not what we were given.
        if lease_duration < Duration::from_secs(1)
            || lease_duration.subsec_nanos() != 0
            || i32::try_from(lease_duration.as_secs()).is_err()
        {
            return Err(Error::Leader(format!(
                "the lease duration ({lease_duration:?}) must be a whole number of seconds, at \
                 least 1s: the Lease stores whole seconds"
            )));
        }
        if renew_deadline >= lease_duration {
            return Err(Error::Leader(format!(
                "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration \
                 ({lease_duration:?}): the leader must stop acting before a standby may take over"
            )));
        }
        if retry_period.is_zero() || retry_period >= renew_deadline {
            return Err(Error::Leader(format!(
                "the retry period ({retry_period:?}) must be above zero and shorter than the \
                 renew deadline ({renew_deadline:?}): a failed renewal must be retried before the \
                 leader gives up"
            )));
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// The limit on each API call. A renewal stuck on a dead connection is abandoned in time for
    /// another attempt, on a fresh connection, before the renew deadline.
    fn call_timeout(&self) -> Duration {
        self.renew_deadline / 2
    }

    fn lease_duration_seconds(&self) -> i32 {
        // Validated in `new` to fit.
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Where the timestamps written into the Lease come from. They are for people and other tools
/// reading the Lease: no decision here depends on them.
type WallClock = Box<dyn Fn() -> Timestamp + Send + Sync>;

/// Holds or competes for one named Lease on behalf of this replica.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    wall_clock: WallClock,
    /// Left by a successful [`acquire`](Self::acquire) for
    /// [`renew_until_lost`](Self::renew_until_lost): when the write that made us leader was
    /// sent, and the Lease as the API server returned it.
    acquired: Mutex<Option<(Instant, Lease)>>,
}

impl LeaderElector {
    /// `identity` must be unique per replica (the pod name is the usual choice); two replicas
    /// sharing one identity would both believe they lead.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            wall_clock: Box::new(Timestamp::now),
            acquired: Mutex::new(None),
        }
    }

    /// The same elector, writing timestamps from `clock` instead of the system's wall clock.
    #[cfg(test)]
    fn with_wall_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.wall_clock = Box::new(clock);
        self
    }

    /// Waits until this replica holds the Lease.
    ///
    /// Only returns an error when retrying cannot help (RBAC denies access to Leases); network
    /// errors and lost races are retried every retry period.
    #[instrument(skip(self), fields(lease = %self.name, identity = %self.identity))]
    pub async fn acquire(&self) -> Result<()> {
        let mut observed = None;
        loop {
            match self.try_acquire(&mut observed).await {
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
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Keeps the Lease renewed and returns only once leadership is lost.
    ///
    /// Call it right after [`acquire`](Self::acquire) and stop reconciling as soon as it returns:
    /// it returns when another identity holds the Lease, or when no renewal has succeeded within
    /// the renew deadline, which is before a standby may take over.
    #[instrument(skip(self), fields(lease = %self.name, identity = %self.identity))]
    pub async fn renew_until_lost(&self) -> Error {
        let acquired = self
            .acquired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // When the last successful write was sent: the API server applied it no earlier, so no
        // standby can have seen it before, and none may take over before this plus the lease
        // duration. The Lease as last written by us rides along: its resourceVersion makes the
        // next write conditional, and it is dropped to force a fresh read after a failure.
        // Without an acquire, count from now and renew at once: that first renewal finds out
        // whether we lead at all.
        let (mut renewed_at, mut cached, mut next_attempt) = match acquired {
            Some((at, lease)) => (at, Some(lease), at + self.timing.retry_period),
            None => (Instant::now(), None, Instant::now()),
        };
        let mut last_error = None;

        loop {
            let deadline = renewed_at + self.timing.renew_deadline;
            tokio::time::sleep_until(next_attempt.min(deadline)).await;
            if Instant::now() >= deadline {
                let error = last_error.unwrap_or_else(|| "no answer".to_owned());
                warn!(%error, "lost leadership: no renewal succeeded within the renew deadline");
                return Error::Leader(format!(
                    "lost leadership: could not renew lease {} within the renew deadline of \
                     {:?}: {error}",
                    self.name, self.timing.renew_deadline
                ));
            }
            let started = Instant::now();
            // Attempts start once per retry period, or at once after one that took longer.
            next_attempt = started + self.timing.retry_period;
            match tokio::time::timeout_at(deadline, self.try_renew(cached.take())).await {
                Ok(Ok(Renewal::Renewed(lease))) => {
                    debug!("renewed lease");
                    renewed_at = started;
                    cached = Some(*lease);
                    last_error = None;
                }
                Ok(Ok(Renewal::Lost { holder })) => {
                    warn!(holder = holder.as_deref(), "lost leadership");
                    return Error::Leader(format!(
                        "lost leadership: lease {} is now held by {}",
                        self.name,
                        holder.as_deref().unwrap_or("nobody")
                    ));
                }
                Ok(Err(error)) => {
                    warn!(%error, "renewing lease failed; retrying");
                    last_error = Some(error.to_string());
                }
                Err(_) => last_error = Some("a renewal was still unanswered".to_owned()),
            }
        }
    }

    /// Hands the Lease back so a standby can take over at once instead of waiting for expiry.
    ///
    /// Best effort, for graceful shutdown: failures are logged, and if we no longer hold the
    /// Lease it is left alone.
    #[instrument(skip(self), fields(lease = %self.name, identity = %self.identity))]
    pub async fn release(&self) {
        let mut lease = match self.call(self.api.get_opt(&self.name)).await {
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
        spec.renew_time = Some(MicroTime((self.wall_clock)()));
        match self
            .call(self.api.replace(&self.name, &PostParams::default(), &lease))
            .await
        {
            Ok(_) => info!("released leadership"),
            Err(error) => warn!(%error, "releasing lease failed"),
        }
    }

    /// One attempt to become the holder; `Ok(false)` means someone else holds it or won a race.
    ///
    /// `observed` is the Lease's spec as this standby last saw it change, and when.
    async fn try_acquire(&self, observed: &mut Option<Observed>) -> Result<bool> {
        let read = self.call(self.api.get_opt(&self.name)).await?;
        let now = Instant::now();
        let Some(lease) = read else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: None,
            };
            let lease = claim(
                lease,
                &self.identity,
                (self.wall_clock)(),
                self.timing.lease_duration_seconds(),
            );
            let started = Instant::now();
            return match self
                .call(self.api.create(&PostParams::default(), &lease))
                .await
            {
                Ok(written) => {
                    self.acquired_at(started, written);
                    Ok(true)
                }
                Err(Error::Kube(kube::Error::Api(status))) if status.is_already_exists() => {
                    Ok(false)
                }
                Err(error) => Err(error),
            };
        };
        let seen = match observed.take() {
            Some(seen) if seen.spec == lease.spec => seen,
            _ => Observed {
                spec: lease.spec.clone(),
                at: now,
            },
        };
        let may_acquire = can_acquire(
            &lease,
            &self.identity,
            seen.at,
            now,
            self.timing.lease_duration,
        );
        *observed = Some(seen);
        if !may_acquire {
            return Ok(false);
        }
        let lease = claim(
            lease,
            &self.identity,
            (self.wall_clock)(),
            self.timing.lease_duration_seconds(),
        );
        let started = Instant::now();
        match self
            .call(self.api.replace(&self.name, &PostParams::default(), &lease))
            .await
        {
            Ok(written) => {
                self.acquired_at(started, written);
                Ok(true)
            }
            Err(Error::Kube(kube::Error::Api(status))) if status.is_conflict() => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn acquired_at(&self, sent: Instant, written: Lease) {
        *self
            .acquired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((sent, written));
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
                None => match self.call(self.api.get_opt(&self.name)).await? {
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
            spec.renew_time = Some(MicroTime((self.wall_clock)()));
            spec.lease_duration_seconds = Some(self.timing.lease_duration_seconds());
            match self
                .call(self.api.replace(&self.name, &PostParams::default(), &lease))
                .await
            {
                Ok(written) => return Ok(Renewal::Renewed(Box::new(written))),
                Err(Error::Kube(kube::Error::Api(status))) if status.is_conflict() => {
                    debug!(
                        resource_version = lease.resource_version(),
                        "lease changed; re-reading"
                    );
                    last_error = Some(kube::Error::Api(status));
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.map_or_else(
            || Error::Leader(format!("renewing lease {} kept conflicting", self.name)),
            Error::from,
        ))
    }

    /// One API call, abandoned after the call timeout: on a dead connection a request can
    /// otherwise wait minutes for TCP to notice.
    async fn call<T>(&self, request: impl Future<Output = kube::Result<T>>) -> Result<T> {
        let limit = self.timing.call_timeout();
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Leader(format!(
                "no answer about lease {} within {limit:?}",
                self.name
            ))),
        }
    }
}

/// The Lease's spec as a standby last saw it change, and when, on the standby's own clock.
struct Observed {
    spec: Option<LeaseSpec>,
    at: Instant,
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

/// Whether `identity` may write itself into `lease` as holder at `now`, having last seen the
/// Lease's spec change at `changed_at` (both on our own monotonic clock).
///
/// A Lease is free when nobody holds it or we already hold it. Otherwise its holder renews it
/// for the `leaseDurationSeconds` it wrote (`default_duration` when it wrote none), counted from
/// when we saw its last change: `renewTime` comes from the holder's clock and is never compared
/// with ours. A held Lease that never changes again, however it was written, expires that way.
fn can_acquire(
    lease: &Lease,
    identity: &str,
    changed_at: Instant,
    now: Instant,
    default_duration: Duration,
) -> bool {
    let Some(current) = holder(lease) else {
        return true;
    };
    if current == identity {
        return true;
    }
    let duration = lease
        .spec
        .as_ref()
        .and_then(|spec| spec.lease_duration_seconds)
        .and_then(|seconds| u64::try_from(seconds).ok())
        .filter(|&seconds| seconds > 0)
        .map_or(default_duration, Duration::from_secs);
    now.saturating_duration_since(changed_at) >= duration
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

    const LEASE: Duration = Duration::from_secs(15);

    /// `can_acquire` for a Lease last seen changing `unchanged_for` ago.
    fn may_take(lease: &Lease, identity: &str, unchanged_for: Duration) -> bool {
        let changed_at = Instant::now();
        can_acquire(
            lease,
            identity,
            changed_at,
            changed_at + unchanged_for,
            LEASE,
        )
    }

    #[test]
    fn free_lease_can_be_acquired() {
        assert!(may_take(&lease(None, 995, 15), "me", Duration::ZERO));
        assert!(may_take(&lease(Some(""), 995, 15), "me", Duration::ZERO));
        let no_spec = Lease {
            spec: None,
            ..lease(None, 0, 0)
        };
        assert!(may_take(&no_spec, "me", Duration::ZERO));
    }

    #[test]
    fn a_held_lease_expires_a_lease_duration_after_it_last_changed() {
        let held = lease(Some("other"), 995, 15);
        assert!(!may_take(&held, "me", Duration::ZERO));
        assert!(!may_take(&held, "me", Duration::from_millis(14_999)));
        // Expiry is inclusive: at exactly the duration the holder is out of time.
        assert!(may_take(&held, "me", LEASE));
        assert!(may_take(&held, "me", Duration::from_secs(3600)));
    }

    /// The holder's `leaseDurationSeconds` counts, not ours: replicas of two configurations (as
    /// during an upgrade) each stop within what the other expects.
    #[test]
    fn the_duration_the_holder_wrote_counts() {
        let long = lease(Some("other"), 995, 60);
        assert!(!may_take(&long, "me", Duration::from_secs(59)));
        assert!(may_take(&long, "me", Duration::from_secs(60)));
    }

    /// renewTime is another machine's reading of its clock: however far it is from ours, in
    /// either direction, it decides nothing.
    #[test]
    fn renew_time_is_never_compared_with_our_clock() {
        let now = Timestamp::now().as_second();
        for renewed in [0, now - 86_400, now, now + 86_400] {
            let held = lease(Some("other"), renewed, 15);
            assert!(!may_take(&held, "me", Duration::from_secs(14)), "{renewed}");
            assert!(may_take(&held, "me", LEASE), "{renewed}");
        }
    }

    #[test]
    fn lease_held_by_me_can_be_acquired() {
        assert!(may_take(&lease(Some("me"), 995, 15), "me", Duration::ZERO));
    }

    /// A holder that wrote no (or a nonsensical) duration does not block election forever: it
    /// gets ours, from when we saw its last change.
    #[test]
    fn held_lease_without_a_duration_gets_ours() {
        for seconds in [None, Some(0), Some(-5)] {
            let mut held = lease(Some("other"), 995, 15);
            if let Some(spec) = held.spec.as_mut() {
                spec.lease_duration_seconds = seconds;
                spec.renew_time = None;
            }
            assert!(
                !may_take(&held, "me", Duration::from_secs(14)),
                "{seconds:?}"
            );
            assert!(may_take(&held, "me", LEASE), "{seconds:?}");
        }
    }

    #[test]
    fn timing_defaults_are_client_gos() {
        let timing = Timing::default();
        assert_eq!(
            Timing::new(
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
            .expect("valid"),
            timing
        );
        assert!(timing.call_timeout() < timing.renew_deadline);
    }

    #[test]
    fn timing_keeps_the_renew_deadline_inside_the_lease() {
        let s = Duration::from_secs;
        let refused = |lease, renew, retry, want: &str| match Timing::new(lease, renew, retry) {
            Err(Error::Leader(message)) => assert!(message.contains(want), "{message}"),
            other => panic!("{lease:?}/{renew:?}/{retry:?} accepted: {other:?}"),
        };
        refused(
            s(10),
            s(10),
            s(2),
            "renew deadline (10s) must be shorter than the lease",
        );
        refused(
            s(4),
            s(10),
            s(2),
            "renew deadline (10s) must be shorter than the lease",
        );
        refused(
            s(15),
            s(10),
            s(10),
            "retry period (10s) must be above zero and shorter",
        );
        refused(s(15), s(10), s(0), "retry period (0ns) must be above zero");
        refused(
            Duration::ZERO,
            s(0),
            s(0),
            "lease duration (0ns) must be a whole number",
        );
        refused(
            Duration::from_millis(4500),
            s(3),
            s(1),
            "lease duration (4.5s) must be a whole number",
        );
        refused(s(1 << 40), s(10), s(2), "must be a whole number of seconds");
        assert!(Timing::new(s(4), s(3), s(1)).is_ok());
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

/// The elector against a mocked API server, checking the requests it sends. Time is paused:
/// tokio's clock moves only when every task waits, so durations are exact and nothing sleeps.
#[cfg(test)]
mod api_tests {
    use super::*;
    use http::{Method, Request, Response};
    use k8s_openapi::jiff::SignedDuration;
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock::{self, Handle, SendResponse};

    use crate::test_support::reply;

    const LEASE_URL: &str = "/apis/coordination.k8s.io/v1/namespaces/fledge-system/leases";
    const LEASE: Duration = Duration::from_secs(15);
    const RENEW: Duration = Duration::from_secs(10);
    const RETRY: Duration = Duration::from_secs(2);

    type ApiHandle = Handle<Request<Body>, Response<Body>>;

    /// An elector with client-go's default timing (15s, 10s, 2s) whose wall clock reads `clock`.
    fn elector(clock: Timestamp) -> (LeaderElector, ApiHandle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let elector =
            LeaderElector::new(client, "fledge-system", "fledge", "me", Timing::default())
                .with_wall_clock(move || clock);
        (elector, handle)
    }

    fn lease_url() -> String {
        format!("{LEASE_URL}/fledge")
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

    fn renew_time(body: &Value) -> Option<Timestamp> {
        let lease: Lease = serde_json::from_value(body.clone()).expect("a Lease");
        lease.spec?.renew_time.map(|time| time.0)
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

    /// Runs a scenario, failing it if it has not ended after ten minutes of (paused) time.
    async fn within<T>(scenario: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(600), scenario)
            .await
            .expect("the scenario ends")
    }

    /// Once the elector is gone its client is dropped, so the mocked server sees the end of the
    /// request stream; anything else still queued was sent after the scenario ended.
    async fn assert_no_more_requests(mut handle: ApiHandle) {
        let leftover = within(handle.next_request()).await;
        assert!(
            leftover.is_none(),
            "unexpected request: {:?}",
            leftover.map(|(request, _)| format!("{} {}", request.method(), request.uri()))
        );
    }

    /// Stops a task that would run forever and waits until it, and so its elector, is gone.
    async fn stop<T: std::fmt::Debug>(task: tokio::task::JoinHandle<T>) {
        assert!(!task.is_finished(), "{:?}", task.await);
        task.abort();
        assert!(task.await.expect_err("aborted").is_cancelled());
    }

    /// Answers the standby's read with a missing Lease and its create with the Lease it sent,
    /// returning when that create reached the server.
    async fn grant_by_create(handle: &mut ApiHandle) -> (Instant, Value) {
        let (method, path, _, send) = next(handle).await;
        assert_eq!((method, path), (Method::GET, lease_url()));
        reply(send, 404, &status(404, "NotFound"));
        let (method, path, mut body, send) = next(handle).await;
        assert_eq!((method, path.as_str()), (Method::POST, LEASE_URL));
        let written_at = Instant::now();
        body["metadata"]["resourceVersion"] = json!("1");
        reply(send, 201, &body);
        (written_at, body)
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_creates_a_missing_lease() {
        let clock = Timestamp::from_second(1_700_000_000).expect("timestamp");
        let (elector, mut handle) = elector(clock);
        let task = tokio::spawn(async move { elector.acquire().await });
        within(async {
            let (method, path, _, send) = next(&mut handle).await;
            assert_eq!((method, path), (Method::GET, lease_url()));
            reply(send, 404, &status(404, "NotFound"));

            let (method, path, body, send) = next(&mut handle).await;
            assert_eq!((method, path.as_str()), (Method::POST, LEASE_URL));
            assert_eq!(body["spec"]["holderIdentity"], "me");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
            assert_eq!(body["spec"]["leaseTransitions"], 0);
            assert_eq!(renew_time(&body), Some(clock), "{body}");
            reply(send, 201, &body);

            task.await.expect("join").expect("acquired");
        })
        .await;
        assert_no_more_requests(handle).await;
    }

    /// Scenario: the holder's clock runs an hour ahead, so its renewTime always lies in the
    /// standby's future; it renews a few times and dies. The standby takes over one lease
    /// duration after it last saw the Lease change, by its own clock, not an hour later; it
    /// writes conditionally, and after losing that race to another standby it goes back to
    /// reading the winner's fresh Lease.
    #[tokio::test(start_paused = true)]
    async fn a_standby_takes_over_one_lease_duration_after_the_lease_last_changed() {
        let clock = Timestamp::from_second(1_700_000_000).expect("timestamp");
        let (elector, mut handle) = elector(clock);
        let task = tokio::spawn(async move { elector.acquire().await });
        let holder_clock = clock + SignedDuration::from_secs(3600);
        within(async {
            let mut last_change = None;
            let mut reads = 0;
            let (took_at, body, send) = loop {
                let (method, path, body, send) = next(&mut handle).await;
                assert_eq!(path, lease_url());
                if method != Method::GET {
                    break (Instant::now(), body, send);
                }
                reads += 1;
                // Renewed before each of the first three reads, then never again.
                if reads <= 3 {
                    last_change = Some(Instant::now());
                }
                let renewed = holder_clock + SignedDuration::from_secs(2 * reads.min(3));
                reply(send, 200, &lease_json("other", renewed, 2));
            };
            let unchanged_for = took_at - last_change.expect("a read");
            assert!(
                unchanged_for >= LEASE && unchanged_for <= LEASE + RETRY,
                "took over after {unchanged_for:?} without a change"
            );
            assert_eq!(body["metadata"]["resourceVersion"], "7");
            assert_eq!(body["spec"]["holderIdentity"], "me");
            assert_eq!(body["spec"]["leaseTransitions"], 3);
            assert_eq!(renew_time(&body), Some(clock), "{body}");
            reply(send, 409, &status(409, "Conflict"));

            // The winner now holds a fresh lease: we must only read, never write.
            for _ in 0..3 {
                let (method, _, _, send) = next(&mut handle).await;
                assert_eq!(method, Method::GET);
                reply(send, 200, &lease_json("winner", clock, 3));
            }
        })
        .await;
        stop(task).await;
        assert_no_more_requests(handle).await;
    }

    /// Scenario: the standby's wall clock runs an hour ahead of the holder's, so every renewTime
    /// the holder writes looks an hour old to it. The holder keeps renewing all along, so the
    /// standby must keep reading and never write, however stale the timestamps look.
    #[tokio::test(start_paused = true)]
    async fn a_standby_whose_clock_runs_far_ahead_never_takes_a_lease_its_holder_keeps_renewing() {
        let holder_clock = Timestamp::from_second(1_700_000_000).expect("timestamp");
        let (elector, mut handle) = elector(holder_clock + SignedDuration::from_secs(3600));
        let started = Instant::now();
        let task = tokio::spawn(async move { elector.acquire().await });
        within(async {
            let mut reads = 0;
            while started.elapsed() < LEASE * 3 {
                let (method, path, _, send) = next(&mut handle).await;
                assert_eq!(
                    (method, path),
                    (Method::GET, lease_url()),
                    "the standby wrote to a lease its holder keeps renewing"
                );
                reads += 1;
                // The holder renewed since the last read.
                let renewed = holder_clock + SignedDuration::from_secs(2 * reads);
                reply(send, 200, &lease_json("other", renewed, 2));
            }
        })
        .await;
        stop(task).await;
        assert_no_more_requests(handle).await;
    }

    /// Scenario: the API server takes the standby's read and never answers. The read is given up
    /// after the call timeout and tried again, and the second one can acquire.
    #[tokio::test(start_paused = true)]
    async fn a_standby_whose_read_hangs_tries_again() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move { elector.acquire().await });
        within(async {
            let (method, _, _, unanswered) = next(&mut handle).await;
            assert_eq!(method, Method::GET);
            let sent_at = Instant::now();
            grant_by_create(&mut handle).await;
            assert!(sent_at.elapsed() >= Timing::default().call_timeout());
            task.await.expect("join").expect("acquired");
            drop(unanswered);
        })
        .await;
        assert_no_more_requests(handle).await;
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_fails_fast_when_forbidden() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move { elector.acquire().await });
        within(async {
            let (_, _, _, send) = next(&mut handle).await;
            reply(send, 403, &status(403, "Forbidden"));
            let result = task.await.expect("join");
            assert!(matches!(result, Err(Error::Leader(_))), "{result:?}");
        })
        .await;
        assert_no_more_requests(handle).await;
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_reports_a_new_holder() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move { elector.renew_until_lost().await });
        within(async {
            let (method, _, _, send) = next(&mut handle).await;
            assert_eq!(method, Method::GET);
            reply(send, 200, &lease_json("other", Timestamp::now(), 4));
            let error = task.await.expect("join");
            assert!(
                matches!(&error, Error::Leader(m) if m.contains("held by other")),
                "{error}"
            );
        })
        .await;
        assert_no_more_requests(handle).await;
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_rereads_on_conflict_and_writes_from_the_response() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move { elector.renew_until_lost().await });
        within(async {
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
            let renewed_at = Instant::now();
            reply(send, 200, &written);

            // The next renewal, a retry period later, writes straight from what the server
            // returned, without a read.
            let (method, _, body, _send) = next(&mut handle).await;
            assert_eq!(method, Method::PUT);
            assert_eq!(body["metadata"]["resourceVersion"], "9");
            assert_eq!(renewed_at.elapsed(), RETRY);
        })
        .await;
        stop(task).await;
        assert_no_more_requests(handle).await;
    }

    /// Scenario: every renewal fails (the API server answers 500). The leader stops acting at
    /// its renew deadline, counted from when it sent the write that made it leader, while the
    /// Lease is still valid for everyone else: there is never a moment with two leaders.
    #[tokio::test(start_paused = true)]
    async fn renewal_gives_up_at_the_renew_deadline_before_the_lease_expires() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move {
            elector.acquire().await.expect("acquired");
            elector.renew_until_lost().await
        });
        let (written_at, _) = within(grant_by_create(&mut handle)).await;
        let failing = tokio::spawn(async move {
            let mut requests = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                requests.push((request.method().clone(), request.uri().path().to_owned()));
                reply(send, 500, &status(500, "InternalError"));
            }
            requests
        });
        let error = within(task).await.expect("join");
        let led_for = written_at.elapsed();
        assert!(
            matches!(&error, Error::Leader(m) if m.contains("could not renew")),
            "{error}"
        );
        assert!(
            led_for >= RENEW && led_for < LEASE,
            "gave up after {led_for:?}, not at the renew deadline"
        );
        let requests = within(failing).await.expect("join");
        assert!(requests.len() >= 2, "never retried: {requests:?}");
        for (method, path) in requests {
            assert!(
                matches!(method, Method::GET | Method::PUT) && path == lease_url(),
                "not a renewal: {method} {path}"
            );
        }
    }

    /// Scenario: the leader's connection to the API server dies, so its renewal never gets an
    /// answer. It must give up leadership at its renew deadline, before a standby could see the
    /// lease as expired, instead of reconciling on while a new leader does too.
    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_renewal_hangs_gives_up_before_the_lease_expires() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move {
            elector.acquire().await.expect("acquired");
            elector.renew_until_lost().await
        });
        // Standbys that read this write may take over one lease duration after it.
        let (written_at, _) = within(grant_by_create(&mut handle)).await;

        // From now on the API server never answers, and never closes the connection either.
        let black_hole = tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let body = crate::test_support::json_body(request.into_body()).await;
                unanswered.push((method, path, body, send));
            }
            unanswered
                .into_iter()
                .map(|(method, path, body, _)| (method, path, body))
                .collect::<Vec<_>>()
        });
        let error = tokio::time::timeout(LEASE * 4, task)
            .await
            .expect("the leader kept leading through a renewal that never returned")
            .expect("join");
        let led_for = written_at.elapsed();
        assert!(
            matches!(&error, Error::Leader(m) if m.contains("lost leadership")),
            "{error}"
        );
        assert!(
            led_for >= RENEW && led_for < LEASE,
            "led for {led_for:?}, not up to the renew deadline"
        );
        let requests = within(black_hole).await.expect("join");
        // The first renewal writes from what the create returned; the next one re-reads.
        let (method, _, body) = requests.first().expect("a renewal");
        assert_eq!(*method, Method::PUT);
        assert_eq!(body["metadata"]["resourceVersion"], "1");
        assert!(requests.len() >= 2, "never retried: {requests:?}");
        for (method, path, _) in requests {
            assert!(
                matches!(method, Method::GET | Method::PUT) && path == lease_url(),
                "not a renewal: {method} {path}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn release_clears_the_holder() {
        let clock = Timestamp::from_second(1_700_000_000).expect("timestamp");
        let (elector, mut handle) = elector(clock);
        let task = tokio::spawn(async move { elector.release().await });
        within(async {
            let (_, _, _, send) = next(&mut handle).await;
            reply(send, 200, &lease_json("me", Timestamp::now(), 1));
            let (method, path, body, send) = next(&mut handle).await;
            assert_eq!((method, path), (Method::PUT, lease_url()));
            assert!(body["spec"].get("holderIdentity").is_none(), "{body}");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
            assert_eq!(body["metadata"]["resourceVersion"], "7");
            assert_eq!(renew_time(&body), Some(clock), "{body}");
            reply(send, 200, &body);
            task.await.expect("join");
        })
        .await;
        assert_no_more_requests(handle).await;
    }

    /// Shutdown must not hang on an API server that takes the release and never answers.
    #[tokio::test(start_paused = true)]
    async fn release_gives_up_when_the_api_server_never_answers() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move { elector.release().await });
        within(async {
            let (method, _, _, unanswered) = next(&mut handle).await;
            assert_eq!(method, Method::GET);
            task.await.expect("join");
            drop(unanswered);
        })
        .await;
        assert_no_more_requests(handle).await;
    }

    #[tokio::test(start_paused = true)]
    async fn release_leaves_someone_elses_lease_alone() {
        let (elector, mut handle) = elector(Timestamp::UNIX_EPOCH);
        let task = tokio::spawn(async move { elector.release().await });
        within(async {
            let (method, path, _, send) = next(&mut handle).await;
            assert_eq!((method, path), (Method::GET, lease_url()));
            reply(send, 200, &lease_json("other", Timestamp::now(), 1));
            task.await.expect("join");
        })
        .await;
        assert_no_more_requests(handle).await;
    }
}
