//! The merge of a catch-up's runs against a real LMDB store: cut short at any commit it
//! resumes to the same index, finishes before the next block, and every answer read
//! while it goes on is the merged index's.

use super::tests::{block, dump, fresh, genesis_hash, plain_index, script, tx, txid};
use super::*;
use crate::chain::ParsedBlock;

/// Ten blocks of 100 transactions: each spends an output of the block before and pays
/// script 1 (a history of several rows) and one of three others.
fn spending_chain(blocks: u8) -> Vec<ParsedBlock> {
    let mut prev = genesis_hash();
    (0..blocks)
        .map(|b| {
            let txs = (0..100)
                .map(|t| {
                    let spent = (b > 0).then(|| (txid(&format!("spending {} {t}", b - 1)), 0));
                    let inputs: Vec<_> = spent.into_iter().collect();
                    tx(
                        &format!("spending {b} {t}"),
                        &inputs,
                        &[(1, 5), (2 + t % 3, 1)],
                    )
                })
                .collect();
            let block = block(prev, b + 1, txs);
            prev = block.hash;
            block
        })
        .collect()
}

/// `blocks` flushed to runs, a flush each, not merged; the merge commits 320 bytes at a
/// time and always repacks.
fn runs_of(blocks: &[ParsedBlock]) -> (tempfile::TempDir, Indexer) {
    let (dir, mut runs) = fresh(100);
    runs.write_runs();
    for b in blocks {
        runs.apply_block(b, false).unwrap();
        runs.flush().unwrap();
    }
    runs.merge_commit_bytes = 20 * crate::schema::HISTORY_KEY_LEN;
    runs.always_pack = true;
    (dir, runs)
}

#[test]
fn a_merge_cut_short_resumes_where_its_last_commit_ended() {
    let blocks = spending_chain(10);
    let expected = dump(&plain_index(&blocks).1);
    // The txid index (1,000 keys) and the outpoints (1,100) repacked, out and back; the
    // history (2,000 entries, script 1's 1,000 in one commit), the spends (900) and the
    // UTXOs (1,100) merged: some 500 commits.
    let (_d, mut whole) = runs_of(&blocks);
    whole.merge_commits_left = Some(usize::MAX);
    assert_eq!(whole.finish_runs().unwrap(), Some(2_000 + 900 + 1_100));
    assert_eq!(dump(&whole), expected);
    let commits = usize::MAX - whole.merge_commits_left.unwrap();
    assert!(commits > 300, "{commits} commits");

    let mut stages = std::collections::BTreeSet::new();
    for cut_after in (0..commits).step_by(13).chain([commits - 1]) {
        let (_dir, mut runs) = runs_of(&blocks);
        runs.merge_commits_left = Some(cut_after);
        assert!(runs.finish_runs().is_err(), "cut after {cut_after} commits");
        let store = Arc::clone(runs.store());
        let progress = store.state().unwrap().unwrap().merge;
        assert_eq!(progress.is_some(), cut_after > 0, "{progress:?}");
        stages.insert(progress.map(|p| p.stage));
        drop(runs);
        let mut resumed = Indexer::new(store, 100).unwrap();
        assert!(resumed.write_runs, "the runs are still listed");
        resumed.merge_commit_bytes = 20 * crate::schema::HISTORY_KEY_LEN;
        resumed.always_pack = true;
        resumed.finish_runs().unwrap();
        let state = resumed.store().state().unwrap().unwrap();
        assert!(state.runs.is_empty() && state.merge.is_none(), "{state:?}");
        assert_eq!(dump(&resumed), expected, "cut after {cut_after} commits");
    }
    use crate::store::MergeStage::*;
    let every = [
        None,
        Some(PackTxids),
        Some(UnpackTxids),
        Some(PackOutpoints),
        Some(UnpackOutpoints),
        Some(History),
        Some(Spends),
        Some(Utxo),
    ];
    assert_eq!(stages, every.into_iter().collect(), "cut in every stage");
}

#[test]
fn a_merge_cut_short_ends_before_the_next_block() {
    let blocks = spending_chain(11);
    let expected = dump(&plain_index(&blocks).1);
    let (_d, mut whole) = runs_of(&blocks[..10]);
    whole.merge_commits_left = Some(usize::MAX);
    whole.finish_runs().unwrap();
    let commits = usize::MAX - whole.merge_commits_left.unwrap();
    // In the repacks, the history, the spends and the UTXO stage (the last commits).
    for cut_after in [2, commits / 4, commits / 2, commits * 2 / 3, commits - 2] {
        let (_dir, mut runs) = runs_of(&blocks[..10]);
        runs.merge_commits_left = Some(cut_after);
        assert!(runs.finish_runs().is_err());
        let store = Arc::clone(runs.store());
        drop(runs);
        // The next catch-up writes runs again; its first block spends outputs whose
        // UTXO rows the cut merge was rebuilding (the last cut is in the UTXO stage).
        let mut resumed = Indexer::new(store, 100).unwrap();
        resumed.write_runs();
        resumed.apply_block(&blocks[10], false).unwrap();
        let state = resumed.store().state().unwrap().unwrap();
        assert_eq!(
            state.merge, None,
            "merged before the block, cut after {cut_after}"
        );
        assert!(resumed.write_runs, "and the catch-up still writes runs");
        resumed.flush().unwrap();
        resumed.finish_runs().unwrap();
        assert_eq!(dump(&resumed), expected, "cut after {cut_after} commits");
    }
}

/// What clients may ask of `store` about the spending chain: every script's history,
/// first use, UTXOs and balance (also within a bound), and where some outputs went.
fn answers(store: &Store) -> String {
    let snapshot = store.snapshot().unwrap();
    let mut out = String::new();
    for n in 1..=5 {
        let hashx = script(n);
        out += &format!(
            "script {n}: history {:?}\nfirst {:?}, {:?} within 3\nutxos {:?}\nbalance {:?} {:?}\n",
            snapshot.history(&hashx, usize::MAX).unwrap(),
            snapshot.first_in_history(&hashx).unwrap(),
            snapshot.history_len_within(&hashx, 3).unwrap(),
            snapshot.utxos(&hashx).unwrap(),
            snapshot.balance(&hashx).unwrap(),
            snapshot.balance_within(&hashx, 2).unwrap(),
        );
    }
    for (b, t) in [(0, 0), (3, 7), (9, 99), (10, 0)] {
        let funder = txid(&format!("spending {b} {t}"));
        for vout in [0, 1, 2] {
            out += &format!(
                "{b} {t}:{vout} {:?} {:?}\n",
                snapshot.confirmed_outpoint(&funder, vout).unwrap(),
                snapshot.utxo_of(&funder, vout).unwrap(),
            );
        }
        out += &format!("{:?}\n", snapshot.tx_position(&funder).unwrap());
    }
    out
}

#[test]
fn answers_while_the_runs_merge_are_those_of_the_merged_index() {
    let blocks = spending_chain(10);
    let expected = answers(plain_index(&blocks).1.store());
    let (_d, mut whole) = runs_of(&blocks);
    whole.merge_commits_left = Some(usize::MAX);
    whole.finish_runs().unwrap();
    assert_eq!(answers(whole.store()), expected);
    let commits = usize::MAX - whole.merge_commits_left.unwrap();

    let mut stages = std::collections::BTreeSet::new();
    for cut_after in (0..commits).step_by(11).chain([commits - 1]) {
        let (dir, mut runs) = runs_of(&blocks);
        runs.merge_commits_left = Some(cut_after);
        assert!(runs.finish_runs().is_err(), "cut after {cut_after} commits");
        let store = Arc::clone(runs.store());
        stages.insert(store.state().unwrap().unwrap().merge.map(|p| p.stage));
        assert_eq!(answers(&store), expected, "cut after {cut_after} commits");
        drop((runs, store));
        // And after a restart, which finds the runs listed.
        let store = Store::open(dir.path(), "Test", "regtest", &genesis_hash()).unwrap();
        assert_eq!(answers(&store), expected, "reopened, cut after {cut_after}");
    }
    assert_eq!(
        stages.len(),
        8,
        "read in every stage and before the first: {stages:?}"
    );
}
