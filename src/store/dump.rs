//! `ferrumx dump-index`: every record of the index as text, for comparing two indexes.

use super::StoreError;
use super::snapshot::Snapshot;

impl Snapshot<'_> {
    /// Writes every record of the index as text, in key order, one per line: two
    /// indexes hold the same data exactly when their dumps are equal.
    pub fn dump(&self, out: &mut dyn std::io::Write) -> Result<(), DumpError> {
        use crate::hashes::to_hex;
        if let Some(state) = self.state()? {
            writeln!(
                out,
                "state coin={} net={} genesis={} height={:?} tip={:?} tx_count={}",
                state.coin, state.net, state.genesis, state.height, state.tip, state.tx_count
            )?;
        }
        for (name, _, db) in self.tables.named() {
            for item in db.iter(&self.txn)? {
                let (key, value) = item.map_err(StoreError::from)?;
                writeln!(out, "{name} {} {}", to_hex(key), to_hex(value))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the dump: {0}")]
    Io(#[from] std::io::Error),
}

impl From<heed::Error> for DumpError {
    fn from(e: heed::Error) -> Self {
        DumpError::Store(StoreError::Lmdb(e))
    }
}
