//! The index's layout: the key and value of every table, encoded and decoded here only.
//! [`crate::store`] reads and writes the tables with these codecs, and
//! [`crate::index`] encodes with them the keys it sorts before a flush; decoding
//! returns [`Malformed`] rather than panicking, so a damaged index is reported, not
//! trusted. Integers are big-endian so that key order is numeric order.
//!
//! | table      | key                         | value                              |
//! |------------|-----------------------------|------------------------------------|
//! | headers    | height (4)                  | 80-byte header                     |
//! | tx_counts  | height (4)                  | cumulative tx count after it (8)   |
//! | tx_heights | cumulative tx count (8)     | height (4): tx_num → height        |
//! | txids      | tx_num (5)                  | txid (32, internal order)          |
//! | txid_index | txid[..8] ‖ tx_num (5)      | (empty): txid → tx_num → block     |
//! | histories  | hashX ‖ first tx_num (5)    | later tx_nums, delta-coded         |
//! | utxo       | hashX ‖ tx_num ‖ vout (4)   | value (8)                          |
//! | outpoints  | tx_num ‖ vout (4)           | hashX ‖ value (8)                  |
//! | undo       | height (4)                  | outputs it spent ([`UndoRecord`])  |
//! | spends     | spent tx_num ‖ vout (4)     | spender's tx_num (5)               |
//!
//! A script's history is a few rows of at most [`HISTORY_ROW_TXS`] tx_nums each, in
//! chain order: every row but the last is full, so the layout depends only on the
//! history, never on when it was written. A row stays well inside a page (LMDB moves a
//! value past half a page to pages of its own), and most scripts take one row: 26 bytes
//! and 2-3 per further transaction, where one duplicate per entry took about twice that.
//!
//! Tables keyed by tx_num (txids, outpoints) only ever grow at their end, so new rows are
//! appended to full pages; spends of young outputs, the most common, touch the same few
//! pages at the end. Only the txid index, the history and the UTXOs by script take
//! random-key writes.

use crate::hashes::{HASHX_LEN, HashX, Height, TXNUM_LEN, TxNum};
use bitcoin::Txid;
use bitcoin::hashes::Hash;

/// A record of the index that does not have the layout above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} of {len} bytes is malformed")]
pub struct Malformed {
    pub what: &'static str,
    pub len: usize,
}

fn array<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], Malformed> {
    bytes.try_into().map_err(|_| Malformed {
        what,
        len: bytes.len(),
    })
}

pub const HEIGHT_LEN: usize = 4;
pub const COUNT_LEN: usize = 8;
pub const TXID_PREFIX_LEN: usize = 8;
pub const TXID_INDEX_KEY_LEN: usize = TXID_PREFIX_LEN + TXNUM_LEN;
pub const UTXO_KEY_LEN: usize = HASHX_LEN + TXNUM_LEN + 4;
pub const OUTPOINT_KEY_LEN: usize = TXNUM_LEN + 4;
pub const OUTPOINT_VALUE_LEN: usize = HASHX_LEN + 8;

/// A txid index key, as [`txid_index_key`] encodes it.
pub type TxidIndexKey = [u8; TXID_INDEX_KEY_LEN];
/// A UTXO key, as [`utxo_key`] encodes it: sorting keys sorts by script, then chain order.
pub type UtxoKey = [u8; UTXO_KEY_LEN];

pub fn height_key(height: Height) -> [u8; HEIGHT_LEN] {
    height.to_be_bytes()
}

pub fn decode_height(bytes: &[u8]) -> Result<Height, Malformed> {
    array(bytes, "height").map(Height::from_be_bytes)
}

pub fn count_bytes(count: u64) -> [u8; COUNT_LEN] {
    count.to_be_bytes()
}

pub fn decode_count(bytes: &[u8]) -> Result<u64, Malformed> {
    array(bytes, "transaction count").map(u64::from_be_bytes)
}

pub fn tx_num_key(tx_num: TxNum) -> [u8; TXNUM_LEN] {
    tx_num.to_bytes()
}

pub fn decode_tx_num(bytes: &[u8]) -> Result<TxNum, Malformed> {
    let bytes: [u8; TXNUM_LEN] = array(bytes, "tx_num")?;
    Ok(TxNum::from_bytes(&bytes))
}

pub fn decode_txid(bytes: &[u8]) -> Result<Txid, Malformed> {
    array(bytes, "txid").map(Txid::from_byte_array)
}

pub fn decode_header(bytes: &[u8]) -> Result<[u8; 80], Malformed> {
    array(bytes, "header")
}

pub fn decode_hashx(bytes: &[u8]) -> Result<HashX, Malformed> {
    array(bytes, "hashX").map(HashX)
}

pub fn value_bytes(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

pub fn decode_value(bytes: &[u8]) -> Result<u64, Malformed> {
    array(bytes, "output value").map(u64::from_be_bytes)
}

/// The txid index's prefix for `txid`: the rows of every transaction whose txid starts
/// like it (usually one; the caller compares the full txid).
pub fn txid_prefix(txid: &Txid) -> [u8; TXID_PREFIX_LEN] {
    let mut prefix = [0u8; TXID_PREFIX_LEN];
    prefix.copy_from_slice(&txid.as_byte_array()[..TXID_PREFIX_LEN]);
    prefix
}

pub fn txid_index_key(txid: &Txid, tx_num: TxNum) -> TxidIndexKey {
    let mut key = [0u8; TXID_INDEX_KEY_LEN];
    key[..TXID_PREFIX_LEN].copy_from_slice(&txid_prefix(txid));
    key[TXID_PREFIX_LEN..].copy_from_slice(&tx_num.to_bytes());
    key
}

/// The tx_num of a txid index key.
pub fn decode_txid_index_key(key: &[u8]) -> Result<TxNum, Malformed> {
    let key: [u8; TXID_INDEX_KEY_LEN] = array(key, "txid index key")?;
    Ok(TxNum::from_bytes(&key[TXID_PREFIX_LEN..]))
}

/// Most tx_nums one history row holds (the first in its key, the rest in its value):
/// even at 6 bytes a distance, a row's value stays under the 2,016 bytes LMDB keeps
/// inside a 4 KiB page beside a 16-byte key.
pub const HISTORY_ROW_TXS: usize = 320;
pub const HISTORY_KEY_LEN: usize = HASHX_LEN + TXNUM_LEN;

/// A history row's key: the script, then the row's first tx_num.
pub fn history_key(hashx: &HashX, first: TxNum) -> [u8; HISTORY_KEY_LEN] {
    let mut key = [0u8; HISTORY_KEY_LEN];
    key[..HASHX_LEN].copy_from_slice(&hashx.0);
    key[HASHX_LEN..].copy_from_slice(&first.to_bytes());
    key
}

/// The last key a row of `hashx` can have: rows are found from it backwards.
pub fn history_key_after(hashx: &HashX) -> [u8; HISTORY_KEY_LEN] {
    let mut key = [0xff; HISTORY_KEY_LEN];
    key[..HASHX_LEN].copy_from_slice(&hashx.0);
    key
}

/// The script and first tx_num of a history row's key.
pub fn decode_history_key(key: &[u8]) -> Result<(HashX, TxNum), Malformed> {
    let key: [u8; HISTORY_KEY_LEN] = array(key, "history key")?;
    Ok((
        decode_hashx(&key[..HASHX_LEN])?,
        TxNum::from_bytes(&key[HASHX_LEN..]),
    ))
}

/// A history row's value: each tx_num after the row's first, as its distance from the
/// one before it (LEB128: 7 bits a byte), which takes 2-3 bytes where a tx_num takes 5.
pub fn history_value(first: TxNum, later: &[TxNum]) -> Vec<u8> {
    let mut value = Vec::with_capacity(later.len() * 3);
    let mut previous = first.0;
    for tx_num in later {
        let mut delta = tx_num.0.wrapping_sub(previous);
        previous = tx_num.0;
        while delta >= 0x80 {
            value.push((delta as u8) | 0x80);
            delta >>= 7;
        }
        value.push(delta as u8);
    }
    value
}

/// Appends the tx_nums of one history row, in order, to `out`.
pub fn decode_history_row(key: &[u8], value: &[u8], out: &mut Vec<TxNum>) -> Result<(), Malformed> {
    let key: [u8; HISTORY_KEY_LEN] = array(key, "history key")?;
    let malformed = Malformed {
        what: "history row",
        len: value.len(),
    };
    let mut previous = TxNum::from_bytes(&key[HASHX_LEN..]).0;
    let start = out.len();
    out.push(TxNum(previous));
    let (mut delta, mut shift) = (0u64, 0u32);
    for byte in value {
        delta |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 != 0 {
            shift += 7;
            if shift > 35 {
                return Err(malformed);
            }
            continue;
        }
        // Strictly ascending, within the 5 bytes a tx_num has.
        previous = previous.saturating_add(delta);
        if delta == 0 || previous >= 1 << (8 * TXNUM_LEN) || out.len() - start >= HISTORY_ROW_TXS {
            return Err(malformed);
        }
        out.push(TxNum(previous));
        (delta, shift) = (0, 0);
    }
    if shift != 0 {
        return Err(malformed);
    }
    Ok(())
}

pub fn utxo_key(hashx: &HashX, tx_num: TxNum, vout: u32) -> UtxoKey {
    let mut key = [0u8; UTXO_KEY_LEN];
    key[..HASHX_LEN].copy_from_slice(&hashx.0);
    key[HASHX_LEN..HASHX_LEN + TXNUM_LEN].copy_from_slice(&tx_num.to_bytes());
    key[HASHX_LEN + TXNUM_LEN..].copy_from_slice(&vout.to_be_bytes());
    key
}

pub const UTXO_RECORD_LEN: usize = UTXO_KEY_LEN + 8;

/// A UTXO row as one record (its key, then its value), which sorts as the key does.
pub fn utxo_record(key: &UtxoKey, value: u64) -> [u8; UTXO_RECORD_LEN] {
    let mut record = [0u8; UTXO_RECORD_LEN];
    record[..UTXO_KEY_LEN].copy_from_slice(key);
    record[UTXO_KEY_LEN..].copy_from_slice(&value.to_be_bytes());
    record
}

/// The key and value of a UTXO record.
pub fn decode_utxo_record(record: &[u8; UTXO_RECORD_LEN]) -> (UtxoKey, u64) {
    let mut key = [0u8; UTXO_KEY_LEN];
    key.copy_from_slice(&record[..UTXO_KEY_LEN]);
    let mut value = [0u8; 8];
    value.copy_from_slice(&record[UTXO_KEY_LEN..]);
    (key, u64::from_be_bytes(value))
}

/// The tx_num and vout of a UTXO key.
pub fn decode_utxo_key(key: &[u8]) -> Result<(TxNum, u32), Malformed> {
    let key: [u8; UTXO_KEY_LEN] = array(key, "utxo key")?;
    let tx_num = TxNum::from_bytes(&key[HASHX_LEN..]);
    let vout = u32::from_be_bytes(array(&key[HASHX_LEN + TXNUM_LEN..], "utxo key")?);
    Ok((tx_num, vout))
}

pub fn outpoint_key(tx_num: TxNum, vout: u32) -> [u8; OUTPOINT_KEY_LEN] {
    let mut key = [0u8; OUTPOINT_KEY_LEN];
    key[..TXNUM_LEN].copy_from_slice(&tx_num.to_bytes());
    key[TXNUM_LEN..].copy_from_slice(&vout.to_be_bytes());
    key
}

/// The tx_num and vout of an outpoints key.
pub fn decode_outpoint_key(key: &[u8]) -> Result<(TxNum, u32), Malformed> {
    let key: [u8; OUTPOINT_KEY_LEN] = array(key, "outpoint key")?;
    let vout = u32::from_be_bytes(array(&key[TXNUM_LEN..], "outpoint key")?);
    Ok((TxNum::from_bytes(&key[..TXNUM_LEN]), vout))
}

pub fn outpoint_value(hashx: &HashX, value: u64) -> [u8; OUTPOINT_VALUE_LEN] {
    let mut out = [0u8; OUTPOINT_VALUE_LEN];
    out[..HASHX_LEN].copy_from_slice(&hashx.0);
    out[HASHX_LEN..].copy_from_slice(&value.to_be_bytes());
    out
}

/// The script's hashX and the value of an unspent output.
pub fn decode_outpoint_value(bytes: &[u8]) -> Result<(HashX, u64), Malformed> {
    let bytes: [u8; OUTPOINT_VALUE_LEN] = array(bytes, "outpoint value")?;
    Ok((
        decode_hashx(&bytes[..HASHX_LEN])?,
        decode_value(&bytes[HASHX_LEN..])?,
    ))
}

pub const SPENDS_RECORD_LEN: usize = OUTPOINT_KEY_LEN + TXNUM_LEN;

/// A spends row as one record (its key, then its value), which sorts as the key does.
pub fn spends_record(tx_num: TxNum, vout: u32, spender: TxNum) -> [u8; SPENDS_RECORD_LEN] {
    let mut record = [0u8; SPENDS_RECORD_LEN];
    record[..OUTPOINT_KEY_LEN].copy_from_slice(&outpoint_key(tx_num, vout));
    record[OUTPOINT_KEY_LEN..].copy_from_slice(&spender.to_bytes());
    record
}

/// The spent tx_num and vout and the spender's tx_num of a spends record.
pub fn decode_spends_record(record: &[u8; SPENDS_RECORD_LEN]) -> (TxNum, u32, TxNum) {
    let mut vout = [0u8; 4];
    vout.copy_from_slice(&record[TXNUM_LEN..OUTPOINT_KEY_LEN]);
    (
        TxNum::from_bytes(&record[..TXNUM_LEN]),
        u32::from_be_bytes(vout),
        TxNum::from_bytes(&record[OUTPOINT_KEY_LEN..]),
    )
}

/// An output a block spent, as its undo record keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndoOutput {
    pub hashx: HashX,
    pub tx_num: TxNum,
    pub vout: u32,
    pub value: u64,
}

/// What undoing a block needs beyond the index itself: the outputs it spent, to
/// restore, each as hashX, tx_num, vout, value. The outputs it created need no record:
/// they are the outpoints rows of its tx_num range.
#[derive(Default)]
pub struct UndoRecord {
    bytes: Vec<u8>,
}

const SPENT_LEN: usize = HASHX_LEN + TXNUM_LEN + 4 + 8;

impl UndoRecord {
    pub fn spent(&mut self, output: &UndoOutput) {
        self.bytes.extend_from_slice(&output.hashx.0);
        self.bytes.extend_from_slice(&output.tx_num.to_bytes());
        self.bytes.extend_from_slice(&output.vout.to_be_bytes());
        self.bytes.extend_from_slice(&output.value.to_be_bytes());
    }

    pub fn encode(self) -> Vec<u8> {
        self.bytes
    }

    /// The spent outputs of an encoded record.
    pub fn decode(record: &[u8]) -> Result<Vec<UndoOutput>, Malformed> {
        if !record.len().is_multiple_of(SPENT_LEN) {
            return Err(Malformed {
                what: "undo record",
                len: record.len(),
            });
        }
        record
            .chunks_exact(SPENT_LEN)
            .map(|entry| {
                let (tx_num, vout) =
                    decode_outpoint_key(&entry[HASHX_LEN..HASHX_LEN + OUTPOINT_KEY_LEN])?;
                Ok(UndoOutput {
                    hashx: decode_hashx(&entry[..HASHX_LEN])?,
                    tx_num,
                    vout,
                    value: decode_value(&entry[HASHX_LEN + OUTPOINT_KEY_LEN..])?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::sha256d;

    #[test]
    fn keys_sort_in_chain_order_and_round_trip() {
        let hashx = HashX([7; HASHX_LEN]);
        assert!(utxo_key(&hashx, TxNum(1), 300) < utxo_key(&hashx, TxNum(2), 0));
        assert!(utxo_key(&hashx, TxNum(2), 1) < utxo_key(&hashx, TxNum(2), 256));
        assert_eq!(
            decode_utxo_key(&utxo_key(&hashx, TxNum(99), 7)),
            Ok((TxNum(99), 7))
        );
        assert!(outpoint_key(TxNum(1), 70_000) < outpoint_key(TxNum(2), 0));
        assert_eq!(
            decode_outpoint_value(&outpoint_value(&hashx, 5_000_000_000)),
            Ok((hashx, 5_000_000_000))
        );
        let txid = Txid::from_raw_hash(sha256d::Hash::hash(b"t"));
        assert_eq!(
            decode_txid_index_key(&txid_index_key(&txid, TxNum(1 << 39))),
            Ok(TxNum(1 << 39))
        );
        assert!(txid_index_key(&txid, TxNum(3)).starts_with(&txid_prefix(&txid)));
        let spend = spends_record(TxNum(5), 70_000, TxNum(9));
        assert_eq!(decode_spends_record(&spend), (TxNum(5), 70_000, TxNum(9)));
        assert!(spend < spends_record(TxNum(5), 70_001, TxNum(6)));
        let utxo = utxo_key(&hashx, TxNum(3), 1);
        assert_eq!(decode_utxo_record(&utxo_record(&utxo, 77)), (utxo, 77));
        assert_eq!(
            decode_height(&height_key(Height::new(812_345))),
            Ok(Height::new(812_345))
        );
        // Keys sort in chain order.
        assert!(height_key(Height::new(255)) < height_key(Height::new(256)));
        assert_eq!(decode_count(&count_bytes(1 << 40)), Ok(1 << 40));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert_eq!(
            decode_utxo_key(&[1, 2, 3]),
            Err(Malformed {
                what: "utxo key",
                len: 3
            })
        );
        assert!(decode_outpoint_value(&[0; 18]).is_err());
        assert!(decode_txid_index_key(&[0; 12]).is_err());
        assert!(decode_header(&[0; 79]).is_err());
        assert!(decode_height(&[]).is_err());
        assert_eq!(
            UndoRecord::decode(&[]),
            Ok(vec![]),
            "a block that spent nothing"
        );
        assert!(
            UndoRecord::decode(&[0; 27]).is_err(),
            "a partial spent output"
        );
        assert!(decode_outpoint_key(&[0; 10]).is_err());
    }

    #[test]
    fn history_rows_round_trip_and_sort_in_chain_order() {
        let hashx = HashX([3; HASHX_LEN]);
        let key = history_key(&hashx, TxNum(7));
        assert!(key < history_key(&hashx, TxNum(300)));
        assert!(history_key(&hashx, TxNum(1 << 39)) < history_key_after(&hashx));
        assert!(history_key_after(&hashx) < history_key(&HashX([4; HASHX_LEN]), TxNum(0)));
        let mut out = vec![TxNum(1)];
        let later = [TxNum(9), TxNum(136), TxNum((1 << 40) - 1)];
        let value = history_value(TxNum(7), &later);
        assert_eq!(
            value.len(),
            1 + 1 + 6,
            "distances of 2, 127 and the rest of 40 bits"
        );
        decode_history_row(&key, &value, &mut out).unwrap();
        assert_eq!(
            out,
            [
                TxNum(1),
                TxNum(7),
                TxNum(9),
                TxNum(136),
                TxNum((1 << 40) - 1)
            ]
        );
        for bad in [
            &[0x80][..],
            &[0][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1][..],
        ] {
            assert!(decode_history_row(&key, bad, &mut out).is_err(), "{bad:?}");
        }
        assert!(decode_history_row(&key[..15], &[], &mut out).is_err());
        let full: Vec<_> = (8..8 + HISTORY_ROW_TXS as u64).map(TxNum).collect();
        assert!(
            decode_history_row(&key, &history_value(TxNum(7), &full), &mut out).is_err(),
            "a row holds at most HISTORY_ROW_TXS"
        );
        let widest: Vec<_> = (1..HISTORY_ROW_TXS as u64)
            .map(|n| TxNum(n << 34))
            .collect();
        assert!(history_value(TxNum(0), &widest).len() + HISTORY_KEY_LEN <= 2_032);
    }

    #[test]
    fn undo_records_round_trip() {
        let spent = |n: u8| UndoOutput {
            hashx: HashX([n; HASHX_LEN]),
            tx_num: TxNum(u64::from(n) << 32),
            vout: u32::from(n) * 1000,
            value: u64::from(n) * 99,
        };
        let mut record = UndoRecord::default();
        record.spent(&spent(1));
        record.spent(&spent(2));
        assert_eq!(
            UndoRecord::decode(&record.encode()),
            Ok(vec![spent(1), spent(2)])
        );
        assert_eq!(
            decode_outpoint_key(&outpoint_key(TxNum(77), 3)),
            Ok((TxNum(77), 3))
        );
    }
}
