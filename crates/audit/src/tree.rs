//! RFC 9162 Merkle tree algorithms: hashes, roots, inclusion and
//! consistency proofs and their verification. Storage-agnostic: proofs are
//! built from a [`NodeSource`] that serves complete subtree roots.
//!
//! Notation: node `(level, index)` is the root of the complete subtree over
//! leaves `[index·2^level, (index+1)·2^level)`.

use ring::digest::{Context, SHA256};

pub type Hash = [u8; 32];

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Context::new(&SHA256);
    h.update(&[0u8]);
    h.update(entry);
    finish(h)
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Context::new(&SHA256);
    h.update(&[1u8]);
    h.update(left);
    h.update(right);
    finish(h)
}

/// The hash of the empty tree: `SHA-256()`.
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Why a proof or root could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("sizes {old} → {new} are not a valid consistency pair (need 0 < old ≤ new)")]
    BadSizes { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("storage: {0}")]
    Storage(String),
}

/// Serves complete subtree roots.
pub trait NodeSource {
    /// Root of the complete subtree `(level, index)`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError>;

    /// A remembered root of the incomplete range `[start, end)`, if any.
    /// Such roots never change once `end` leaves exist, so sources may keep
    /// them; proofs at the same size then share the right-edge work.
    fn cached_range(&self, _start: u64, _end: u64) -> Option<Hash> {
        None
    }

    /// Offers the root of the incomplete range `[start, end)` for caching.
    fn remember_range(&self, _start: u64, _end: u64, _root: &Hash) {}
}

/// MTH of leaves `[start, end)`; `start` must be aligned as it is in every
/// RFC 9162 recursion (a multiple of the largest power of two ≤ end−start).
pub fn range_root(src: &dyn NodeSource, start: u64, end: u64) -> Result<Hash, ProofError> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return src.node(level, start >> level);
    }
    if let Some(h) = src.cached_range(start, end) {
        return Ok(h);
    }
    let k = split(n);
    let left = range_root(src, start, start + k)?;
    let right = range_root(src, start + k, end)?;
    let h = node_hash(&left, &right);
    src.remember_range(start, end, &h);
    Ok(h)
}

/// Root of the tree of the first `size` leaves.
pub fn root(src: &dyn NodeSource, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(src, 0, size)
}

/// RFC 9162 PATH(index, D[size]): the audit path of leaf `index`.
pub fn inclusion_proof(
    src: &dyn NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::with_capacity(64);
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path(
    src: &dyn NodeSource,
    m: u64,
    a: u64,
    b: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = b - a;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m - a < k {
        path(src, m, a, a + k, out)?;
        out.push(range_root(src, a + k, b)?);
    } else {
        path(src, m, a + k, b, out)?;
        out.push(range_root(src, a, a + k)?);
    }
    Ok(())
}

/// RFC 9162 PROOF(old, D[new]): the consistency proof between two sizes.
pub fn consistency_proof(
    src: &dyn NodeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    let mut out = Vec::with_capacity(64);
    if old < new {
        subproof(src, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof(
    src: &dyn NodeSource,
    m: u64,
    a: u64,
    b: u64,
    start: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = b - a;
    if m == n {
        if !start {
            out.push(range_root(src, a, b)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, a, a + k, start, out)?;
        out.push(range_root(src, a + k, b)?);
    } else {
        subproof(src, m - k, a + k, b, false, out)?;
        out.push(range_root(src, a, a + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of
/// `size` leaves with root `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `new` leaves with root
/// `new_root` extends the tree of `old` leaves with root `old_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    if path.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a growing tree: the roots of the complete subtrees
/// that make up the first `size` leaves (one per set bit of `size`, largest
/// first). Appending a leaf returns the complete nodes it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of `size` leaves from stored complete nodes.
    pub fn at(src: &dyn NodeSource, size: u64) -> Result<Self, ProofError> {
        let mut peaks = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                peaks.push(src.node(level, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Self { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. Calls `emit(level, index, hash)` for every
    /// complete node the append creates, the leaf itself first.
    pub fn push(&mut self, leaf: Hash, mut emit: impl FnMut(u32, u64, &Hash)) {
        let index = self.size;
        emit(0, index, &leaf);
        let mut h = leaf;
        let mut level = 0u32;
        // Each trailing one bit of `index` is a complete left sibling.
        while (index >> level) & 1 == 1 {
            let left = self.peaks.pop().unwrap_or_default();
            h = node_hash(&left, &h);
            level += 1;
            emit(level, index >> level, &h);
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        match self.peaks.split_last() {
            None => empty_root(),
            Some((last, rest)) => rest.iter().rev().fold(*last, |acc, p| node_hash(p, &acc)),
        }
    }
}

/// A complete in-memory tree (all levels), for tests and small logs.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.frontier.push(leaf, |level, index, h| {
            let l = level as usize;
            if levels.len() <= l {
                levels.push(Vec::new());
            }
            debug_assert_eq!(levels[l].len() as u64, index);
            levels[l].push(*h);
        });
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

impl NodeSource for MemoryTree {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or_else(|| ProofError::Storage(format!("no node ({level}, {index})")))
    }
}

/// Lowercase hex of a hash.
pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex characters.
pub fn parse_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
