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
        let (mut branch, _) = segment_branch(segment, index - start, self.depth)?;
        let (upper, _) = branch_and_root(&self.level, index / size)?;
        branch.extend(upper);
        Some(branch)
    }
}

/// The branch of `segment[index]` up to `depth` levels above the leaves, and the node
/// there: a segment of `2^depth` leaves of a bigger tree, or the short last one, whose
/// root keeps being paired with itself up to `depth` as it is in the whole tree.
pub fn segment_branch(segment: &[Node], index: usize, depth: u32) -> Option<(Vec<Node>, Node)> {
    let (mut branch, mut node) = branch_and_root(segment, index)?;
    while branch.len() < depth as usize {
        branch.push(node);
        node = parent(&node, &node);
    }
    Some((branch, node))
}

/// The node `depth` levels above a segment of leaves: its root, paired with itself up
/// to `depth` when the segment is the short last one. `None` for no leaves.
pub fn segment_root(segment: &[Node], depth: u32) -> Option<Node> {
    segment_branch(segment, 0, depth).map(|(_, node)| node)
}

/// Every level of a merkle tree, for many branches of one tree.
pub struct Tree {
    /// From the leaves up to the root; an odd level's last node is paired with itself.
    levels: Vec<Vec<Node>>,
}

impl Tree {
    /// `None` for no leaves.
    pub fn new(leaves: Vec<Node>) -> Option<Tree> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let up = level
                .chunks(2)
                .map(|pair| parent(&pair[0], &pair[pair.len() - 1]))
                .collect();
            levels.push(up);
        }
        Some(Tree { levels })
    }

    pub fn root(&self) -> Node {
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_default()
    }

    /// Hashes it took to build the tree.
    pub fn node_count(&self) -> usize {
        self.levels.iter().skip(1).map(Vec::len).sum()
    }

    /// The branch of leaf `index`; `None` if out of range.
    pub fn branch(&self, index: usize) -> Option<Vec<Node>> {
        self.levels.first()?.get(index)?;
        let mut index = index;
        let mut branch = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            // A last node without a partner is its own sibling.
            branch.push(*level.get(index ^ 1).unwrap_or(&level[index]));
            index /= 2;
        }
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
    fn a_tree_of_levels_and_segments_give_the_same_branches() {
        for count in 1..=40usize {
            let leaves: Vec<Node> = (0..count as u8).map(leaf).collect();
            let tree = Tree::new(leaves.clone()).unwrap();
            let depth = 2;
            let size = 1 << depth;
            let level: Vec<Node> = leaves
                .chunks(size)
                .map(|segment| segment_root(segment, depth).unwrap())
                .collect();
            let upper = Tree::new(level).unwrap();
            for index in 0..count {
                let (branch, root) = branch_and_root(&leaves, index).unwrap();
                assert_eq!(
                    tree.branch(index).unwrap(),
                    branch,
                    "{count} leaves, {index}"
                );
                assert_eq!(tree.root(), root);
                if count > size {
                    let start = index / size * size;
                    let segment = &leaves[start..count.min(start + size)];
                    let (mut by_segment, _) =
                        segment_branch(segment, index - start, depth).unwrap();
                    by_segment.extend(upper.branch(index / size).unwrap());
                    assert_eq!(by_segment, branch, "{count} leaves, {index}, by segment");
                    assert_eq!(upper.root(), root);
                }
            }
            assert!(tree.branch(count).is_none());
        }
    }

    #[test]
    fn a_single_leaf_is_its_own_root() {
        let (branch, root) = branch_and_root(&[leaf(1)], 0).unwrap();
        assert!(branch.is_empty());
        assert_eq!(root, leaf(1));
    }
}
