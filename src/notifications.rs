//! When to notify clients, as ElectrumX's `Notifications`: block and mempool updates
//! are merged per height, so a client hears once per height, after the mempool has
//! been refreshed against the new block (a tx that moved from the mempool into the
//! block then changes its status once, not twice).

use crate::hashes::{HashX, Height};
use std::collections::{BTreeMap, HashSet};

/// Touched scripts waiting for their notification, by height.
#[derive(Default)]
pub struct NotificationMerge {
    from_mempool: BTreeMap<Height, HashSet<HashX>>,
    from_blocks: BTreeMap<Height, HashSet<HashX>>,
    highest_block: Option<Height>,
}

impl NotificationMerge {
    /// The block processor reached `height`, touching `touched`. Returns what to notify
    /// now, if anything.
    pub fn on_block(
        &mut self,
        height: Height,
        touched: HashSet<HashX>,
    ) -> Option<(Height, HashSet<HashX>)> {
        self.from_blocks.entry(height).or_default().extend(touched);
        self.highest_block = Some(height);
        self.maybe_notify()
    }

    /// The mempool was refreshed against the index at `height`.
    pub fn on_mempool(
        &mut self,
        height: Height,
        touched: HashSet<HashX>,
    ) -> Option<(Height, HashSet<HashX>)> {
        self.from_mempool.entry(height).or_default().extend(touched);
        self.maybe_notify()
    }

    fn maybe_notify(&mut self) -> Option<(Height, HashSet<HashX>)> {
        let common = self
            .from_mempool
            .keys()
            .rev()
            .find(|h| self.from_blocks.contains_key(h))
            .copied();
        let height = match common {
            Some(height) => height,
            None => {
                let highest_mempool = self.from_mempool.keys().next_back().copied();
                match (highest_mempool, self.highest_block) {
                    (Some(mempool), Some(block)) if mempool == block => block,
                    // A block is being processed, or the mempool has not caught up with
                    // the new height yet: wait.
                    _ => return None,
                }
            }
        };
        let mut touched = self.from_mempool.remove(&height).unwrap_or_default();
        self.from_mempool.retain(|h, _| *h > height);
        let older: Vec<Height> = self.from_blocks.range(..=height).map(|(h, _)| *h).collect();
        for h in older {
            if let Some(set) = self.from_blocks.remove(&h) {
                touched.extend(set);
            }
        }
        Some((height, touched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(height: u32) -> Height {
        Height::new(height)
    }

    fn set(items: &[u8]) -> HashSet<HashX> {
        items.iter().map(|n| HashX([*n; 11])).collect()
    }

    #[test]
    fn a_block_waits_for_the_mempool_at_its_height() {
        let mut merge = NotificationMerge::default();
        assert_eq!(merge.on_mempool(h(5), set(&[1])), None, "no block seen yet");
        assert_eq!(merge.on_block(h(5), set(&[2])), Some((h(5), set(&[1, 2]))));
        assert_eq!(
            merge.on_block(h(6), set(&[3])),
            None,
            "mempool not refreshed at 6"
        );
        assert_eq!(
            merge.on_mempool(h(6), set(&[4])),
            Some((h(6), set(&[3, 4])))
        );
    }

    #[test]
    fn mempool_updates_at_the_tip_notify_at_once() {
        let mut merge = NotificationMerge::default();
        merge.on_mempool(h(7), set(&[]));
        merge.on_block(h(7), set(&[]));
        assert_eq!(merge.on_mempool(h(7), set(&[9])), Some((h(7), set(&[9]))));
        assert_eq!(
            merge.on_mempool(h(6), set(&[8])),
            None,
            "a stale mempool height waits"
        );
    }

    #[test]
    fn older_block_sets_are_merged_into_the_next_notification() {
        let mut merge = NotificationMerge::default();
        merge.on_block(h(10), set(&[1]));
        merge.on_block(h(11), set(&[2]));
        assert_eq!(
            merge.on_mempool(h(11), set(&[3])),
            Some((h(11), set(&[1, 2, 3])))
        );
    }
}
