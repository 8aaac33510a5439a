//! Parsing of raw blocks and transactions, as the daemon serializes them, into exactly what
//! the index needs: txids, spent outpoints, output hashXs and values, vsizes.
//!
//! Every block of a chain passes through here, so parsing walks the raw bytes with a
//! zero-copy cursor and hashes slices of them in place; nothing is re-serialized and no
//! `bitcoin::Transaction` is built. Formats: legacy, segwit (BIP 144) and, when
//! `allow_mweb` is set (Litecoin), the MWEB flag of the HogEx transaction and the
//! extension data that follows a block's transactions.
//!
//! Byte offsets in errors count from the start of the buffer given to `parse_block` or
//! `parse_tx`, so for a block they point into the block.

use bitcoin::hashes::{Hash, HashEngine};
use bitcoin::{BlockHash, OutPoint, Txid};

use crate::hashes::HashX;

/// Length of a serialized block header.
pub const HEADER_LEN: usize = 80;

const OP_0: u8 = 0x00;
const OP_RETURN: u8 = 0x6a;

/// Segwit flag bits: witness data follows the outputs; Litecoin MWEB data follows that.
const FLAG_WITNESS: u8 = 0x01;
const FLAG_MWEB: u8 = 0x08;

/// Smallest possible serializations; a count read from the data that could not fit in the
/// remaining bytes at these sizes is rejected before anything is allocated for it.
const MIN_INPUT_LEN: usize = 32 + 4 + 1 + 4;
const MIN_OUTPUT_LEN: usize = 8 + 1;
const MIN_TX_LEN: usize = 4 + 1 + 1 + 4;
const MIN_WITNESS_ITEM_LEN: usize = 1;

/// One output: its value and, unless it is provably unspendable, the hashX of its script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOutput {
    /// `None` for unspendable outputs, which the index does not record.
    pub hashx: Option<HashX>,
    pub value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedTx {
    pub txid: Txid,
    pub is_coinbase: bool,
    /// The outpoints this transaction spends; empty for a coinbase.
    pub inputs: Vec<OutPoint>,
    pub outputs: Vec<TxOutput>,
    /// ceil(weight / 4), with ElectrumX's weight: 3 * base size + total size.
    pub vsize: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedBlock {
    pub header: [u8; HEADER_LEN],
    pub hash: BlockHash,
    pub prev_hash: BlockHash,
    pub txs: Vec<ParsedTx>,
}

impl ParsedBlock {
    /// Memory the parsed block holds, for the bound on blocks fetched ahead.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<ParsedBlock>()
            + self
                .txs
                .iter()
                .map(|tx| {
                    size_of::<ParsedTx>()
                        + tx.inputs.capacity() * size_of::<OutPoint>()
                        + tx.outputs.capacity() * size_of::<TxOutput>()
                })
                .sum::<usize>()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("block is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    ShortHeader { len: usize },
    #[error("data ends inside the {what} at byte {offset}: {needed} bytes needed, {left} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: u64,
        left: usize,
    },
    #[error("{what} at byte {offset} is {count}, more than the {left} remaining bytes can hold")]
    CountTooLarge {
        what: &'static str,
        offset: usize,
        count: u64,
        left: usize,
    },
    #[error("unknown transaction flag 0x{flag:02x} at byte {offset}")]
    UnknownFlag { offset: usize, flag: u8 },
    #[error(
        "transaction flag at byte {offset} announces Litecoin MWEB data, \
         but this coin has no MWEB"
    )]
    UnexpectedMweb { offset: usize },
    /// A Litecoin transaction with no canonical form to index (MWEB data present, or
    /// MWEB-only as litecoind 0.21.2 lists it in the mempool). Skip it, as ElectrumX does.
    #[error("MWEB transaction at byte {offset} cannot be indexed: {reason}")]
    MwebOnly { offset: usize, reason: &'static str },
    #[error("{count} unexpected bytes at byte {offset} after the {after}")]
    TrailingBytes {
        after: &'static str,
        offset: usize,
        count: usize,
    },
    #[error("transaction {index} of the block: {error}")]
    InTx {
        index: usize,
        error: Box<ParseError>,
    },
}

/// Parses a raw block. With `allow_mweb` (Litecoin) the MWEB extension data that may follow
/// the transactions is ignored; otherwise any byte after them is an error.
pub fn parse_block(raw: &[u8], allow_mweb: bool) -> Result<ParsedBlock, ParseError> {
    let header: [u8; HEADER_LEN] = raw
        .get(..HEADER_LEN)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(ParseError::ShortHeader { len: raw.len() })?;
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&header[4..36]);

    let mut cur = Cursor {
        data: raw,
        pos: HEADER_LEN,
    };
    let count = cur.count(MIN_TX_LEN, "transaction count")?;
    let mut txs = Vec::with_capacity(count);
    for index in 0..count {
        let tx = read_tx(&mut cur, allow_mweb).map_err(|error| ParseError::InTx {
            index,
            error: Box::new(error),
        })?;
        txs.push(tx);
    }
    if !allow_mweb {
        cur.expect_end("block's transactions")?;
    }
    Ok(ParsedBlock {
        header,
        hash: BlockHash::hash(&header),
        prev_hash: BlockHash::from_byte_array(prev_hash),
        txs,
    })
}

/// Parses one raw transaction (a mempool transaction); the whole buffer must be the
/// transaction. Litecoin MWEB transactions return [`ParseError::MwebOnly`].
pub fn parse_tx(raw: &[u8], allow_mweb: bool) -> Result<ParsedTx, ParseError> {
    let mut cur = Cursor { data: raw, pos: 0 };
    let tx = read_tx(&mut cur, allow_mweb)?;
    cur.expect_end("transaction")?;
    Ok(tx)
}

/// ElectrumX's legacy rule (`is_unspendable_legacy`): a script that starts with OP_RETURN
/// or OP_0 OP_RETURN can never be spent. An empty script is spendable.
pub fn is_unspendable(script: &[u8]) -> bool {
    matches!(script, [OP_RETURN, ..] | [OP_0, OP_RETURN, ..])
}

fn read_tx(cur: &mut Cursor<'_>, allow_mweb: bool) -> Result<ParsedTx, ParseError> {
    let start = cur.pos;
    let mut txid = Txid::engine();
    txid.input(cur.take(4, "transaction version")?);

    // A zero where the input count belongs is the segwit marker: a transaction always has
    // inputs, except Litecoin's MWEB-only ones, whose flag is then zero as well.
    let mut flags = 0;
    if cur.peek() == Some(0) {
        cur.take(1, "segwit marker")?;
        let offset = cur.pos;
        flags = cur.byte("segwit flag")?;
        if flags == 0 && allow_mweb {
            return Err(ParseError::MwebOnly {
                offset,
                reason: "no inputs and no outputs",
            });
        }
        if flags & FLAG_MWEB != 0 && !allow_mweb {
            return Err(ParseError::UnexpectedMweb { offset });
        }
        if flags == 0 || flags & !(FLAG_WITNESS | FLAG_MWEB) != 0 {
            return Err(ParseError::UnknownFlag {
                offset,
                flag: flags,
            });
        }
    }

    let body_start = cur.pos;
    let input_count = cur.count(MIN_INPUT_LEN, "input count")?;
    let mut inputs = Vec::with_capacity(input_count);
    for _ in 0..input_count {
        let prev_txid: [u8; 32] = cur.array("input's previous txid")?;
        let vout = u32::from_le_bytes(cur.array("input's previous output index")?);
        cur.varbytes("input script")?;
        cur.take(4, "input sequence")?;
        inputs.push(OutPoint {
            txid: Txid::from_byte_array(prev_txid),
            vout,
        });
    }
    let output_count = cur.count(MIN_OUTPUT_LEN, "output count")?;
    let mut outputs = Vec::with_capacity(output_count);
    for _ in 0..output_count {
        let value = u64::from_le_bytes(cur.array("output value")?);
        let script = cur.varbytes("output script")?;
        let hashx = (!is_unspendable(script)).then(|| HashX::from_script(script));
        outputs.push(TxOutput { hashx, value });
    }
    txid.input(&cur.data[body_start..cur.pos]);

    let witness_start = cur.pos;
    if flags & FLAG_WITNESS != 0 {
        for _ in 0..input_count {
            let items = cur.count(MIN_WITNESS_ITEM_LEN, "witness item count")?;
            for _ in 0..items {
                cur.varbytes("witness item")?;
            }
        }
    }
    // ElectrumX's weight: marker and flag count as witness data, the MWEB byte as base.
    let witness_len = match flags {
        0 => 0,
        _ => cur.pos - witness_start + 2,
    };
    if flags & FLAG_MWEB != 0 {
        // In a block this is the HogEx transaction, whose MWEB part is a single null byte;
        // anything else is an MWEB transaction whose length we cannot know.
        let offset = cur.pos;
        if cur.byte("MWEB transaction")? != 0 {
            return Err(ParseError::MwebOnly {
                offset,
                reason: "carries MWEB data",
            });
        }
    }
    txid.input(cur.take(4, "lock time")?);

    let total_len = (cur.pos - start) as u64;
    let base_len = total_len - witness_len as u64;
    let vsize = (3 * base_len + total_len).div_ceil(4);

    let is_coinbase = inputs.len() == 1 && inputs[0].is_null();
    if is_coinbase {
        inputs = Vec::new();
    }
    Ok(ParsedTx {
        txid: Txid::from_engine(txid),
        is_coinbase,
        inputs,
        outputs,
        vsize: u32::try_from(vsize).unwrap_or(u32::MAX),
    })
}

/// A read position in a raw buffer; every read is bounds-checked and borrows, never copies.
struct Cursor<'a> {
    data: &'a [u8],
    /// Always at most `data.len()`.
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        let rest = &self.data[self.pos..];
        if len > rest.len() {
            return Err(ParseError::Truncated {
                what,
                offset: self.pos,
                needed: len as u64,
                left: rest.len(),
            });
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, what)?[0])
    }

    /// Bitcoin's CompactSize.
    fn varint(&mut self, what: &'static str) -> Result<u64, ParseError> {
        Ok(match self.byte(what)? {
            0xfd => u16::from_le_bytes(self.array(what)?).into(),
            0xfe => u32::from_le_bytes(self.array(what)?).into(),
            0xff => u64::from_le_bytes(self.array(what)?),
            small => small.into(),
        })
    }

    /// A count of items that each take at least `min_item_len` bytes.
    fn count(&mut self, min_item_len: usize, what: &'static str) -> Result<usize, ParseError> {
        let offset = self.pos;
        let count = self.varint(what)?;
        let left = self.left();
        if count > (left / min_item_len) as u64 {
            return Err(ParseError::CountTooLarge {
                what,
                offset,
                count,
                left,
            });
        }
        Ok(count as usize)
    }

    /// A length-prefixed byte string.
    fn varbytes(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let offset = self.pos;
        let len = self.varint(what)?;
        let left = self.left();
        match usize::try_from(len) {
            Ok(len) if len <= left => self.take(len, what),
            _ => Err(ParseError::Truncated {
                what,
                offset,
                needed: len,
                left,
            }),
        }
    }

    fn expect_end(&self, after: &'static str) -> Result<(), ParseError> {
        match self.left() {
            0 => Ok(()),
            count => Err(ParseError::TrailingBytes {
                after,
                offset: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashes::from_hex;
    use serde_json::Value;

    const BITCOIN_MAINNET: &str =
        include_str!("../tests/fixtures/blocks/bitcoin_mainnet_951658.json");
    const BITCOIN_SIGNET: &str = include_str!("../tests/fixtures/blocks/bitcoin_signet_31500.json");
    const BITCOIN_TESTNET4: &str =
        include_str!("../tests/fixtures/blocks/bitcoin_testnet4_40000.json");
    const LITECOIN_900000: &str =
        include_str!("../tests/fixtures/blocks/litecoin_mainnet_900000.json");
    const LITECOIN_MWEB: &str =
        include_str!("../tests/fixtures/blocks/litecoin_mainnet_2265985.json");
    const TX_P2WPKH: &str =
        include_str!("../tests/fixtures/transactions/bitcoin_regtest_001_p2wpkh.json");
    const TX_MIXED: &str = include_str!(
        "../tests/fixtures/transactions/bitcoin_testnet_001_mixed_nonsegwit_segwit_inputs.json"
    );
    const TX_PRESEGWIT: &str =
        include_str!("../tests/fixtures/transactions/bitcoin_testnet_002_presegwit.json");

    fn fixture(text: &str) -> (Value, Vec<u8>) {
        let json: Value = serde_json::from_str(text).unwrap();
        let hex = json["block"].as_str().or(json["hex"].as_str()).unwrap();
        let raw = from_hex(hex).unwrap();
        (json, raw)
    }

    fn check_block(text: &str, allow_mweb: bool) {
        let (json, raw) = fixture(text);
        let block = parse_block(&raw, allow_mweb).unwrap();
        assert_eq!(block.hash.to_string(), json["hash"].as_str().unwrap());
        assert_eq!(
            block.prev_hash.to_string(),
            json["previousblockhash"].as_str().unwrap()
        );
        assert_eq!(block.header[..], raw[..HEADER_LEN]);
        let txids = json["tx"].as_array().unwrap();
        assert_eq!(block.txs.len(), txids.len());
        for (tx, txid) in block.txs.iter().zip(txids) {
            assert_eq!(tx.txid.to_string(), txid.as_str().unwrap());
        }
        assert!(block.txs[0].is_coinbase && block.txs[0].inputs.is_empty());
        assert!(block.txs[1..].iter().all(|tx| !tx.is_coinbase));
        assert!(block.txs[1..].iter().all(|tx| !tx.inputs.is_empty()));
    }

    #[test]
    fn bitcoin_blocks_parse_with_their_hashes_and_txids() {
        check_block(BITCOIN_MAINNET, false);
        check_block(BITCOIN_SIGNET, false);
        check_block(BITCOIN_TESTNET4, false);
    }

    #[test]
    fn litecoin_blocks_parse_with_their_hashes_and_txids() {
        check_block(LITECOIN_900000, false);
        check_block(LITECOIN_900000, true);
        check_block(LITECOIN_MWEB, true);
    }

    #[test]
    fn mweb_block_needs_allow_mweb() {
        let (_, raw) = fixture(LITECOIN_MWEB);
        let err = parse_block(&raw, false).unwrap_err();
        assert!(
            matches!(&err, ParseError::InTx { error, .. }
                if matches!(**error, ParseError::UnexpectedMweb { .. })),
            "{err}"
        );
    }

    fn check_tx(text: &str) {
        let (json, raw) = fixture(text);
        let tx = parse_tx(&raw, false).unwrap();
        assert_eq!(tx.txid.to_string(), json["txid"].as_str().unwrap());
        assert_eq!(u64::from(tx.vsize), json["vsize"].as_u64().unwrap());
        assert!(!tx.is_coinbase);
        let vin = json["vin"].as_array().unwrap();
        assert_eq!(tx.inputs.len(), vin.len());
        for (input, expected) in tx.inputs.iter().zip(vin) {
            assert_eq!(input.txid.to_string(), expected["txid"].as_str().unwrap());
            assert_eq!(u64::from(input.vout), expected["vout"].as_u64().unwrap());
        }
        let vout = json["vout"].as_array().unwrap();
        assert_eq!(tx.outputs.len(), vout.len());
        for (output, expected) in tx.outputs.iter().zip(vout) {
            let sats = (expected["value"].as_f64().unwrap() * 1e8).round() as u64;
            assert_eq!(output.value, sats);
            let script = from_hex(expected["scriptPubKey"]["hex"].as_str().unwrap()).unwrap();
            assert_eq!(output.hashx, Some(HashX::from_script(&script)));
        }
        // The same bytes parse identically under Litecoin's rules.
        assert_eq!(parse_tx(&raw, true).unwrap(), tx);
    }

    #[test]
    fn transactions_parse_with_txid_vsize_inputs_and_outputs() {
        check_tx(TX_P2WPKH);
        check_tx(TX_MIXED);
        check_tx(TX_PRESEGWIT);
    }

    /// The byte range of each counted transaction of a block.
    fn tx_spans(raw: &[u8], allow_mweb: bool) -> Vec<std::ops::Range<usize>> {
        let mut cur = Cursor {
            data: raw,
            pos: HEADER_LEN,
        };
        let count = cur.count(MIN_TX_LEN, "transaction count").unwrap();
        (0..count)
            .map(|_| {
                let start = cur.pos;
                read_tx(&mut cur, allow_mweb).unwrap();
                start..cur.pos
            })
            .collect()
    }

    const ALL_BLOCKS: [(&str, bool); 5] = [
        (BITCOIN_MAINNET, false),
        (BITCOIN_SIGNET, false),
        (BITCOIN_TESTNET4, false),
        (LITECOIN_900000, true),
        (LITECOIN_MWEB, true),
    ];

    #[test]
    fn every_truncated_block_is_an_error() {
        for (text, allow_mweb) in ALL_BLOCKS {
            let (_, raw) = fixture(text);
            let end = tx_spans(&raw, allow_mweb).last().unwrap().end;
            // Every length for small blocks; for large ones (each parse hashes the whole
            // prefix) the header, the first transactions, the last one and a stride.
            let lengths = (0..end).filter(|len| {
                end < 8192 || *len < 1024 || end - len < 64 || len.is_multiple_of(1009)
            });
            for len in lengths {
                assert!(
                    parse_block(&raw[..len], allow_mweb).is_err(),
                    "length {len}"
                );
            }
        }
    }

    #[test]
    fn every_truncated_transaction_is_an_error() {
        for (text, allow_mweb) in ALL_BLOCKS {
            let (_, raw) = fixture(text);
            let block = parse_block(&raw, allow_mweb).unwrap();
            for (span, parsed) in tx_spans(&raw, allow_mweb).into_iter().zip(&block.txs) {
                let tx = &raw[span];
                assert_eq!(&parse_tx(tx, allow_mweb).unwrap(), parsed);
                for len in 0..tx.len() {
                    assert!(parse_tx(&tx[..len], allow_mweb).is_err(), "length {len}");
                }
            }
        }
    }

    #[test]
    fn mweb_extension_data_after_the_transactions_is_ignored() {
        let (_, raw) = fixture(LITECOIN_MWEB);
        let end = tx_spans(&raw, true).last().unwrap().end;
        assert!(end < raw.len());
        let hogex = parse_block(&raw, true).unwrap().txs.pop().unwrap();
        assert_eq!(raw[end - 5], 0, "the HogEx's MWEB byte is null");
        assert_eq!(
            parse_block(&raw[..end], true).unwrap().txs.pop(),
            Some(hogex)
        );
    }

    #[test]
    fn trailing_bytes_are_rejected_without_mweb() {
        let (_, mut raw) = fixture(BITCOIN_SIGNET);
        raw.push(0);
        assert!(matches!(
            parse_block(&raw, false),
            Err(ParseError::TrailingBytes { count: 1, .. })
        ));
        let (_, mut raw) = fixture(TX_PRESEGWIT);
        raw.push(0);
        assert!(matches!(
            parse_tx(&raw, true),
            Err(ParseError::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn absurd_counts_are_rejected_before_allocating() {
        let (_, raw) = fixture(BITCOIN_SIGNET);
        let mut block = raw[..HEADER_LEN].to_vec();
        block.extend_from_slice(&[0xff; 9]);
        assert!(matches!(
            parse_block(&block, false),
            Err(ParseError::CountTooLarge {
                offset: HEADER_LEN,
                count: u64::MAX,
                ..
            })
        ));
        let mut huge_script = vec![1, 0, 0, 0, 1];
        huge_script.extend_from_slice(&[0; 36]);
        huge_script.extend_from_slice(&[0xff; 9]);
        assert!(matches!(
            parse_tx(&huge_script, false),
            Err(ParseError::Truncated {
                what: "input script",
                needed: u64::MAX,
                ..
            })
        ));
    }

    /// The presegwit fixture re-encoded as a Litecoin transaction with the MWEB flag and
    /// the given MWEB byte, which does not change its txid.
    fn with_mweb_flag(mweb_byte: u8) -> (Txid, Vec<u8>) {
        let (json, raw) = fixture(TX_PRESEGWIT);
        let txid = json["txid"].as_str().unwrap().parse().unwrap();
        let mut out = raw[..4].to_vec();
        out.extend_from_slice(&[0x00, FLAG_MWEB]);
        out.extend_from_slice(&raw[4..raw.len() - 4]);
        out.push(mweb_byte);
        out.extend_from_slice(&raw[raw.len() - 4..]);
        (txid, out)
    }

    #[test]
    fn mweb_flag_with_a_null_mweb_tx_keeps_the_txid() {
        let (txid, raw) = with_mweb_flag(0);
        let tx = parse_tx(&raw, true).unwrap();
        assert_eq!(tx.txid, txid);
        assert!(matches!(
            parse_tx(&raw, false),
            Err(ParseError::UnexpectedMweb { offset: 5 })
        ));
    }

    #[test]
    fn mweb_transactions_are_reported_as_mweb_only() {
        let (_, raw) = with_mweb_flag(1);
        assert!(matches!(
            parse_tx(&raw, true),
            Err(ParseError::MwebOnly { .. })
        ));
        // MW-only as litecoind 0.21.2 serializes it: no inputs, no outputs, no flag.
        let mw_only = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_tx(&mw_only, true),
            Err(ParseError::MwebOnly { offset: 5, .. })
        ));
        assert!(matches!(
            parse_tx(&mw_only, false),
            Err(ParseError::UnknownFlag { offset: 5, flag: 0 })
        ));
    }

    #[test]
    fn unknown_segwit_flags_are_rejected() {
        let (_, raw) = fixture(TX_P2WPKH);
        let mut bad = raw.clone();
        assert_eq!(bad[5], FLAG_WITNESS);
        bad[5] = 0x02;
        assert!(matches!(
            parse_tx(&bad, true),
            Err(ParseError::UnknownFlag { offset: 5, flag: 2 })
        ));
    }

    #[test]
    fn unspendable_follows_the_legacy_rule() {
        assert!(is_unspendable(&[OP_RETURN]));
        assert!(is_unspendable(&[OP_RETURN, 0x04, 1, 2, 3, 4]));
        assert!(is_unspendable(&[OP_0, OP_RETURN]));
        assert!(!is_unspendable(&[]));
        assert!(!is_unspendable(&[OP_0]));
        assert!(!is_unspendable(&[OP_0, 0x14]));
        assert!(!is_unspendable(&[0x51, OP_RETURN]));
    }

    #[test]
    fn unspendable_outputs_have_no_hashx() {
        let (_, raw) = fixture(BITCOIN_MAINNET);
        let block = parse_block(&raw, false).unwrap();
        // The coinbase commits to the witnesses in an OP_RETURN output.
        let coinbase = &block.txs[0];
        assert!(coinbase.outputs.iter().any(|out| out.hashx.is_none()));
        assert!(coinbase.outputs.iter().any(|out| out.hashx.is_some()));
    }
}
