//! Merkle branches as the Electrum protocol returns them: double-SHA256 of
//! `left || right`, the last node of an odd level paired with itself, the branch listed
//! from the leaf's level upwards.

use bitcoin::hashes::{Hash, HashEngine, sha256d};

pub type Node = [u8; 32];

fn parent(left: &Node, right: &Node) -> Node {
    let mut engine = sha256d::Hash::engine();
    engine.input(left);
    engine.input(right);
    sha256d::Hash::from_engine(engine).to_byte_array()
}

/// The branch proving `leaves[index]` and the root. `None` if `index` is out of range.
pub fn branch_and_root(leaves: &[Node], index: usize) -> Option<(Vec<Node>, Node)> {
    if index >= leaves.len() {
        return None;
    }
    let mut level: Vec<Node> = leaves.to_vec();
    let mut index = index;
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        branch.push(level[index ^ 1]);
        level = level
            .chunks_exact(2)
            .map(|pair| parent(&pair[0], &pair[1]))
            .collect();
        index /= 2;
    }
    Some((branch, level[0]))
}

/// Recomputes the root from a leaf and its branch (for tests and clients).
pub fn root_from_branch(leaf: &Node, branch: &[Node], index: usize) -> Node {
    let mut node = *leaf;
    let mut index = index;
    for sibling in branch {
        node = if index.is_multiple_of(2) {
            parent(&node, sibling)
        } else {
            parent(sibling, &node)
        };
        index /= 2;
    }
    node
}

/// ElectrumX's `MerkleCache` for one block: the level of the block's merkle tree
/// `depth` above the transactions. A branch then needs only the transaction's segment
/// of `2^depth` txids and this level, about 2·√n hashes instead of n.
pub struct MerkleLevel {
    depth: u32,
    level: Vec<Node>,
}

impl MerkleLevel {
    pub fn new(leaves: &[Node]) -> MerkleLevel {
        // ElectrumX: tree_depth(n) // 2, where tree_depth(n) = ceil(log2(n)) + 1.
        let tree_depth = usize::BITS - leaves.len().saturating_sub(1).leading_zeros() + 1;
        let depth = tree_depth / 2;
        let mut level = leaves.to_vec();
        for _ in 0..depth {
            level = level
                .chunks(2)
                // A last node without a partner is paired with itself.
                .map(|pair| parent(&pair[0], &pair[pair.len() - 1]))
                .collect();
        }
        MerkleLevel { depth, level }
    }

    /// The branch of `leaves[index]`; `leaves` are those the level was made from.
    /// `None` if `index` is out of range.
    pub fn branch(&self, leaves: &[Node], index: usize) -> Option<Vec<Node>> {
        let size = 1usize << self.depth;
        let start = index / size * size;
        let segment = leaves.get(start..leaves.len().min(start + size))?;
        let (mut branch, mut root) = branch_and_root(segment, index - start)?;
        // A short last segment: its root keeps being paired with itself up to the level.
        while branch.len() < self.depth as usize {
            branch.push(root);
            root = parent(&root, &root);
        }
        let (upper, _) = branch_and_root(&self.level, index / size)?;
        branch.extend(upper);
        Some(branch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u8) -> Node {
        sha256d::Hash::hash(&[n]).to_byte_array()
    }

    #[test]
    fn every_branch_proves_its_leaf() {
        for count in 1..=17usize {
            let leaves: Vec<Node> = (0..count as u8).map(leaf).collect();
            let (_, root) = branch_and_root(&leaves, 0).unwrap();
            for index in 0..count {
                let (branch, r) = branch_and_root(&leaves, index).unwrap();
                assert_eq!(r, root);
                assert_eq!(root_from_branch(&leaves[index], &branch, index), root);
            }
            assert!(branch_and_root(&leaves, count).is_none());
        }
    }

    #[test]
    fn a_single_leaf_is_its_own_root() {
        let (branch, root) = branch_and_root(&[leaf(1)], 0).unwrap();
        assert!(branch.is_empty());
        assert_eq!(root, leaf(1));
    }
}
