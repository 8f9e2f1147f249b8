//! The transparency log's Merkle tree (RFC 6962): append entries, state the tree head,
//! prove an entry is included and that a later tree extends an earlier one; and the
//! client-side checks of those proofs.
//!
//! An entry is identified by the sha256 of its canonical bytes; that 32-byte digest is
//! the RFC 6962 leaf input, so the tree keeps 32 bytes per entry in memory.

use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::{Digest as _, Sha256};

pub type Hash = [u8; 32];

/// The size and root of the tree at some point: what a checkpoint signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("entry {index} is not in a log of {size} entries")]
    OutOfRange { index: u64, size: u64 },
    #[error("a log of {new} entries cannot extend one of {old}: the log shrank (rollback)")]
    Shrank { old: u64, new: u64 },
    #[error("the inclusion proof does not lead to the tree head: the entry is not in this log")]
    NotIncluded,
    #[error(
        "the log of {new} entries is not an extension of the one of {old} entries seen before: its history was rewritten (fork)"
    )]
    Inconsistent { old: u64, new: u64 },
    #[error("the proof is malformed")]
    Malformed,
}

/// The whole tree, in memory: 64 bytes per entry (its leaf hash and, amortized, one inner
/// node). `levels[0]` holds the leaf hashes (RFC 6962 `H(0x00 || entry)`); `levels[k][i]`
/// is the root of the complete subtree of `2^k` leaves that starts at leaf `i * 2^k`.
/// Only complete subtrees are kept, so an append hashes twice on average (a leaf, and the
/// parents it completes) and a tree of `n` entries is built from their digests with `2n`
/// hashes ([`MerkleLog::from_entries`]); a subtree that is not complete (the right edge)
/// is computed from the complete ones when asked for, in `O(log n)`.
///
/// Proofs are RFC 6962's `PATH` and `PROOF`, checked by [`verify_inclusion`] and
/// [`verify_consistency`] (the `ct-merkle` library, an independent implementation); the
/// tests compare both proofs and roots with that library's tree for every size up to a few
/// hundred.
#[derive(Default)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    pub fn new() -> MerkleLog {
        MerkleLog::default()
    }

    /// Builds the tree from every entry digest, in log order, level by level.
    pub fn from_entries(entries: impl IntoIterator<Item = Hash>) -> MerkleLog {
        let leaves: Vec<Hash> = entries.into_iter().map(|e| leaf_hash(&e)).collect();
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() >= 2) {
            let above: Vec<Hash> = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        MerkleLog { levels }
    }

    /// Appends an entry; returns its index.
    pub fn append(&mut self, entry: Hash) -> u64 {
        let index = self.size();
        let mut node = leaf_hash(&entry);
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(node);
            if nodes.len() % 2 == 1 {
                return index;
            }
            node = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            level += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn head(&self) -> TreeHead {
        let size = self.size();
        let root = if size == 0 {
            Sha256::digest(b"").into()
        } else {
            self.subtree(0, size)
        };
        TreeHead { size, root }
    }

    /// The root of the `n` leaves from `start` (`n > 0`). Called with the ranges RFC
    /// 6962's recursion makes, whose start is a multiple of every power of two up to `n`:
    /// a complete one is stored, any other splits at the largest power of two below `n`.
    fn subtree(&self, start: u64, n: u64) -> Hash {
        if n.is_power_of_two() {
            let level = n.trailing_zeros() as usize;
            if let Some(node) = self
                .levels
                .get(level)
                .and_then(|l| l.get((start >> level) as usize))
            {
                return *node;
            }
        }
        let k = split_point(n);
        node_hash(&self.subtree(start, k), &self.subtree(start + k, n - k))
    }

    /// The audit path proving entry `index` is in the current tree.
    pub fn prove_inclusion(&self, index: u64) -> Result<Vec<Hash>, LogError> {
        let size = self.size();
        if index >= size {
            return Err(LogError::OutOfRange { index, size });
        }
        // RFC 6962 2.1.1 PATH(m, D[n]), siblings from the leaf up.
        let mut path = Vec::new();
        let (mut m, mut start, mut n) = (index, 0, size);
        let mut siblings = Vec::new();
        while n > 1 {
            let k = split_point(n);
            if m < k {
                siblings.push((start + k, n - k));
                n = k;
            } else {
                siblings.push((start, k));
                m -= k;
                start += k;
                n -= k;
            }
        }
        for (start, n) in siblings.into_iter().rev() {
            path.push(self.subtree(start, n));
        }
        Ok(path)
    }

    /// The proof that the current tree extends the tree of its first `old_size` entries.
    pub fn prove_consistency(&self, old_size: u64) -> Result<Vec<Hash>, LogError> {
        let size = self.size();
        if old_size > size {
            return Err(LogError::Shrank {
                old: old_size,
                new: size,
            });
        }
        if old_size == 0 || old_size == size {
            return Ok(Vec::new());
        }
        // RFC 6962 2.1.2 SUBPROOF(m, D[n], true), nodes from the bottom up.
        let mut nodes = Vec::new();
        let (mut m, mut start, mut n, mut whole) = (old_size, 0, size, true);
        while m != n {
            let k = split_point(n);
            if m <= k {
                nodes.push((start + k, n - k));
                n = k;
            } else {
                nodes.push((start, k));
                m -= k;
                start += k;
                n -= k;
                whole = false;
            }
        }
        if !whole {
            nodes.push((start, n));
        }
        Ok(nodes
            .into_iter()
            .rev()
            .map(|(start, n)| self.subtree(start, n))
            .collect())
    }
}

/// The largest power of two smaller than `n` (`n >= 2`): where RFC 6962 splits a tree.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The right edge of a log's tree: the roots of its perfect subtrees, largest first. It
/// is all a monitor needs to append entries and compute the new root, so a monitor that
/// reads every entry once can check them against a signed checkpoint without keeping the
/// log (O(log n) hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

fn leaf_hash(entry: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds a frontier from its size and nodes (as [`Frontier::nodes`] returned them).
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Frontier, LogError> {
        if nodes.len() != size.count_ones() as usize {
            return Err(LogError::Malformed);
        }
        Ok(Frontier { size, nodes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends the entry with this digest (the same leaf input as [`MerkleLog::append`]).
    pub fn push(&mut self, entry: &Hash) {
        let mut node = leaf_hash(entry);
        let mut size = self.size;
        while size & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The tree head of everything pushed so far.
    pub fn head(&self) -> TreeHead {
        let mut nodes = self.nodes.iter().rev();
        let root = match nodes.next() {
            None => Sha256::digest(b"").into(),
            Some(last) => nodes.fold(*last, |acc, left| node_hash(left, &acc)),
        };
        TreeHead {
            size: self.size,
            root,
        }
    }
}

fn join(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

fn root_hash(head: &TreeHead) -> RootHash<Sha256> {
    RootHash::new(head.root.into(), head.size)
}

/// Checks that `entry` is entry `index` of the tree with `head`.
pub fn verify_inclusion(
    head: &TreeHead,
    entry: &Hash,
    index: u64,
    proof: &[Hash],
) -> Result<(), LogError> {
    if index >= head.size {
        return Err(LogError::OutOfRange {
            index,
            size: head.size,
        });
    }
    let proof =
        InclusionProof::<Sha256>::try_from_bytes(join(proof)).map_err(|_| LogError::Malformed)?;
    root_hash(head)
        .verify_inclusion(entry, index, &proof)
        .map_err(|_| LogError::NotIncluded)
}

/// Checks that the tree with head `new` extends the tree with head `old`: same history,
/// only appended to. A client keeps the last head it saw and refuses anything else.
pub fn verify_consistency(old: &TreeHead, new: &TreeHead, proof: &[Hash]) -> Result<(), LogError> {
    if new.size < old.size {
        return Err(LogError::Shrank {
            old: old.size,
            new: new.size,
        });
    }
    if old.size == 0 {
        return Ok(());
    }
    if old.size == new.size {
        return if old.root == new.root {
            Ok(())
        } else {
            Err(LogError::Inconsistent {
                old: old.size,
                new: new.size,
            })
        };
    }
    let proof =
        ConsistencyProof::<Sha256>::try_from_bytes(join(proof)).map_err(|_| LogError::Malformed)?;
    root_hash(new)
        .verify_consistency(&root_hash(old), &proof)
        .map_err(|_| LogError::Inconsistent {
            old: old.size,
            new: new.size,
        })
}

#[cfg(test)]
mod tests {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use sha2::Digest;

    use super::*;

    fn split(bytes: &[u8]) -> Vec<Hash> {
        bytes
            .chunks_exact(32)
            .map(|c| c.try_into().unwrap())
            .collect()
    }

    /// RFC 6962 §2.1, written straight from the formula: the independent implementation
    /// the library is checked against.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => {
                let mut h = Sha256::new();
                h.update([0u8]);
                h.update(&leaves[0]);
                h.finalize().into()
            }
            n => {
                let k = n.next_power_of_two() / 2;
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(mth(&leaves[..k]));
                h.update(mth(&leaves[k..]));
                h.finalize().into()
            }
        }
    }

    fn entry(i: u64) -> Hash {
        Sha256::digest(i.to_le_bytes()).into()
    }

    /// Roots for the first 1..=8 leaves of the certificate-transparency project's test
    /// inputs (used by RFC 6962 implementations as known answers).
    #[test]
    fn roots_match_the_known_answers_and_the_rfc_formula() {
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..=0x57).collect(),
            (0x60..=0x6f).collect(),
        ];
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut tree = MemoryBackedTree::<Sha256, Vec<u8>>::new();
        for (n, input) in inputs.iter().enumerate() {
            tree.push(input.clone());
            let root: Hash = (*tree.root().as_bytes()).into();
            assert_eq!(hex(&root), expected[n], "size {}", n + 1);
            assert_eq!(root, mth(&inputs[..=n]), "size {}", n + 1);
        }
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn our_log_agrees_with_the_formula_for_many_sizes() {
        let mut log = MerkleLog::new();
        let mut leaves = Vec::new();
        for i in 0..70 {
            log.append(entry(i));
            leaves.push(entry(i).to_vec());
            assert_eq!(log.head().root, mth(&leaves), "size {}", i + 1);
        }
    }

    /// Roots and proofs, byte for byte, as the `ct-merkle` library's tree gives them: for
    /// every size up to 130 every inclusion and consistency proof, and a sample beyond;
    /// whether grown by appends or built at once.
    #[test]
    fn proofs_and_roots_match_an_independent_implementation() {
        let mut theirs = MemoryBackedTree::<Sha256, Hash>::new();
        let mut ours = MerkleLog::new();
        for size in 1..=1100u64 {
            theirs.push(entry(size - 1));
            ours.append(entry(size - 1));
            let built = MerkleLog::from_entries((0..size).map(entry));
            let root: Hash = (*theirs.root().as_bytes()).into();
            assert_eq!(ours.head().root, root, "size {size}");
            assert_eq!(built.head(), ours.head(), "size {size}");
            let every = size <= 130;
            let sample =
                |i: u64| every || i.is_multiple_of(97) || i + 1 == size || i.is_power_of_two();
            if !every && !size.is_multiple_of(61) && !size.is_power_of_two() && size != 1100 {
                continue;
            }
            for index in (0..size).filter(|&i| sample(i)) {
                let expected = split(theirs.prove_inclusion(index as usize).as_bytes());
                assert_eq!(
                    ours.prove_inclusion(index).unwrap(),
                    expected,
                    "{index} in {size}"
                );
                assert_eq!(
                    built.prove_inclusion(index).unwrap(),
                    expected,
                    "{index} in {size}"
                );
            }
            for old in (1..size).filter(|&i| sample(i)) {
                let expected = split(theirs.prove_consistency((size - old) as usize).as_bytes());
                assert_eq!(
                    ours.prove_consistency(old).unwrap(),
                    expected,
                    "{old} to {size}"
                );
                assert_eq!(
                    built.prove_consistency(old).unwrap(),
                    expected,
                    "{old} to {size}"
                );
            }
        }
    }

    #[test]
    fn split_points_are_the_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ] {
            assert_eq!(split_point(n), k, "{n}");
        }
    }

    #[test]
    fn every_entry_proves_included_and_no_other_does() {
        let log = MerkleLog::from_entries((0..37).map(entry));
        let head = log.head();
        for i in 0..37 {
            let proof = log.prove_inclusion(i).unwrap();
            verify_inclusion(&head, &entry(i), i, &proof).unwrap();
            assert_eq!(
                verify_inclusion(&head, &entry(i + 100), i, &proof),
                Err(LogError::NotIncluded)
            );
            if i > 0 {
                assert!(verify_inclusion(&head, &entry(i), i - 1, &proof).is_err());
            }
        }
        assert!(matches!(
            log.prove_inclusion(37),
            Err(LogError::OutOfRange { .. })
        ));
    }

    #[test]
    fn a_grown_log_is_consistent_with_every_earlier_head() {
        let mut log = MerkleLog::new();
        let mut heads = vec![log.head()];
        for i in 0..40 {
            log.append(entry(i));
            heads.push(log.head());
        }
        let now = log.head();
        for old in &heads {
            let proof = log.prove_consistency(old.size).unwrap();
            verify_consistency(old, &now, &proof).unwrap();
        }
    }

    #[test]
    fn a_forked_log_is_caught() {
        let honest = MerkleLog::from_entries((0..10).map(entry));
        let seen = honest.head();
        // Same size, then grown, but entry 3 was rewritten.
        let mut forked =
            MerkleLog::from_entries((0..10).map(|i| if i == 3 { entry(999) } else { entry(i) }));
        assert_eq!(
            verify_consistency(&seen, &forked.head(), &[]),
            Err(LogError::Inconsistent { old: 10, new: 10 })
        );
        forked.append(entry(10));
        let proof = forked.prove_consistency(10).unwrap();
        assert_eq!(
            verify_consistency(&seen, &forked.head(), &proof),
            Err(LogError::Inconsistent { old: 10, new: 11 })
        );
    }

    #[test]
    fn a_rolled_back_log_is_caught() {
        let log = MerkleLog::from_entries((0..10).map(entry));
        let seen = log.head();
        let older = MerkleLog::from_entries((0..7).map(entry));
        assert_eq!(
            verify_consistency(&seen, &older.head(), &[]),
            Err(LogError::Shrank { old: 10, new: 7 })
        );
    }

    #[test]
    fn a_frontier_computes_the_same_roots_as_the_whole_tree() {
        let mut log = MerkleLog::new();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.head(), log.head());
        for i in 0..130 {
            log.append(entry(i));
            frontier.push(&entry(i));
            assert_eq!(frontier.head(), log.head(), "size {}", i + 1);
            let again = Frontier::from_parts(frontier.size(), frontier.nodes().to_vec()).unwrap();
            assert_eq!(again, frontier);
        }
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
    }

    #[test]
    fn garbage_proofs_are_refused() {
        let log = MerkleLog::from_entries((0..8).map(entry));
        assert!(verify_inclusion(&log.head(), &entry(1), 1, &[[0u8; 32]; 40]).is_err());
        let old = MerkleLog::from_entries((0..5).map(entry)).head();
        assert!(verify_consistency(&old, &log.head(), &[[7u8; 32]; 3]).is_err());
    }
}
