//! The state digest of DESIGN.md, computed from a key/value listing alone,
//! so `raftkv kv dump --check` can confirm a node's digest independently of
//! the node's own code.

use sha2::{Digest, Sha256};

/// Digest of a full key/value listing (each key once), as lowercase hex.
pub fn state_digest<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut acc = [0u8; 32];
    let mut count: u64 = 0;
    for (key, value) in pairs {
        let mut hasher = Sha256::new();
        hasher.update((key.len() as u32).to_be_bytes());
        hasher.update(key);
        hasher.update((value.len() as u32).to_be_bytes());
        hasher.update(value);
        add_mod_2_256(&mut acc, &hasher.finalize().into());
        count += 1;
    }
    let mut hasher = Sha256::new();
    hasher.update(b"raftkv-digest-v1");
    hasher.update(count.to_be_bytes());
    hasher.update(acc);
    hex(&hasher.finalize())
}

/// `acc += term` as 256-bit big-endian integers, wrapping.
fn add_mod_2_256(acc: &mut [u8; 32], term: &[u8; 32]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let sum = u16::from(acc[i]) + u16::from(term[i]) + carry;
        acc[i] = sum as u8;
        carry = sum >> 8;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(pairs: &[(String, String)]) -> String {
        state_digest(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    /// The test vectors of DESIGN.md ("State digest").
    #[test]
    fn matches_the_design_test_vectors() {
        assert_eq!(
            digest_of(&[]),
            "9ee758fbc40fa99db071432ef003a18c7a85d601caf11ff37d96f2a3654bc03f"
        );
        let a = ("a".to_string(), "1".to_string());
        let b = ("b".to_string(), "2".to_string());
        assert_eq!(
            digest_of(std::slice::from_ref(&a)),
            "6d0b4047a7dc5f32e16617d3fd9b30bcbd3da269601f1bfb74344fc777b4372e"
        );
        assert_eq!(
            digest_of(&[b.clone(), a.clone()]),
            "9c416561b5d29b481f4aaa44c5b47c98ce71d1bd47875d1c50203a677daa568c"
        );
        let hundred: Vec<(String, String)> = (1..=100)
            .map(|i| (format!("key:{i:04}"), format!("value-{i}")))
            .collect();
        assert_eq!(
            digest_of(&hundred),
            "f9de357db9c61f71fae95744165a192bd493832bd09207da42c26293f1c136b4"
        );
    }

    #[test]
    fn addition_wraps_at_2_256() {
        let mut acc = [0xff; 32];
        let mut one = [0u8; 32];
        one[31] = 1;
        add_mod_2_256(&mut acc, &one);
        assert_eq!(acc, [0u8; 32]);
    }
}
