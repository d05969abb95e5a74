//! The Merkle tree against the RFC 6962 reference vectors, and property
//! tests against a straightforward recursive definition.

use agentmesh_audit::tree::{
    self, Hash, MemoryTree, consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash,
    verify_consistency, verify_inclusion,
};
use proptest::prelude::*;
use serde_json::Value;

fn h(s: &str) -> Hash {
    tree::parse_hex(s).expect("hex hash")
}

fn vectors() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/wire/vectors/rfc6962.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("vectors")).expect("json")
}

fn tree_of(leaves: &[Vec<u8>]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in leaves {
        t.push(leaf_hash(l));
    }
    t
}

#[test]
fn rfc6962_reference_vectors() {
    let v = vectors();
    let leaves: Vec<Vec<u8>> = v["leaves_hex"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|x| {
            let s = x.as_str().expect("hex");
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect();
    assert_eq!(tree::hex(&empty_root()), v["empty_root"]);
    let t = tree_of(&leaves);
    for (i, root) in v["roots"].as_array().expect("roots").iter().enumerate() {
        let size = i as u64 + 1;
        assert_eq!(
            tree::hex(&tree::root(&t, size).expect("root")),
            *root,
            "root of {size}"
        );
        assert_eq!(
            tree::hex(&tree_of(&leaves[..=i]).root()),
            *root,
            "frontier root of {size}"
        );
    }
    for c in v["inclusion"].as_array().expect("inclusion") {
        let (index, size) = (
            c["index"].as_u64().expect("i"),
            c["size"].as_u64().expect("n"),
        );
        let want: Vec<Hash> = c["path"]
            .as_array()
            .expect("path")
            .iter()
            .map(|x| h(x.as_str().expect("s")))
            .collect();
        assert_eq!(
            inclusion_proof(&t, index, size).expect("proof"),
            want,
            "PATH({index}, {size})"
        );
        let root = tree::root(&t, size).expect("root");
        verify_inclusion(
            &leaf_hash(&leaves[index as usize]),
            index,
            size,
            &want,
            &root,
        )
        .expect("verifies");
    }
    for c in v["consistency"].as_array().expect("consistency") {
        let (old, new) = (c["old"].as_u64().expect("m"), c["new"].as_u64().expect("n"));
        let want: Vec<Hash> = c["proof"]
            .as_array()
            .expect("proof")
            .iter()
            .map(|x| h(x.as_str().expect("s")))
            .collect();
        assert_eq!(
            consistency_proof(&t, old, new).expect("proof"),
            want,
            "PROOF({old}, {new})"
        );
        let (r1, r2) = (
            tree::root(&t, old).expect("r"),
            tree::root(&t, new).expect("r"),
        );
        verify_consistency(old, new, &want, &r1, &r2).expect("verifies");
    }
}

/// MTH by the RFC's recursive definition.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn roots_and_proofs_for_every_size(n in 1u64..300, seed in any::<u64>()) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i ^ seed).to_be_bytes())).collect();
        let mut t = MemoryTree::new();
        for l in &leaves { t.push(*l); }
        for size in [1, n / 2 + 1, n] {
            let root = tree::root(&t, size).expect("root");
            prop_assert_eq!(root, reference_root(&leaves[..size as usize]));
            let i = seed % size;
            let proof = inclusion_proof(&t, i, size).expect("proof");
            prop_assert!(verify_inclusion(&leaves[i as usize], i, size, &proof, &root).is_ok());
            // Wrong leaf, wrong index, wrong root, wrong size, tampered proof: all fail.
            prop_assert!(verify_inclusion(&leaf_hash(b"other"), i, size, &proof, &root).is_err());
            if size > 1 {
                prop_assert!(verify_inclusion(&leaves[i as usize], (i + 1) % size, size, &proof, &root).is_err());
            }
            // (A proof for size n can also check out against a claimed size n+1
            // with the size-n root; that is harmless because a checkpoint binds
            // each root to its size. So only the root is varied here.)
            prop_assert!(verify_inclusion(&leaves[i as usize], i, size, &proof, &leaf_hash(b"root")).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                prop_assert!(verify_inclusion(&leaves[i as usize], i, size, &bad, &root).is_err());
                prop_assert!(verify_inclusion(&leaves[i as usize], i, size, &proof[1..], &root).is_err());
            }
        }
        let m = seed % n + 1;
        let proof = consistency_proof(&t, m, n).expect("consistency");
        let (r1, r2) = (tree::root(&t, m).expect("r1"), tree::root(&t, n).expect("r2"));
        prop_assert!(verify_consistency(m, n, &proof, &r1, &r2).is_ok());
        let other = leaf_hash(b"forged");
        prop_assert!(verify_consistency(m, n, &proof, &other, &r2).is_err() || r1 == other);
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let last = bad.len() - 1;
            bad[last][31] ^= 0x80;
            prop_assert!(verify_consistency(m, n, &bad, &r1, &r2).is_err());
        }
    }
}
