//! The indexer against a real LMDB store: histories, UTXOs and balances follow the
//! chain, flush boundaries and undo leave the exact same index.

use super::*;
use crate::chain::{ParsedBlock, ParsedTx, TxOutput};
use bitcoin::OutPoint;
use bitcoin::hashes::{Hash, sha256d};

const GENESIS: [u8; 80] = [0; 80];

fn h(height: u32) -> Height {
    Height::new(height)
}

pub(super) fn genesis_hash() -> BlockHash {
    header_hash(&GENESIS)
}

pub(super) fn script(n: u8) -> HashX {
    HashX::from_script(&[0x51, n])
}

pub(super) fn txid(tag: &str) -> Txid {
    Txid::from_raw_hash(sha256d::Hash::hash(tag.as_bytes()))
}

pub(super) fn tx(tag: &str, inputs: &[(Txid, u32)], outputs: &[(u8, u64)]) -> ParsedTx {
    ParsedTx {
        txid: txid(tag),
        is_coinbase: inputs.is_empty(),
        inputs: inputs
            .iter()
            .map(|(txid, vout)| OutPoint {
                txid: *txid,
                vout: *vout,
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|(s, value)| TxOutput {
                hashx: Some(script(*s)),
                value: *value,
            })
            .collect(),
        vsize: 100,
    }
}

pub(super) fn block(prev: BlockHash, nonce: u8, txs: Vec<ParsedTx>) -> ParsedBlock {
    let mut header = [0u8; 80];
    header[4..36].copy_from_slice(prev.as_byte_array());
    header[76] = nonce;
    ParsedBlock {
        header,
        hash: header_hash(&header),
        prev_hash: prev,
        txs,
    }
}

/// genesis, then three blocks: reused scripts, a spend of a committed output, and a
/// spend of an output created earlier in the same block.
fn chain() -> Vec<ParsedBlock> {
    let b1 = block(genesis_hash(), 1, vec![tx("cb1", &[], &[(1, 50)])]);
    let b2 = block(
        b1.hash,
        2,
        vec![
            tx("cb2", &[], &[(2, 50)]),
            tx("t2", &[(txid("cb1"), 0)], &[(3, 30), (1, 20)]),
        ],
    );
    let b3 = block(
        b2.hash,
        3,
        vec![
            tx("cb3", &[], &[(2, 50)]),
            tx("t3a", &[(txid("t2"), 0)], &[(4, 29)]),
            tx("t3b", &[(txid("t3a"), 0)], &[(5, 28)]),
        ],
    );
    vec![b1, b2, b3]
}

pub(super) fn fresh(limit: u32) -> (tempfile::TempDir, Indexer) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), "Test", "regtest", &genesis_hash()).unwrap());
    let mut indexer = Indexer::new(store, limit).unwrap();
    indexer.apply_genesis(GENESIS, &genesis_hash()).unwrap();
    indexer.flush().unwrap();
    (dir, indexer)
}

pub(super) fn dump(indexer: &Indexer) -> String {
    let mut out = Vec::new();
    indexer.store().snapshot().unwrap().dump(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn history_utxos_and_balance_follow_the_chain() {
    let (_dir, mut indexer) = fresh(100);
    for b in chain() {
        indexer.apply_block(&b, true).unwrap();
    }
    indexer.flush().unwrap();
    let snap = indexer.store().snapshot().unwrap();
    let history = |s| {
        let h = snap.history(&script(s), 1000).unwrap().unwrap();
        h.iter().map(|e| (e.txid, e.height)).collect::<Vec<_>>()
    };
    assert_eq!(history(1), vec![(txid("cb1"), h(1)), (txid("t2"), h(2))]);
    assert_eq!(history(2), vec![(txid("cb2"), h(2)), (txid("cb3"), h(3))]);
    assert_eq!(history(3), vec![(txid("t2"), h(2)), (txid("t3a"), h(3))]);
    assert_eq!(history(4), vec![(txid("t3a"), h(3)), (txid("t3b"), h(3))]);
    assert_eq!(snap.balance(&script(1)).unwrap(), (20, 1));
    assert_eq!(snap.balance(&script(3)).unwrap(), (0, 0));
    assert_eq!(snap.balance(&script(4)).unwrap(), (0, 0));
    let utxos = snap.utxos(&script(2)).unwrap();
    assert_eq!(
        utxos
            .iter()
            .map(|u| (u.height, u.value))
            .collect::<Vec<_>>(),
        vec![(h(2), 50), (h(3), 50)]
    );
    assert_eq!(snap.utxos(&script(5)).unwrap()[0].txid, txid("t3b"));
    assert_eq!(
        snap.tx_position(&txid("t3a")).unwrap(),
        Some((TxNum(4), h(3)))
    );
    assert_eq!(
        snap.tx_position(&txid("cb1")).unwrap(),
        Some((TxNum(0), h(1)))
    );
    assert_eq!(snap.tx_position(&txid("nowhere")).unwrap(), None);
    assert_eq!(
        snap.utxo_of(&txid("t2"), 1).unwrap(),
        Some((script(1), TxNum(2), 20))
    );
    assert_eq!(snap.utxo_of(&txid("t2"), 0).unwrap(), None);
    assert_eq!(
        snap.history(&script(2), 2).unwrap(),
        Err(crate::store::HistoryTooLong)
    );
}

#[test]
fn flush_boundaries_do_not_change_the_index() {
    let (_d1, mut one_flush) = fresh(100);
    let (_d2, mut every_block) = fresh(100);
    for b in chain() {
        one_flush.apply_block(&b, true).unwrap();
        every_block.apply_block(&b, true).unwrap();
        every_block.flush().unwrap();
    }
    one_flush.flush().unwrap();
    assert_eq!(dump(&one_flush), dump(&every_block));
}

#[test]
fn history_runs_leave_the_same_index_across_a_restart() {
    use crate::store::runs;
    let blocks = chain();
    let keep_undo = [false, false, true];
    let (_d1, mut plain) = fresh(100);
    for (b, keep) in blocks.iter().zip(keep_undo) {
        plain.apply_block(b, keep).unwrap();
        plain.flush().unwrap();
    }

    let (dir, mut runs) = fresh(100);
    runs.write_runs();
    runs.apply_block(&blocks[0], false).unwrap();
    runs.flush().unwrap();
    let history_of_1 = |indexer: &Indexer| {
        let snapshot = indexer.store().snapshot().unwrap();
        snapshot.history(&script(1), 100).unwrap().unwrap()
    };
    // The history waits in runs, and is read from them.
    let plain_after = |count: usize| {
        let (_dir, plain) = plain_index(&blocks[..count]);
        history_of_1(&plain)
    };
    let in_table = |indexer: &Indexer| dump(indexer).lines().any(|l| l.starts_with("history"));
    assert_eq!(history_of_1(&runs), plain_after(1), "read from the run");
    assert!(!in_table(&runs), "the history waits in a run");
    // A restart: the run the state lists stays; one that no commit lists goes.
    let store = Arc::clone(runs.store());
    drop(runs);
    let stray = [crate::schema::history_key(&script(9), TxNum(0))];
    runs::write_run(dir.path(), runs::RunKind::History, 999, stray.into_iter()).unwrap();
    let mut runs = Indexer::new(store, 100).unwrap();
    assert!(!runs::run_path(dir.path(), runs::RunKind::History, 999).exists());
    runs.apply_block(&blocks[1], false).unwrap();
    runs.flush().unwrap();
    assert_eq!(history_of_1(&runs), plain_after(2));
    runs.apply_block(&blocks[2], true).unwrap();
    runs.flush().unwrap();
    assert_eq!(history_of_1(&runs), plain_after(3));
    assert!(!in_table(&runs), "blocks with undo records go to runs too");
    // Undoing merges the runs first, then finds what it deletes in the tables.
    runs.rollback(1).unwrap();
    plain.rollback(1).unwrap();
    assert_eq!(dump(&runs), dump(&plain));
    runs.apply_block(&blocks[2], true).unwrap();
    runs.flush().unwrap();
    plain.apply_block(&blocks[2], true).unwrap();
    plain.flush().unwrap();
    assert_eq!(history_of_1(&runs).len(), 2);
    assert_eq!(dump(&runs), dump(&plain));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(".run"))
        .collect();
    assert!(left.is_empty(), "runs left after the merge: {left:?}");
}

/// The index of `blocks`, each flushed straight into the tables.
pub(super) fn plain_index(blocks: &[ParsedBlock]) -> (tempfile::TempDir, Indexer) {
    let (dir, mut plain) = fresh(100);
    for b in blocks {
        plain.apply_block(b, false).unwrap();
        plain.flush().unwrap();
    }
    (dir, plain)
}

/// Ten blocks of 100 transactions, each paying script 1: a history of several rows.
fn long_history_chain() -> Vec<ParsedBlock> {
    let mut prev = genesis_hash();
    (0..10u8)
        .map(|b| {
            let txs = (0..100)
                .map(|t| tx(&format!("long {b} {t}"), &[], &[(1, 1), (2 + t % 2, 1)]))
                .collect();
            let block = block(prev, b + 1, txs);
            prev = block.hash;
            block
        })
        .collect()
}

#[test]
fn long_histories_take_the_same_rows_however_they_were_written() {
    let blocks = long_history_chain();
    let (_d1, mut one_flush) = fresh(100);
    let (_d2, mut every_block) = fresh(100);
    let (_d3, mut runs) = fresh(100);
    runs.write_runs();
    let mut dumps = Vec::new();
    for b in &blocks {
        one_flush.apply_block(b, true).unwrap();
        every_block.apply_block(b, true).unwrap();
        every_block.flush().unwrap();
        dumps.push(dump(&every_block));
        runs.apply_block(b, false).unwrap();
        runs.flush().unwrap();
    }
    one_flush.flush().unwrap();
    runs.finish_runs().unwrap();
    let snapshot = every_block.store().snapshot().unwrap();
    let history = snapshot.history(&script(1), 10_000).unwrap().unwrap();
    assert_eq!(history.len(), 1000);
    assert!(history.windows(2).all(|w| w[0].tx_num < w[1].tx_num));
    assert_eq!(snapshot.history_len_within(&script(1), 999).unwrap(), None);
    assert_eq!(
        snapshot.history_len_within(&script(1), 1000).unwrap(),
        Some(1000)
    );
    assert_eq!(
        snapshot.first_in_history(&script(1)).unwrap(),
        Some(TxNum(0))
    );
    drop(snapshot);
    let rows = |dump: &str| dump.lines().filter(|l| l.starts_with("history ")).count();
    let last = dumps.last().unwrap().clone();
    // Rows of 320: script 1 (1,000 entries) takes four, scripts 2 and 3 (500 each) two.
    assert_eq!(rows(&last), 4 + 2 + 2);
    assert_eq!(dump(&one_flush), last);
    // Runs leave no undo records: everything else is the same.
    let without_undo = |dump: &str| {
        dump.lines()
            .filter(|l| !l.starts_with("undo "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_undo(&dump(&runs)), without_undo(&last));
    // Undoing blocks cuts rows in the middle; applying them again writes the same rows.
    every_block.rollback(5).unwrap();
    assert_eq!(dump(&every_block), dumps[4]);
    for b in &blocks[5..] {
        every_block.apply_block(b, true).unwrap();
    }
    every_block.flush().unwrap();
    assert_eq!(dump(&every_block), last);
}

#[test]
fn the_utxo_table_is_rebuilt_from_the_outpoints_in_sorted_chunks() {
    use crate::schema;
    use crate::store::runs::{Merge, RunKind};
    let (dir, mut indexer) = fresh(100);
    for b in long_history_chain() {
        indexer.apply_block(&b, true).unwrap();
    }
    indexer.flush().unwrap();
    let chunks = merge::sort_unspent_in_chunks(indexer.store(), dir.path(), 300).unwrap();
    assert_eq!(chunks.len(), 7, "2,000 outputs in chunks of 300");
    let rebuilt: Vec<String> =
        Merge::<{ schema::UTXO_RECORD_LEN }>::open(dir.path(), RunKind::Utxo, &chunks)
            .unwrap()
            .map(|record| {
                let (key, value) = schema::decode_utxo_record(&record.unwrap());
                format!(
                    "utxo {} {}",
                    crate::hashes::to_hex(&key),
                    crate::hashes::to_hex(&schema::value_bytes(value))
                )
            })
            .collect();
    let table: Vec<String> = dump(&indexer)
        .lines()
        .filter(|line| line.starts_with("utxo "))
        .map(str::to_owned)
        .collect();
    assert_eq!(rebuilt.len(), 2_000);
    assert_eq!(rebuilt, table);
}

#[test]
fn rollback_restores_the_exact_earlier_index() {
    let (_dir, mut indexer) = fresh(100);
    let blocks = chain();
    let mut dumps = vec![dump(&indexer)];
    for b in &blocks {
        indexer.apply_block(b, true).unwrap();
        indexer.flush().unwrap();
        dumps.push(dump(&indexer));
    }
    let touched = indexer.rollback(1).unwrap();
    assert!(touched.contains(&script(4)) && touched.contains(&script(3)));
    assert_eq!(dump(&indexer), dumps[2]);
    indexer.apply_block(&blocks[2], true).unwrap();
    indexer.flush().unwrap();
    assert_eq!(dump(&indexer), dumps[3]);
    indexer.rollback(3).unwrap();
    assert_eq!(dump(&indexer), dumps[0]);
    assert_eq!(indexer.tip(), Some(genesis_hash()));
}

#[test]
fn too_deep_or_unrecorded_reorgs_leave_the_index_untouched() {
    let (_dir, mut indexer) = fresh(2);
    for b in chain() {
        indexer.apply_block(&b, true).unwrap();
    }
    indexer.flush().unwrap();
    let before = dump(&indexer);
    assert!(matches!(
        indexer.rollback(3),
        Err(IndexError::ReorgTooDeep { depth: 3, limit: 2 })
    ));
    assert_eq!(dump(&indexer), before);

    let (_dir2, mut no_undo) = fresh(100);
    for b in chain() {
        no_undo.apply_block(&b, false).unwrap();
    }
    no_undo.flush().unwrap();
    let before = dump(&no_undo);
    assert!(matches!(no_undo.rollback(1), Err(IndexError::NoUndo(h)) if h == Height::new(3)));
    assert_eq!(dump(&no_undo), before);
}

#[test]
fn spending_an_unknown_output_is_an_error() {
    let (_dir, mut indexer) = fresh(100);
    let bad = block(
        genesis_hash(),
        9,
        vec![
            tx("cb", &[], &[(1, 1)]),
            tx("x", &[(txid("nowhere"), 0)], &[(2, 1)]),
        ],
    );
    assert!(matches!(
        indexer.apply_block(&bad, true),
        Err(IndexError::MissingUtxo { vout: 0, .. })
    ));
    let orphan = block(txid("other").to_raw_hash().into(), 9, vec![]);
    assert!(matches!(
        indexer.apply_block(&orphan, true),
        Err(IndexError::DoesNotConnect { .. })
    ));
}

/// Who spent what: written with each block (spends of outputs committed and of outputs
/// of the same block alike), deleted with it on a reorg, rewritten by the new branch.
#[test]
fn spends_follow_blocks_flushes_and_reorgs() {
    use crate::store::ConfirmedOutpoint;
    let at = |funder_height: u32, spender: Option<(Txid, u32)>| {
        Some(ConfirmedOutpoint {
            funder_height: h(funder_height),
            spender: spender.map(|(txid, height)| (txid, h(height))),
        })
    };
    let status = |indexer: &Indexer, txid: &Txid, vout| {
        let snapshot = indexer.store().snapshot().unwrap();
        snapshot.confirmed_outpoint(txid, vout).unwrap()
    };
    let (_dir, mut indexer) = fresh(10);
    let b1 = block(genesis_hash(), 1, vec![tx("cb1", &[], &[(1, 50)])]);
    let b2 = block(
        b1.hash,
        2,
        vec![
            tx("cb2", &[], &[(4, 50)]),
            tx("t2", &[(txid("cb1"), 0)], &[(2, 49)]),
            tx("t2b", &[(txid("t2"), 0)], &[(3, 48)]),
        ],
    );
    indexer.apply_block(&b1, true).unwrap();
    indexer.flush().unwrap();
    assert_eq!(status(&indexer, &txid("cb1"), 0), at(1, None));
    indexer.apply_block(&b2, true).unwrap();
    indexer.flush().unwrap();
    assert_eq!(
        status(&indexer, &txid("cb1"), 0),
        at(1, Some((txid("t2"), 2)))
    );
    assert_eq!(
        status(&indexer, &txid("t2"), 0),
        at(2, Some((txid("t2b"), 2)))
    );
    assert_eq!(status(&indexer, &txid("t2"), 1), None);
    assert_eq!(status(&indexer, &txid("nothing"), 0), None);

    // A reorg takes block 2 away: cb1's output is unspent again, t2 never was, and no
    // spends row is left.
    indexer.rollback(1).unwrap();
    assert_eq!(status(&indexer, &txid("cb1"), 0), at(1, None));
    assert_eq!(status(&indexer, &txid("t2"), 0), None);
    assert!(!dump(&indexer).contains("\nspend "));

    // Another block 2 spends it otherwise.
    let b2b = block(
        b1.hash,
        9,
        vec![
            tx("cb2b", &[], &[(4, 50)]),
            tx("other", &[(txid("cb1"), 0)], &[(5, 40)]),
        ],
    );
    indexer.apply_block(&b2b, true).unwrap();
    indexer.flush().unwrap();
    assert_eq!(
        status(&indexer, &txid("cb1"), 0),
        at(1, Some((txid("other"), 2)))
    );
}
