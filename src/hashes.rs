//! The identifiers the index is built from, as distinct types so that byte order and
//! truncation live in one place: `HashX` (the index key of a script), `ScriptHash` (what
//! clients send), `TxNum` (a transaction's position in the chain), `Height` (a block's
//! position in the chain).

use bitcoin::hashes::{Hash, sha256};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Length of a hashX: the first 11 bytes of sha256(scriptPubKey), as ElectrumX.
pub const HASHX_LEN: usize = 11;

/// Bytes used to store a `TxNum` in keys and values (2^40 transactions is plenty).
pub const TXNUM_LEN: usize = 5;

/// A block's position in the chain: the genesis block is at 0. Its own type so that a
/// height is not mixed up with a count of blocks or transactions: arithmetic is by named
/// methods, and a difference of two heights is a count (`blocks_after`). Shown, logged,
/// stored in the state JSON and sent to clients as the plain number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Height(u32);

impl Height {
    pub const GENESIS: Height = Height(0);

    pub const fn new(height: u32) -> Height {
        Height(height)
    }

    pub const fn to_u32(self) -> u32 {
        self.0
    }

    pub const fn to_u64(self) -> u64 {
        self.0 as u64
    }

    /// The next block's height. A chain of 2^32 blocks cannot exist (8,000 years of
    /// one-minute blocks), so running past it is a bug, not an input to handle.
    pub fn next(self) -> Height {
        match self.0.checked_add(1) {
            Some(next) => Height(next),
            None => panic!("no block height after {}", self.0),
        }
    }

    /// The previous block's height; `None` for the genesis block.
    pub fn prev(self) -> Option<Height> {
        self.0.checked_sub(1).map(Height)
    }

    /// The height `blocks` later; `None` past the largest height.
    pub fn checked_add(self, blocks: u32) -> Option<Height> {
        self.0.checked_add(blocks).map(Height)
    }

    pub fn saturating_add(self, blocks: u32) -> Height {
        Height(self.0.saturating_add(blocks))
    }

    /// The height `blocks` earlier; `None` before the genesis block.
    pub fn checked_sub(self, blocks: u32) -> Option<Height> {
        self.0.checked_sub(blocks).map(Height)
    }

    /// The height `blocks` earlier, or the genesis block.
    pub fn saturating_sub(self, blocks: u32) -> Height {
        Height(self.0.saturating_sub(blocks))
    }

    /// How many blocks follow `earlier` up to and including this one: 0 if `earlier` is
    /// not below this height.
    pub fn blocks_after(self, earlier: Height) -> u32 {
        self.0.saturating_sub(earlier.0)
    }

    /// Number of blocks from the genesis block up to and including this one.
    pub fn chain_len(self) -> u64 {
        u64::from(self.0) + 1
    }

    /// The heights from this one up to and including `last` (none if `last` is lower).
    pub fn through(self, last: Height) -> impl DoubleEndedIterator<Item = Height> + use<> {
        (self.0..=last.0).map(Height)
    }

    /// The heights from this one up to but excluding `end` (none if `end` is not higher).
    pub fn until(self, end: Height) -> impl DoubleEndedIterator<Item = Height> + use<> {
        (self.0..end.0).map(Height)
    }

    /// Big-endian, so that keys sort in chain order.
    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    pub fn from_be_bytes(bytes: [u8; 4]) -> Height {
        Height(u32::from_be_bytes(bytes))
    }
}

/// A number too large, or negative, for a block height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a block height")]
pub struct NotAHeight(pub i128);

impl TryFrom<u64> for Height {
    type Error = NotAHeight;
    fn try_from(value: u64) -> Result<Height, NotAHeight> {
        u32::try_from(value)
            .map(Height)
            .map_err(|_| NotAHeight(value.into()))
    }
}

/// For the daemon's and peers' heights, which JSON gives as signed numbers.
impl TryFrom<i64> for Height {
    type Error = NotAHeight;
    fn try_from(value: i64) -> Result<Height, NotAHeight> {
        let unsigned = u64::try_from(value).map_err(|_| NotAHeight(value.into()))?;
        Height::try_from(unsigned)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The plain number, as when `Height` was a `u32`: the index dump prints it.
impl fmt::Debug for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Global position of a transaction in the chain: 0 is the first indexed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxNum(pub u64);

impl TxNum {
    pub fn to_bytes(self) -> [u8; TXNUM_LEN] {
        let be = self.0.to_be_bytes();
        let mut out = [0u8; TXNUM_LEN];
        out.copy_from_slice(&be[8 - TXNUM_LEN..]);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> TxNum {
        let mut be = [0u8; 8];
        be[8 - TXNUM_LEN..].copy_from_slice(&bytes[..TXNUM_LEN]);
        TxNum(u64::from_be_bytes(be))
    }
}

/// The index key of a script: a truncated sha256 of the scriptPubKey, in digest order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashX(pub [u8; HASHX_LEN]);

impl HashX {
    pub fn from_script(script: &[u8]) -> HashX {
        let digest = sha256::Hash::hash(script).to_byte_array();
        HashX::from_digest(&digest)
    }

    fn from_digest(digest: &[u8; 32]) -> HashX {
        let mut out = [0u8; HASHX_LEN];
        out.copy_from_slice(&digest[..HASHX_LEN]);
        HashX(out)
    }

    pub fn from_slice(bytes: &[u8]) -> HashX {
        let mut out = [0u8; HASHX_LEN];
        out.copy_from_slice(&bytes[..HASHX_LEN]);
        HashX(out)
    }
}

impl fmt::Debug for HashX {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashX({})", to_hex(&self.0))
    }
}

/// A script hash as the Electrum protocol defines it: sha256(scriptPubKey). Stored in
/// digest order; shown to and read from clients byte-reversed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptHash(pub [u8; 32]);

impl ScriptHash {
    pub fn from_script(script: &[u8]) -> ScriptHash {
        ScriptHash(sha256::Hash::hash(script).to_byte_array())
    }

    /// Parses the client form: 64 hex digits, byte-reversed. `None` if malformed.
    pub fn from_hex(text: &str) -> Option<ScriptHash> {
        let mut bytes = from_hex(text)?;
        if bytes.len() != 32 {
            return None;
        }
        bytes.reverse();
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Some(ScriptHash(out))
    }

    pub fn to_hex(&self) -> String {
        let mut rev = self.0;
        rev.reverse();
        to_hex(&rev)
    }

    pub fn hashx(&self) -> HashX {
        HashX::from_digest(&self.0)
    }
}

impl fmt::Display for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptHash({})", self.to_hex())
    }
}

/// Lower-case hex of bytes in the given order.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Decodes hex (either case). `None` on odd length or a non-hex character.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_hex_into(text.as_bytes(), &mut out).then_some(out)
}

/// Decodes hex (either case) into `out`, replacing what it held; false (and `out`
/// unspecified) on odd length or a non-hex character. Blocks arrive as hex, 8 MB for a
/// full one: checked and decoded with SIMD, into memory the caller may keep.
pub fn decode_hex_into(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if !hex.len().is_multiple_of(2) {
        return false;
    }
    out.clear();
    out.resize(hex.len() / 2, 0);
    faster_hex::hex_decode(hex, out).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripthash_of_p2pkh_matches_the_protocol_example() {
        // protocol-basics.rst: P2PKH script of 1Bit... hashes to this script hash
        let script = from_hex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").unwrap();
        let sh = ScriptHash::from_script(&script);
        assert_eq!(
            sh.to_hex(),
            "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
        );
        assert_eq!(ScriptHash::from_hex(&sh.to_hex()), Some(sh));
        assert_eq!(sh.hashx(), HashX::from_script(&script));
    }

    #[test]
    fn txnum_round_trips_through_five_bytes() {
        for n in [0u64, 1, 255, 256, 0x12_3456_789a, (1 << 40) - 1] {
            assert_eq!(TxNum::from_bytes(&TxNum(n).to_bytes()), TxNum(n));
        }
        assert!(TxNum(1).to_bytes() < TxNum(256).to_bytes());
    }

    #[test]
    fn heights_are_shown_and_serialized_as_the_plain_number() {
        let height = Height::new(812_345);
        assert_eq!(height.to_string(), "812345");
        // The index dump prints the state's height with `{:?}`.
        assert_eq!(format!("{:?}", Some(height)), "Some(812345)");
        assert_eq!(serde_json::to_string(&height).unwrap(), "812345");
        assert_eq!(
            serde_json::from_str::<Option<Height>>("7").unwrap(),
            Some(Height::new(7))
        );
        assert!(serde_json::from_str::<Height>("-1").is_err());
        assert!(serde_json::from_str::<Height>("4294967296").is_err());
        assert_eq!(
            Height::try_from(u64::from(u32::MAX)),
            Ok(Height::new(u32::MAX))
        );
        assert_eq!(Height::try_from(1u64 << 32), Err(NotAHeight(1 << 32)));
        assert_eq!(Height::try_from(7i64), Ok(Height::new(7)));
        assert_eq!(Height::try_from(-1i64), Err(NotAHeight(-1)));
    }

    #[test]
    fn height_steps_counts_and_ranges() {
        let (h0, h5, h9) = (Height::GENESIS, Height::new(5), Height::new(9));
        assert_eq!(h5.next(), Height::new(6));
        assert_eq!(h5.prev(), Some(Height::new(4)));
        assert_eq!(h0.prev(), None);
        assert_eq!(h5.checked_sub(6), None);
        assert_eq!(h5.saturating_sub(6), h0);
        assert_eq!(h5.checked_add(4), Some(h9));
        assert_eq!(Height::new(u32::MAX).checked_add(1), None);
        assert_eq!(
            Height::new(u32::MAX).saturating_add(1),
            Height::new(u32::MAX)
        );
        assert_eq!(h9.blocks_after(h5), 4);
        assert_eq!(h5.blocks_after(h9), 0);
        assert_eq!(h0.chain_len(), 1);
        assert_eq!(Height::new(u32::MAX).chain_len(), 1 << 32);
        let through: Vec<u32> = h5.through(h9).map(Height::to_u32).collect();
        assert_eq!(through, [5, 6, 7, 8, 9]);
        let until: Vec<u32> = h5.until(h9).rev().map(Height::to_u32).collect();
        assert_eq!(until, [8, 7, 6, 5]);
        assert_eq!(h9.through(h5).count(), 0);
        assert_eq!(h5.until(h5).count(), 0);
    }

    #[test]
    #[should_panic(expected = "no block height after 4294967295")]
    fn there_is_no_height_after_the_largest() {
        Height::new(u32::MAX).next();
    }

    #[test]
    fn hex_rejects_malformed_input() {
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("AbcD"), Some(vec![0xab, 0xcd]));
        // Long inputs (decoded a chunk at a time): every byte value round-trips, and a
        // non-digit anywhere, in any chunk, is refused.
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let hex = to_hex(&all);
        assert_eq!(from_hex(&hex).as_deref(), Some(&all[..]));
        assert_eq!(from_hex(&hex.to_uppercase()).as_deref(), Some(&all[..]));
        for at in [0, 1, 127, 128, 129, 1000, 1999] {
            for bad in ['g', ' ', '/', ':', '@', 'G', '`'] {
                let mut broken = hex.clone();
                broken.replace_range(at..at + 1, &bad.to_string());
                assert_eq!(from_hex(&broken), None, "{bad:?} at {at}");
            }
        }
        assert_eq!(ScriptHash::from_hex("00"), None);
    }
}
