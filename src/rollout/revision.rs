//! Revision numbers: each ReplicaSet fledge creates is numbered one more than the highest number
//! among the Rollout's ReplicaSets, like a Deployment's, so `kubectl fledge undo --to-revision N`
//! can name one. Pure.

use std::collections::BTreeMap;

use super::observe::ObservedReplicaSet;
use super::plan::Action;

/// The revision number to record on each ReplicaSet `actions` apply. An existing ReplicaSet keeps
/// its number (one created before numbering existed stays without one: a server-side apply that
/// omits the annotation leaves it alone); new ones count up from the highest.
pub fn assign(replica_sets: &[ObservedReplicaSet], actions: &[Action]) -> BTreeMap<String, i64> {
    let mut next = replica_sets
        .iter()
        .filter_map(|rs| rs.revision)
        .max()
        .unwrap_or(0);
    let mut out = BTreeMap::new();
    for action in actions {
        let Action::ApplyReplicaSet { hash, .. } = action else {
            continue;
        };
        match replica_sets.iter().find(|rs| rs.hash == *hash) {
            Some(rs) => {
                if let Some(n) = rs.revision {
                    out.insert(hash.clone(), n);
                }
            }
            None => {
                next += 1;
                out.insert(hash.clone(), next);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(hash: &str, revision: Option<i64>) -> ObservedReplicaSet {
        ObservedReplicaSet {
            name: format!("web-{hash}"),
            hash: hash.into(),
            revision,
            ..Default::default()
        }
    }

    fn apply(hash: &str) -> Action {
        Action::ApplyReplicaSet {
            hash: hash.into(),
            replicas: 1,
        }
    }

    #[test]
    fn a_new_replica_set_gets_one_more_than_the_highest() {
        let sets = [rs("a", Some(1)), rs("b", Some(3)), rs("c", None)];
        let got = assign(&sets, &[apply("a"), apply("new"), apply("c")]);
        assert_eq!(
            got,
            BTreeMap::from([("a".to_string(), 1), ("new".to_string(), 4)]),
            "existing numbers are kept, an unnumbered old ReplicaSet stays unnumbered"
        );
        assert_eq!(assign(&[], &[apply("first")])["first"], 1);
        assert!(assign(&sets, &[]).is_empty());
    }
}
