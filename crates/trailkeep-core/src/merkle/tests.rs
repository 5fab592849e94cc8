//! Tests of the Merkle tree: known answers from the Certificate Transparency reference implementation,
//! cross-checks against a direct transcription of RFC 9162's recursive definitions, and properties that
//! every proof verifies and every corrupted one fails.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let pairs = s.as_bytes().chunks_exact(2);
    assert!(pairs.remainder().is_empty(), "odd-length hex {s:?}");
    pairs.map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digit")).collect()
}

fn h(s: &str) -> Hash {
    hex(s).try_into().expect("a 32-byte hash")
}

// Known answers from the Certificate Transparency reference implementation's Merkle tree tests,
// google/certificate-transparency `cpp/merkletree/merkle_tree_test.cc`: the eight inputs (`kInputs`), the
// roots after each of them (`kSHA256Roots`), the inclusion paths (`kSHA256Paths`, whose leaves count from 1)
// and the consistency proofs (`kSHA256Proofs`). The hashes of every perfect subtree of the eight-leaf tree
// are from transparency-dev/merkle `testonly/constants.go` (`NodeHashes`), which carries the same tree over.

const CT_INPUTS: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

const CT_EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const CT_NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// `(leaf counted from 1, tree size, path)`, as `kSHA256Paths` gives them.
const CT_PATHS: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// `(old size, new size, proof)`, as `kSHA256Proofs` gives them.
const CT_CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn ct_leaves() -> Vec<Hash> {
    CT_INPUTS.iter().map(|input| leaf_hash(&hex(input))).collect()
}

fn ct_root(size: u64) -> Hash {
    if size == 0 { h(CT_EMPTY_ROOT) } else { h(CT_ROOTS[size as usize - 1]) }
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|s| h(s)).collect()
}

#[test]
fn the_empty_root_is_the_hash_of_the_empty_string() {
    assert_eq!(EMPTY_ROOT, h(CT_EMPTY_ROOT));
    assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
    assert_eq!(root(&[]), EMPTY_ROOT);
    assert_eq!(CompactRange::new().root(), EMPTY_ROOT);
}

#[test]
fn roots_of_the_reference_tree_match_the_known_answers() {
    let leaves = ct_leaves();
    for size in 0..=8 {
        assert_eq!(root(&leaves[..size]), ct_root(size as u64), "root of {size} leaves");
    }
}

#[test]
fn every_perfect_subtree_of_the_reference_tree_matches_the_known_answers() {
    let tree = MemoryTree::from_leaves(ct_leaves());
    for (level, nodes) in CT_NODES.iter().enumerate() {
        for (index, expected) in nodes.iter().enumerate() {
            assert_eq!(tree.node(level as u8, index as u64), Ok(h(expected)), "node ({level}, {index})");
        }
    }
    assert_eq!(tree.node(4, 0), Err(MissingNode { level: 4, index: 0 }));
    assert_eq!(tree.node(0, 8), Err(MissingNode { level: 0, index: 8 }));
}

#[test]
fn a_compact_range_gives_every_known_root_as_leaves_arrive() {
    let mut range = CompactRange::new();
    for (i, leaf) in ct_leaves().into_iter().enumerate() {
        range.push(leaf);
        assert_eq!(range.size(), i as u64 + 1);
        assert_eq!(range.root(), ct_root(i as u64 + 1));
    }
    // Eight leaves make one perfect tree, so one peak.
    assert_eq!(range.peaks(), &[h(CT_ROOTS[7])]);
}

#[test]
fn inclusion_proofs_of_the_reference_tree_match_the_known_answers() {
    let tree = MemoryTree::from_leaves(ct_leaves());
    for (leaf, size, path) in CT_PATHS {
        let index = leaf - 1;
        let expected = hashes(path);
        assert_eq!(inclusion_proof(index, size, &tree).unwrap(), expected, "leaf {index} of {size}");
        let leaf_hash = *tree.leaf(index).unwrap();
        assert_eq!(verify_inclusion(&leaf_hash, index, size, &expected, &ct_root(size)), Ok(()));
    }
}

#[test]
fn consistency_proofs_of_the_reference_tree_match_the_known_answers() {
    let tree = MemoryTree::from_leaves(ct_leaves());
    for (old, new, proof) in CT_CONSISTENCY {
        let expected = hashes(proof);
        assert_eq!(consistency_proof(old, new, &tree).unwrap(), expected, "{old} to {new}");
        assert_eq!(verify_consistency(old, new, &expected, &ct_root(old), &ct_root(new)), Ok(()));
    }
}

#[test]
fn corrupted_known_proofs_fail_as_the_reference_implementation_expects() {
    // The probes of `VerifierCheck` and `VerifierConsistencyCheck` in the same reference test file.
    let tree = MemoryTree::from_leaves(ct_leaves());
    for (number, size, path) in CT_PATHS.into_iter().skip(1) {
        let index = number - 1;
        let proof = hashes(path);
        let leaf = *tree.leaf(index).unwrap();
        let root = ct_root(size);
        let fails = |index: u64, size: u64, proof: &[Hash], root: &Hash, leaf: &Hash| {
            verify_inclusion(leaf, index, size, proof, root).is_err()
        };
        assert!(fails(index.wrapping_sub(1), size, &proof, &root, &leaf));
        assert!(fails(index + 1, size, &proof, &root, &leaf));
        assert!(fails(index ^ 2, size, &proof, &root, &leaf));
        assert!(fails(index, size * 2, &proof, &root, &leaf));
        assert!(fails(index, size / 2, &proof, &root, &leaf));
        assert!(fails(index, size, &proof, &root, &leaf_hash(b"WrongLeaf")));
        assert!(fails(index, size, &proof, &EMPTY_ROOT, &leaf));
        for j in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[j] = EMPTY_ROOT;
            assert!(fails(index, size, &wrong, &root, &leaf));
        }
        let mut longer = proof.clone();
        longer.push(root);
        assert!(fails(index, size, &longer, &root, &leaf));
        let mut earlier = vec![root];
        earlier.extend_from_slice(&proof);
        assert!(fails(index, size, &earlier, &root, &leaf));
        if !proof.is_empty() {
            assert!(fails(index, size, &proof[..proof.len() - 1], &root, &leaf));
        }
    }
    for (old, new, proof) in CT_CONSISTENCY.into_iter().skip(1) {
        let proof = hashes(proof);
        let (r1, r2) = (ct_root(old), ct_root(new));
        let fails = |old: u64, new: u64, proof: &[Hash], r1: &Hash, r2: &Hash| {
            verify_consistency(old, new, proof, r1, r2).is_err()
        };
        assert!(fails(old - 1, new, &proof, &r1, &r2));
        assert!(fails(old + 1, new, &proof, &r1, &r2));
        assert!(fails(old ^ 2, new, &proof, &r1, &r2));
        assert!(fails(old, new * 2, &proof, &r1, &r2));
        assert!(fails(old, new / 2, &proof, &r1, &r2));
        assert!(fails(old, new, &proof, &leaf_hash(b"WrongRoot"), &r2));
        assert!(fails(old, new, &proof, &r1, &leaf_hash(b"WrongRoot")));
        assert!(fails(old, new, &proof, &r2, &r1));
        assert!(fails(old, new, &[], &r1, &r2));
        for j in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[j] = EMPTY_ROOT;
            assert!(fails(old, new, &wrong, &r1, &r2));
        }
        let mut longer = proof.clone();
        longer.push(*proof.last().unwrap());
        assert!(fails(old, new, &longer, &r1, &r2));
        assert!(fails(old, new, &proof[..proof.len() - 1], &r1, &r2));
        let mut earlier = vec![proof[0]];
        earlier.extend_from_slice(&proof);
        assert!(fails(old, new, &earlier, &r1, &r2));
    }
}

#[test]
fn trivial_consistency_proofs_follow_the_reference_rules_with_the_empty_root_checked() {
    let some = leaf_hash(b"some");
    assert_eq!(verify_consistency(0, 0, &[], &EMPTY_ROOT, &EMPTY_ROOT), Ok(()));
    assert_eq!(verify_consistency(0, 1, &[], &EMPTY_ROOT, &some), Ok(()));
    assert_eq!(verify_consistency(1, 1, &[], &some, &some), Ok(()));
    assert_eq!(
        verify_consistency(1, 0, &[], &some, &EMPTY_ROOT),
        Err(VerifyError::SizesOutOfOrder { old_size: 1, new_size: 0 })
    );
    assert_eq!(
        verify_consistency(1, 2, &[], &some, &some),
        Err(VerifyError::WrongProofLength { expected: 1, actual: 0 })
    );
    assert_eq!(verify_consistency(0, 1, &[], &some, &some), Err(VerifyError::RootMismatch));
    assert_eq!(verify_consistency(0, 0, &[], &some, &some), Err(VerifyError::RootMismatch));
    assert_eq!(verify_consistency(1, 1, &[], &some, &EMPTY_ROOT), Err(VerifyError::RootMismatch));
    assert_eq!(
        verify_consistency(1, 1, &[EMPTY_ROOT], &some, &some),
        Err(VerifyError::WrongProofLength { expected: 0, actual: 1 })
    );
    let tree = MemoryTree::from_leaves(ct_leaves());
    assert_eq!(consistency_proof(0, 8, &tree), Ok(vec![]));
    assert_eq!(consistency_proof(8, 8, &tree), Ok(vec![]));
    assert_eq!(consistency_proof(5, 4, &tree), Err(ProofError::SizesOutOfOrder { old_size: 5, new_size: 4 }));
}

#[test]
fn inclusion_proofs_reject_leaves_outside_the_tree() {
    let tree = MemoryTree::from_leaves(ct_leaves());
    assert_eq!(inclusion_proof(8, 8, &tree), Err(ProofError::IndexOutOfRange { index: 8, tree_size: 8 }));
    assert_eq!(inclusion_proof(0, 0, &tree), Err(ProofError::IndexOutOfRange { index: 0, tree_size: 0 }));
    assert_eq!(
        verify_inclusion(&EMPTY_ROOT, 0, 0, &[], &EMPTY_ROOT),
        Err(VerifyError::IndexOutOfRange { index: 0, tree_size: 0 })
    );
    assert_eq!(
        inclusion_proof(0, 9, &tree),
        Err(ProofError::Nodes(MissingNode { level: 0, index: 8 })),
        "a proof past the stored tree reports the missing node"
    );
}

#[test]
fn a_range_proof_for_the_documented_example_holds_the_documented_hashes() {
    let leaves = ct_leaves();
    let tree = MemoryTree::from_leaves(leaves[..7].iter().copied());
    let proof = range_proof(2, 5, 7, &tree).unwrap();
    assert_eq!(proof, vec![h(CT_NODES[1][0]), h(CT_NODES[0][5]), h(CT_NODES[0][6])]);
    assert_eq!(verify_range(2, 5, 7, &leaves[2..5], &proof, &ct_root(7)), Ok(()));
}

#[test]
fn range_proofs_reject_empty_and_overlong_ranges() {
    let tree = MemoryTree::from_leaves(ct_leaves());
    for (start, end) in [(3, 3), (5, 4), (0, 9)] {
        assert_eq!(range_proof(start, end, 8, &tree), Err(ProofError::InvalidRange { start, end, tree_size: 8 }));
        assert_eq!(
            verify_range(start, end, 8, &[], &[], &ct_root(8)),
            Err(VerifyError::InvalidRange { start, end, tree_size: 8 })
        );
    }
    let leaves = ct_leaves();
    assert_eq!(
        verify_range(0, 2, 8, &leaves[..3], &[], &ct_root(8)),
        Err(VerifyError::WrongLeafCount { expected: 2, actual: 3 })
    );
    let proof = range_proof(0, 2, 8, &tree).unwrap();
    assert_eq!(
        verify_range(0, 2, 8, &leaves[..2], &proof[..1], &ct_root(8)),
        Err(VerifyError::WrongProofLength { expected: 2, actual: 1 })
    );
}

#[test]
fn a_range_proof_of_the_whole_tree_is_empty() {
    let leaves = ct_leaves();
    let tree = MemoryTree::from_leaves(leaves.iter().copied());
    assert_eq!(range_proof(0, 8, 8, &tree), Ok(vec![]));
    assert_eq!(verify_range(0, 8, 8, &leaves, &[], &ct_root(8)), Ok(()));
}

#[test]
fn compact_ranges_rebuild_from_their_peaks_or_from_stored_nodes() {
    let tree = MemoryTree::from_leaves(ct_leaves());
    for size in 0..=8u64 {
        let mut prefix = MemoryTree::from_leaves(ct_leaves().into_iter().take(size as usize));
        let loaded = CompactRange::from_nodes(size, &tree).unwrap();
        assert_eq!(&loaded, prefix.compact_range());
        assert_eq!(CompactRange::from_peaks(size, loaded.peaks().to_vec()), Ok(loaded.clone()));
        assert_eq!(root_at(size, &tree), Ok(ct_root(size)));
        // Appending to the rebuilt range carries on where the full tree would.
        if size < 8 {
            let mut resumed = loaded;
            let next = *tree.leaf(size).unwrap();
            resumed.push(next);
            prefix.push(next);
            assert_eq!(resumed.root(), prefix.root());
        }
    }
    assert_eq!(
        CompactRange::from_peaks(3, vec![EMPTY_ROOT]),
        Err(CompactRangeError::WrongPeakCount { size: 3, expected: 2, actual: 1 })
    );
}

#[test]
fn error_messages_are_lowercase_without_a_trailing_period() {
    let messages = [
        ProofError::<MissingNode>::Nodes(MissingNode { level: 1, index: 2 }).to_string(),
        ProofError::<Infallible>::IndexOutOfRange { index: 3, tree_size: 2 }.to_string(),
        VerifyError::RootMismatch.to_string(),
        VerifyError::WrongProofLength { expected: 1, actual: 2 }.to_string(),
        MissingNode { level: 1, index: 2 }.to_string(),
    ];
    for message in messages {
        assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}

// A direct transcription of RFC 9162's recursive definitions over the leaf hashes, to check the node-reading
// implementation against.

fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = split_point(n);
    if m < k {
        let mut path = reference_path(m, &leaves[..k]);
        path.push(mth(&leaves[k..]));
        path
    } else {
        let mut path = reference_path(m - k, &leaves[k..]);
        path.push(mth(&leaves[..k]));
        path
    }
}

fn reference_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { vec![] } else { vec![mth(leaves)] };
    }
    let k = split_point(n);
    if m <= k {
        let mut proof = reference_subproof(m, &leaves[..k], whole);
        proof.push(mth(&leaves[k..]));
        proof
    } else {
        let mut proof = reference_subproof(m - k, &leaves[k..], false);
        proof.push(mth(&leaves[..k]));
        proof
    }
}

fn reference_consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if m == 0 || m == leaves.len() { vec![] } else { reference_subproof(m, leaves, true) }
}

/// The left-or-right decisions that RFC 9162's recursion takes for a proof. A verifier only sees the sizes
/// and indices through these, so parameters with the same decisions cannot be told apart by the proof
/// alone: that is why a checkpoint signs the size with the root.
fn decisions(mut m: u64, mut n: u64, inclusive: bool) -> Vec<bool> {
    let mut out = Vec::new();
    while n > 1 && m != n {
        let k = split(n);
        let left = if inclusive { m <= k } else { m < k };
        out.push(left);
        if left {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
    }
    out
}

/// The shape of a range proof: which subtrees the walk takes from the proof and which it computes from how
/// many leaves.
fn range_shape(start: u64, end: u64, tree_size: u64) -> Option<String> {
    fn walk(lo: u64, hi: u64, start: u64, end: u64, out: &mut String) {
        if hi <= start || end <= lo {
            out.push('p');
        } else if start <= lo && hi <= end {
            out.push_str(&format!("l{}", hi - lo));
        } else {
            let k = split(hi - lo);
            out.push('(');
            walk(lo, lo + k, start, end, out);
            walk(lo + k, hi, start, end, out);
            out.push(')');
        }
    }
    (start < end && end <= tree_size).then(|| {
        let mut out = String::new();
        walk(0, tree_size, start, end, &mut out);
        out
    })
}

fn distinct_leaves(n: usize, salt: u8) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&[&(i as u64).to_be_bytes()[..], &[salt]].concat())).collect()
}

fn flip(mut hash: Hash, bit: usize) -> Hash {
    hash[bit / 8 % 32] ^= 1 << (bit % 8);
    hash
}

fn flip_in(proof: &[Hash], which: Index, bit: usize) -> Vec<Hash> {
    let mut proof = proof.to_vec();
    let i = which.index(proof.len());
    proof[i] = flip(proof[i], bit);
    proof
}

/// A tree size up to a few thousand leaves, biased towards the small sizes where edge cases live.
fn tree_size() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..=40, 1u64..=3000]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_compact_range_agrees_with_the_recursive_root_at_every_prefix(n in 0usize..100) {
        let leaves = distinct_leaves(n, 0);
        let mut range = CompactRange::new();
        prop_assert_eq!(range.root(), EMPTY_ROOT);
        for (i, leaf) in leaves.iter().enumerate() {
            range.push(*leaf);
            prop_assert_eq!(range.root(), mth(&leaves[..=i]));
            prop_assert_eq!(range.root(), root(&leaves[..=i]));
        }
    }

    #[test]
    fn the_nodes_a_compact_range_reports_are_exactly_the_perfect_subtrees(n in 0usize..300) {
        let leaves = distinct_leaves(n, 1);
        let mut reported = Vec::new();
        let mut range = CompactRange::new();
        for leaf in &leaves {
            range.append(*leaf, |id, hash| reported.push((id, *hash)));
        }
        let mut expected = Vec::new();
        for level in 0..64u8 {
            let width = 1usize << level;
            if width > n {
                break;
            }
            for index in 0..n / width {
                expected.push((NodeId::new(level, index as u64), mth(&leaves[index * width..(index + 1) * width])));
            }
        }
        reported.sort();
        expected.sort();
        prop_assert_eq!(reported.len() as u64, 2 * n as u64 - u64::from((n as u64).count_ones()));
        prop_assert_eq!(reported, expected);
    }

    #[test]
    fn proofs_read_from_stored_nodes_equal_the_recursive_definitions(
        n in tree_size(),
        a in any::<Index>(),
        b in any::<Index>(),
    ) {
        let leaves = distinct_leaves(n as usize, 2);
        // Store exactly what a writer's compact range reports, as a store would.
        let mut store: HashMap<NodeId, Hash> = HashMap::new();
        let mut range = CompactRange::new();
        for leaf in &leaves {
            range.append(*leaf, |id, hash| { store.insert(id, *hash); });
        }
        let index = a.index(n as usize);
        let old = b.index(n as usize + 1);
        prop_assert_eq!(inclusion_proof(index as u64, n, &store).unwrap(), reference_path(index, &leaves));
        prop_assert_eq!(consistency_proof(old as u64, n, &store).unwrap(), reference_consistency(old, &leaves));
        prop_assert_eq!(root_at(old as u64, &store).unwrap(), mth(&leaves[..old]));
        prop_assert!(inclusion_proof_nodes(index as u64, n).unwrap().len() <= 2 * 64);
    }

    #[test]
    fn inclusion_proofs_verify_and_any_corruption_fails(
        n in tree_size(),
        at in any::<Index>(),
        which in any::<Index>(),
        bit in 0usize..256,
        size_bit in 0u32..64,
        index_bit in 0u32..64,
    ) {
        let tree = MemoryTree::from_leaves(distinct_leaves(n as usize, 3));
        let index = at.index(n as usize) as u64;
        let leaf = *tree.leaf(index).unwrap();
        let root = tree.root();
        let proof = inclusion_proof(index, n, &tree).unwrap();
        prop_assert_eq!(verify_inclusion(&leaf, index, n, &proof, &root), Ok(()));

        prop_assert!(verify_inclusion(&flip(leaf, bit), index, n, &proof, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, index, n, &proof, &flip(root, bit)).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(&leaf, index, n, &flip_in(&proof, which, bit), &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(&leaf, index, n, &longer, &root).is_err());

        // A changed size or index either fails or asks the very same questions of the proof.
        let other_size = n ^ (1 << size_bit);
        if verify_inclusion(&leaf, index, other_size, &proof, &root).is_ok() {
            prop_assert_eq!(decisions(index, other_size, false), decisions(index, n, false));
        }
        let other_index = index ^ (1 << index_bit);
        if verify_inclusion(&leaf, other_index, n, &proof, &root).is_ok() {
            prop_assert_eq!(decisions(other_index, n, false), decisions(index, n, false));
        }
    }

    #[test]
    fn consistency_proofs_verify_and_any_corruption_fails(
        n in tree_size(),
        at in any::<Index>(),
        which in any::<Index>(),
        bit in 0usize..256,
        size_bit in 0u32..64,
    ) {
        let leaves = distinct_leaves(n as usize, 4);
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        // Every old size from 1 to n, both ends included.
        let old = at.index(n as usize) as u64 + 1;
        let (old_root, new_root) = (root(&leaves[..old as usize]), tree.root());
        let proof = consistency_proof(old, n, &tree).unwrap();
        prop_assert_eq!(verify_consistency(old, n, &proof, &old_root, &new_root), Ok(()));

        prop_assert!(verify_consistency(old, n, &proof, &flip(old_root, bit), &new_root).is_err());
        prop_assert!(verify_consistency(old, n, &proof, &old_root, &flip(new_root, bit)).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_consistency(old, n, &flip_in(&proof, which, bit), &old_root, &new_root).is_err());
            prop_assert!(verify_consistency(old, n, &proof[1..], &old_root, &new_root).is_err());
        }

        let other_new = n ^ (1 << size_bit);
        if verify_consistency(old, other_new, &proof, &old_root, &new_root).is_ok() {
            prop_assert_eq!(decisions(old, other_new, true), decisions(old, n, true));
        }
        let other_old = old ^ (1 << size_bit);
        if verify_consistency(other_old, n, &proof, &old_root, &new_root).is_ok() {
            prop_assert_eq!(decisions(other_old, n, true), decisions(old, n, true));
        }
    }

    #[test]
    fn range_proofs_verify_and_any_corruption_fails(
        n in tree_size(),
        a in any::<Index>(),
        b in any::<Index>(),
        which in any::<Index>(),
        bit in 0usize..256,
        param_bit in 0u32..64,
    ) {
        let leaves = distinct_leaves(n as usize, 5);
        let tree = MemoryTree::from_leaves(leaves.iter().copied());
        let root = tree.root();
        let (x, y) = (a.index(n as usize) as u64, b.index(n as usize) as u64);
        let (start, end) = (x.min(y), x.max(y) + 1);
        let range = &leaves[start as usize..end as usize];
        let proof = range_proof(start, end, n, &tree).unwrap();
        prop_assert!(proof.len() <= 2 * 64);
        prop_assert_eq!(verify_range(start, end, n, range, &proof, &root), Ok(()));

        prop_assert!(verify_range(start, end, n, range, &proof, &flip(root, bit)).is_err());
        let corrupted_leaves = flip_in(range, which, bit);
        prop_assert!(verify_range(start, end, n, &corrupted_leaves, &proof, &root).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_range(start, end, n, range, &flip_in(&proof, which, bit), &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_range(start, end, n, range, &longer, &root).is_err());

        let shape = range_shape(start, end, n);
        let others = [
            (start ^ (1 << param_bit), end, n),
            (start, end ^ (1 << param_bit), n),
            (start, end, n ^ (1 << param_bit)),
        ];
        for (s, e, size) in others {
            if verify_range(s, e, size, range, &proof, &root).is_ok() {
                prop_assert_eq!(range_shape(s, e, size), shape.clone());
            }
        }
    }

    #[test]
    fn proof_node_lists_name_what_the_proofs_read(
        n in tree_size(),
        a in any::<Index>(),
        b in any::<Index>(),
    ) {
        let tree = MemoryTree::from_leaves(distinct_leaves(n as usize, 6));
        let (x, y) = (a.index(n as usize) as u64, b.index(n as usize) as u64);
        let (start, end) = (x.min(y), x.max(y) + 1);
        // Serve each proof from only the nodes its list names.
        let only = |ids: Vec<NodeId>| -> HashMap<NodeId, Hash> {
            ids.into_iter().map(|id| (id, tree.node(id.level, id.index).unwrap())).collect()
        };
        let inclusion = only(inclusion_proof_nodes(x, n).unwrap());
        prop_assert_eq!(inclusion_proof(x, n, &inclusion), inclusion_proof(x, n, &tree));
        let consistency = only(consistency_proof_nodes(x + 1, n).unwrap());
        prop_assert_eq!(
            consistency_proof(x + 1, n, &consistency),
            consistency_proof(x + 1, n, &tree)
        );
        let range = only(range_proof_nodes(start, end, n).unwrap());
        prop_assert_eq!(
            range_proof(start, end, n, &range),
            range_proof(start, end, n, &tree)
        );
        let peaks = only(root_nodes(n));
        prop_assert_eq!(root_at(n, &peaks), Ok(tree.root()));
    }
}
