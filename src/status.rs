//! The status of a script hash (protocol-basics, "Status"): sha256 of the
//! concatenated `tx_hash:height:` of its confirmed history in chain order, then of its
//! mempool transactions ordered height 0 before -1 and then by txid. `None` when the
//! script has no transactions.

use crate::hashes::Height;
use bitcoin::Txid;
use bitcoin::hashes::{Hash, HashEngine, sha256};
use std::fmt::Write;

/// `confirmed` in chain order; `mempool` already in protocol order (as
/// [`crate::mempool::Mempool::history`] returns it).
pub fn status<'a>(
    confirmed: impl IntoIterator<Item = (&'a Txid, Height)>,
    mempool: impl IntoIterator<Item = (&'a Txid, i64)>,
) -> Option<String> {
    let mut engine = sha256::Hash::engine();
    let mut any = false;
    let mut line = String::with_capacity(80);
    let mut add = |txid: &Txid, height: i64| {
        line.clear();
        let _ = write!(line, "{txid}:{height}:");
        engine.input(line.as_bytes());
        any = true;
    };
    for (txid, height) in confirmed {
        add(txid, i64::from(height.to_u32()));
    }
    for (txid, height) in mempool {
        add(txid, height);
    }
    any.then(|| sha256::Hash::from_engine(engine).to_string())
}

/// The length of one history entry's `tx_hash:height:` in the status string (ElectrumX
/// prices status hashing by it).
pub fn entry_len(height: i64) -> usize {
    // 64 hex digits, two colons, the height's digits and sign.
    let digits = height
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |d| d as usize + 1);
    64 + 2 + digits + usize::from(height < 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(hex: &str) -> Txid {
        hex.parse().unwrap()
    }

    #[test]
    fn entry_lengths_count_digits_and_sign() {
        assert_eq!(entry_len(0), 67);
        assert_eq!(entry_len(9), 67);
        assert_eq!(entry_len(10), 68);
        assert_eq!(entry_len(2473), 70);
        assert_eq!(entry_len(-1), 68);
    }

    #[test]
    fn matches_the_protocol_example() {
        // protocol-basics.rst, "Status Example" (BTC regtest,
        // bcrt1qn7d2x7272lznt5hhk9s07q3cqnrqljnwladrd3).
        let confirmed = [
            (
                txid("a6c9c361bd0bc536d6a22648efbf8f9b200e425ef6c3a7a9669dc444c532a347"),
                2472,
            ),
            (
                txid("9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c"),
                2473,
            ),
            (
                txid("770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30"),
                2473,
            ),
        ];
        let mempool = [
            (
                txid("80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311"),
                0,
            ),
            (
                txid("e02a1dadfa83b996b24175df807b271ea5d02937ef5b35c195fac1e1bdc3198f"),
                0,
            ),
            (
                txid("bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85"),
                -1,
            ),
        ];
        let got = status(
            confirmed.iter().map(|(t, h)| (t, Height::new(*h))),
            mempool.iter().map(|(t, h)| (t, *h)),
        );
        assert_eq!(
            got.as_deref(),
            Some("78e96c6562cafa71c115503b9411fdfdc595a45031e2ab76ff75162fe1b0590d")
        );
    }

    #[test]
    fn no_transactions_is_null() {
        assert_eq!(status([], []), None);
    }
}
