//! The plan for a Rollout being deleted (`plan/deletion.rs`).

use super::*;
use crate::rollout::plan::{FINALIZER, cleanup, deletion};
use crate::traffic::Found;
use kube::ResourceExt;

#[test]
fn a_deleted_rollout_is_cleaned_up_and_nothing_else() {
    let mut sim = Sim::new(
        RolloutBuilder::canary()
            .replicas(2)
            .gateway("web")
            .steps([w(50), pause_forever()])
            .build(),
    );
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.settle();
    sim.set_image("web:2");
    sim.settle();
    assert!(sim.rollout.finalizers().iter().any(|f| f == FINALIZER));

    let p = deletion(&sim.rollout, &sim.world);
    assert_eq!(p.actions, cleanup(&sim.rollout, &sim.world));
    assert_eq!(p.actions.last(), Some(&Action::RemoveFinalizer));
    assert_eq!(&p.status, sim.status(), "the status is left as it is");
    assert!(p.events.is_empty());
    assert_eq!(p.requeue_after, None);
    assert!(p.templates.is_empty() && p.revisions.is_empty());

    // Without the finalizer there is nothing to do.
    sim.rollout.metadata.finalizers = None;
    assert!(deletion(&sim.rollout, &sim.world).actions.is_empty());
}
