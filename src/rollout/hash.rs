//! A revision's identity: a stable hash of its pod template.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// Characters Kubernetes itself uses in generated names: no vowels (no words), no look-alikes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const LEN: usize = 10;

/// Hashes a pod template into a 10-character label value.
///
/// The template is serialized by `k8s-openapi`, whose fields come in declaration order and whose
/// maps are sorted, so equal templates always hash equal, across restarts and versions of fledge.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    // Serializing a k8s-openapi type to a Vec cannot fail: no maps with non-string keys.
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest
        .iter()
        .take(LEN)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::template;

    #[test]
    fn equal_templates_hash_equal_and_differ_otherwise() {
        assert_eq!(
            template_hash(&template("web:1")),
            template_hash(&template("web:1"))
        );
        assert_ne!(
            template_hash(&template("web:1")),
            template_hash(&template("web:2"))
        );
    }

    #[test]
    fn hash_is_a_valid_label_value() {
        let h = template_hash(&template("web:1"));
        assert_eq!(h.len(), 10);
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)));
    }
    // The value itself is pinned in plan/tests/revisions.rs.
}
