//! Generated names as upstream makes them: the `pod-template-hash` of a ReplicaSet and the random
//! five-character suffix of a pod.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Upstream's alphabet for generated names: no vowels, no look-alikes (`rand.SafeEncodeString`).
const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-32a of its canonical JSON, the decimal digits of
/// which are spelled in [`ALPHABET`] as upstream does. The same template always gives the same
/// hash; `collision_count` changes it when a name is taken by a different template.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    // The label is added to the template after hashing upstream; never hash it.
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let json = serde_json::to_vec(&template).expect("templates serialize");
    let mut hash = fnv32a(&json);
    if let Some(count) = collision_count {
        hash = fnv32a_continue(hash, &count.to_le_bytes());
    }
    safe_encode(&hash.to_string())
}

/// Five random characters from [`ALPHABET`], the suffix of generated pod names.
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn safe_encode(digits: &str) -> String {
    digits
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

fn fnv32a(bytes: &[u8]) -> u32 {
    fnv32a_continue(0x811c_9dc5, bytes)
}

fn fnv32a_continue(mut hash: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "hostbot".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn same_template_same_hash_and_shape() {
        let a = template_hash(&template("yourname/hostbot:v1"), None);
        assert_eq!(a, template_hash(&template("yourname/hostbot:v1"), None));
        assert_ne!(a, template_hash(&template("yourname/hostbot:v2"), None));
        assert_ne!(a, template_hash(&template("yourname/hostbot:v1"), Some(1)));
        assert!((1..=10).contains(&a.len()), "{a}");
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)), "{a}");
    }

    #[test]
    fn suffix_shape() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
    }
}
