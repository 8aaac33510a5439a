//! Header proofs against a checkpoint (`cp_height`): the merkle tree of the block hashes
//! from genesis to the checkpoint, without rereading and rehashing the whole chain on
//! every call. The chain is cut into segments of [`SEGMENT_SIZE`] blocks; the root of
//! every complete segment is kept, and the tree above the segments is kept for the few
//! checkpoints clients use (wallets ship one fixed checkpoint). A proof then reads and
//! hashes one segment, as ElectrumX's `MerkleCache` does.

use super::RpcError;
use crate::cache::LruCache;
use crate::hashes::Height;
use crate::merkle::{self, Node, Tree};
use crate::store::{Snapshot, StoreError, header_hash};
use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// Levels from a block hash up to a segment's root.
const SEGMENT_DEPTH: u32 = 10;
/// Blocks per segment: one proof reads and hashes at most this many headers.
pub const SEGMENT_SIZE: u64 = 1 << SEGMENT_DEPTH;
/// Checkpoints whose upper tree is kept.
const UPPER_TREES: usize = 16;

/// The work one proof did, for its price.
#[derive(Debug, Default, PartialEq)]
pub struct ProofWork {
    /// Headers read from the index and hashed.
    pub headers_hashed: u64,
}

/// A header's proof: the branch from its block hash and the root.
pub struct Proof {
    pub branch: Vec<Node>,
    pub root: Node,
}

/// What is kept between proofs (one per server).
pub struct HeaderProofs {
    /// Roots of the complete segments from genesis, each with the hash of its last
    /// block: a block hash commits to every header before it, so while the last kept
    /// segment's last block is still in the index, every kept root is still right.
    segments: Mutex<Vec<(BlockHash, Node)>>,
    /// The tree above the segments for a checkpoint, keyed by its height and block.
    uppers: LruCache<(u64, BlockHash), Arc<Tree>>,
}

impl Default for HeaderProofs {
    fn default() -> HeaderProofs {
        HeaderProofs {
            segments: Mutex::new(Vec::new()),
            uppers: LruCache::new(UPPER_TREES),
        }
    }
}

impl HeaderProofs {
    /// How many complete segments below `cp_height` are not kept yet: a proof would
    /// hash that many segments more than usual.
    pub fn segments_missing(&self, cp_height: u64) -> u64 {
        let kept = self.lock_segments().len() as u64;
        ((cp_height + 1) / SEGMENT_SIZE).saturating_sub(kept)
    }

    /// The proof of the header at `height` against the block hashes `0..=cp_height`,
    /// which the caller checked are in `snapshot`.
    pub fn prove(
        &self,
        snapshot: &Snapshot,
        height: u64,
        cp_height: u64,
        work: &mut ProofWork,
    ) -> Result<Proof, RpcError> {
        let leaves = cp_height + 1;
        let segment = height / SEGMENT_SIZE;
        let start = segment * SEGMENT_SIZE;
        let segment_hashes = block_hashes(snapshot, start, leaves.min(start + SEGMENT_SIZE), work)?;
        let index = (height - start) as usize;
        if leaves <= SEGMENT_SIZE {
            let (branch, root) =
                merkle::branch_and_root(&segment_hashes, index).ok_or_else(RpcError::internal)?;
            return Ok(Proof { branch, root });
        }
        let (mut branch, _) = merkle::segment_branch(&segment_hashes, index, SEGMENT_DEPTH)
            .ok_or_else(RpcError::internal)?;
        let upper = self.upper_tree(snapshot, cp_height, work)?;
        branch.extend(
            upper
                .branch(segment as usize)
                .ok_or_else(RpcError::internal)?,
        );
        Ok(Proof {
            branch,
            root: upper.root(),
        })
    }

    /// The tree whose leaves are the segments' roots up to `cp_height` (the short last
    /// segment's raised to the segments' level).
    fn upper_tree(
        &self,
        snapshot: &Snapshot,
        cp_height: u64,
        work: &mut ProofWork,
    ) -> Result<Arc<Tree>, RpcError> {
        let key = (cp_height, block_hash(snapshot, cp_height)?);
        if let Some(tree) = self.uppers.get(&key) {
            return Ok(tree);
        }
        let complete = (cp_height + 1) / SEGMENT_SIZE;
        let mut level = self.complete_segments(snapshot, complete, work)?;
        let short_start = complete * SEGMENT_SIZE;
        if short_start <= cp_height {
            let short = block_hashes(snapshot, short_start, cp_height + 1, work)?;
            level.push(merkle::segment_root(&short, SEGMENT_DEPTH).ok_or_else(RpcError::internal)?);
        }
        let tree = Arc::new(Tree::new(level).ok_or_else(RpcError::internal)?);
        self.uppers.insert(key, tree.clone());
        Ok(tree)
    }

    /// The roots of the first `count` complete segments, computing those not kept and
    /// dropping those a reorg replaced.
    fn complete_segments(
        &self,
        snapshot: &Snapshot,
        count: u64,
        work: &mut ProofWork,
    ) -> Result<Vec<Node>, RpcError> {
        let mut segments = self.lock_segments();
        while let Some((last_block, _)) = segments.last() {
            let end = segments.len() as u64 * SEGMENT_SIZE - 1;
            if snapshot
                .tip()?
                .is_some_and(|(tip, _)| u64::from(tip) >= end)
                && block_hash(snapshot, end)? == *last_block
            {
                break;
            }
            segments.pop();
        }
        while (segments.len() as u64) < count {
            let start = segments.len() as u64 * SEGMENT_SIZE;
            let hashes = block_hashes(snapshot, start, start + SEGMENT_SIZE, work)?;
            let root =
                merkle::segment_root(&hashes, SEGMENT_DEPTH).ok_or_else(RpcError::internal)?;
            let last = hashes.last().copied().ok_or_else(RpcError::internal)?;
            segments.push((BlockHash::from_byte_array(last), root));
        }
        Ok(segments[..count as usize]
            .iter()
            .map(|(_, root)| *root)
            .collect())
    }

    fn lock_segments(&self) -> std::sync::MutexGuard<'_, Vec<(BlockHash, Node)>> {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The block hashes of heights `from..to`, as merkle leaves.
fn block_hashes(
    snapshot: &Snapshot,
    from: u64,
    to: u64,
    work: &mut ProofWork,
) -> Result<Vec<Node>, RpcError> {
    let hashes = (from..to)
        .map(|height| block_hash(snapshot, height).map(|hash| hash.to_byte_array()))
        .collect::<Result<Vec<_>, _>>()?;
    work.headers_hashed += to - from;
    Ok(hashes)
}

fn block_hash(snapshot: &Snapshot, height: u64) -> Result<BlockHash, RpcError> {
    let header = Height::try_from(height)
        .ok()
        .map(|height| snapshot.header(height))
        .transpose()?
        .flatten()
        .ok_or_else(|| missing_header(height))?;
    Ok(header_hash(&header))
}

/// A header below the checked tip that the snapshot lacks: the index is damaged.
fn missing_header(height: u64) -> RpcError {
    log::error!(
        "{}",
        StoreError::Corrupt(format!("no header at height {height}"))
    );
    RpcError::internal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coins;
    use crate::protocol::server::ServerInfo;
    use crate::protocol::transaction::test_fixture::{Fixture, FixtureBlock};

    /// `blocks` blocks after genesis; those from height `fork` on carry `tag`.
    fn chain(
        state: Arc<crate::protocol::context::QueryState>,
        blocks: usize,
        fork: usize,
        tag: u8,
    ) -> Fixture {
        let coin = coins::lookup("Bitcoin", "mainnet").unwrap();
        let blocks: Vec<FixtureBlock> = (1..=blocks)
            .map(|height| {
                let mut block = FixtureBlock::synthetic((height % 251) as u8, 1);
                block.merkle_root[..8].copy_from_slice(&(height as u64).to_le_bytes());
                if height >= fork {
                    block.merkle_root[31] = tag;
                }
                block
            })
            .collect();
        Fixture::with_state(Arc::new(ServerInfo::new(coin)), state, &blocks)
    }

    /// The proof computed the slow way, from every block hash up to `cp_height`.
    fn expected(snapshot: &Snapshot, height: u64, cp_height: u64) -> (Vec<Node>, Node) {
        let leaves: Vec<Node> = (0..=cp_height)
            .map(|h| block_hash(snapshot, h).unwrap().to_byte_array())
            .collect();
        merkle::branch_and_root(&leaves, height as usize).unwrap()
    }

    fn check(proofs: &HeaderProofs, fixture: &Fixture, pairs: &[(u64, u64)]) -> Vec<ProofWork> {
        let snapshot = fixture.store.snapshot().unwrap();
        pairs
            .iter()
            .map(|&(height, cp_height)| {
                let mut work = ProofWork::default();
                let proof = proofs
                    .prove(&snapshot, height, cp_height, &mut work)
                    .unwrap();
                let (branch, root) = expected(&snapshot, height, cp_height);
                assert_eq!(
                    proof.branch, branch,
                    "height {height}, cp_height {cp_height}"
                );
                assert_eq!(proof.root, root, "height {height}, cp_height {cp_height}");
                work
            })
            .collect()
    }

    #[test]
    fn proofs_match_the_whole_tree_and_follow_a_reorg() {
        let state = Arc::new(crate::protocol::context::QueryState::default());
        let a = chain(state.clone(), 2600, usize::MAX, 0);
        let proofs = &state.header_proofs;
        let pairs = [
            (0, 0),
            (5, 700),
            (1023, 1023),
            (0, 1024),
            (1024, 1024),
            (1500, 2047),
            (2047, 2048),
            (3, 2600),
            (2600, 2600),
            (2100, 2599),
        ];
        check(proofs, &a, &pairs);
        // Kept segments: a proof now hashes its own segment and the checkpoint's short
        // one, at most.
        assert_eq!(proofs.segments_missing(2600), 0);
        for work in check(proofs, &a, &[(10, 2500), (2400, 2500)]) {
            assert!(work.headers_hashed <= 2 * SEGMENT_SIZE, "{work:?}");
        }
        // A reorg replacing blocks from 2,000 (inside the second segment): its root and
        // every tree above it are recomputed, the first segment's root is kept.
        let b = chain(state.clone(), 2600, 2000, 7);
        check(proofs, &b, &pairs);
        check(proofs, &b, &[(10, 2500), (2400, 2500)]);
        // And back.
        check(proofs, &a, &pairs);
    }
}
