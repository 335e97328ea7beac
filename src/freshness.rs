//! A reconcile acts only on an object at least as new as fledge's own last write to it.
//!
//! Rollouts and AnalysisRuns are read from watch caches, and a status fledge has just written
//! reaches the cache a moment later. A reconcile in between would work from the status before
//! the write. For a Rollout it would start the analysis attempt again and terminate the run just
//! created, and the rollout would pause on an analysis that never measured. For an AnalysisRun it
//! would find the measurement it just recorded still due and take it again, asking the provider
//! once more than the run records. Status writes are guarded by resourceVersion, so such a
//! reconcile's own write fails, but only after what it started. So the resourceVersions that
//! fledge's own writes superseded are remembered per object until the cache shows another one,
//! and a reconcile that finds one of them waits for the watch to catch up.

use std::collections::HashMap;
use std::sync::Mutex;

/// The resourceVersions, per object uid, that fledge's own writes have superseded and the cache
/// has not moved past yet.
#[derive(Debug, Default)]
pub struct Freshness {
    superseded: Mutex<HashMap<String, Vec<String>>>,
}

impl Freshness {
    /// Remembers that fledge's writes moved the object `uid` past `versions`.
    pub fn superseded(&self, uid: &str, versions: Vec<String>) {
        if versions.is_empty() {
            return;
        }
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(uid.to_string()).or_default().extend(versions);
    }

    /// Whether the cached object `uid` at `version` predates fledge's own last write to it.
    /// Once the cache shows any other version (fledge's write, or a later one), the object is
    /// forgotten here.
    pub fn is_stale(&self, uid: &str, version: &str) -> bool {
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(uid) {
            Some(old) if old.iter().any(|v| v == version) => true,
            Some(_) => {
                map.remove(uid);
                false
            }
            None => false,
        }
    }

    /// Forgets an object that is gone (or that fledge no longer writes).
    pub fn forget(&self, uid: &str) {
        let mut map = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_that_has_not_seen_the_last_write_is_stale_until_it_has() {
        let f = Freshness::default();
        assert!(!f.is_stale("u", "10"), "nothing written: fresh");
        // The plan was made from 10; its finalizer write made 11 and its status write 12.
        f.superseded("u", vec!["10".into(), "11".into()]);
        assert!(f.is_stale("u", "10"));
        assert!(
            f.is_stale("u", "11"),
            "an intermediate version of fledge's own"
        );
        assert!(!f.is_stale("u", "12"), "the write itself");
        assert!(!f.is_stale("u", "10"), "forgotten once the cache moved on");
    }

    #[test]
    fn a_later_write_by_someone_else_counts_as_fresh() {
        let f = Freshness::default();
        f.superseded("u", vec!["10".into()]);
        // A person's promote landed after fledge's write, and the cache jumped to it.
        assert!(!f.is_stale("u", "13"));
        assert!(!f.is_stale("v", "10"), "another rollout");
    }

    #[test]
    fn a_rollout_that_is_gone_is_forgotten() {
        let f = Freshness::default();
        f.superseded("u", vec!["10".into()]);
        f.forget("u");
        assert!(!f.is_stale("u", "10"));
    }
}
