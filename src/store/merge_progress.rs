//! How far a merge of the catch-up's runs got (kept in the index's state), and the
//! tables it repacks on the way.

use super::{Db, Tables};
use crate::schema;
use serde::{Deserialize, Serialize};

/// A merge of runs is committed a bounded slice at a time, in stages: the txid index and
/// the outpoints repacked (when it is worth it), history, spends, then the UTXO table
/// rebuilt. Each commit records the last record it wrote, so that a merge cut short
/// resumes after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeProgress {
    pub stage: MergeStage,
    /// The stage's last record merged, in hex: records up to it are in the table.
    pub through: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStage {
    /// The txid index, half empty from random inserts, copied in key order to a spare
    /// table: its pages, freed, then hold the merged rows instead of growing the file.
    PackTxids,
    /// The txid index emptied by the stage's first commit and refilled from the spare.
    UnpackTxids,
    /// The same for the outpoints, whose deletes leave pages part empty.
    PackOutpoints,
    UnpackOutpoints,
    History,
    Spends,
    /// The UTXO table was emptied by the stage's first commit and is being refilled.
    Utxo,
}

/// A table of one-size records that the merge of runs repacks when it is part empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packed {
    TxidIndex,
    Outpoints,
}

impl Packed {
    pub(super) fn db(self, tables: &Tables) -> &Db {
        match self {
            Packed::TxidIndex => &tables.txid_index,
            Packed::Outpoints => &tables.outpoints,
        }
    }

    /// The size of its keys and of its values.
    pub(super) fn record(self) -> (usize, usize) {
        match self {
            Packed::TxidIndex => (schema::TXID_INDEX_KEY_LEN, 0),
            Packed::Outpoints => (schema::OUTPOINT_KEY_LEN, schema::OUTPOINT_VALUE_LEN),
        }
    }

    /// The merge's stages that copy it to the spare table and back.
    pub fn stages(self) -> (MergeStage, MergeStage) {
        match self {
            Packed::TxidIndex => (MergeStage::PackTxids, MergeStage::UnpackTxids),
            Packed::Outpoints => (MergeStage::PackOutpoints, MergeStage::UnpackOutpoints),
        }
    }
}
