//! Why a sync step failed, and which failures the server cannot wait out.

use crate::prefetch::FetchError;
use ferrumx::daemon::DaemonError;
use ferrumx::hashes::Height;
use ferrumx::index::IndexError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Fetch(#[from] Box<FetchError>),
    #[error(
        "no common block with the daemon within REORG_LIMIT ({limit}) blocks below our tip \
         {height}; the index is left untouched. Is DAEMON_URL pointing at the right chain?"
    )]
    NoForkPoint { height: Height, limit: u32 },
    #[error("stopping")]
    Stopping,
}

impl SyncError {
    fn store_error(&self) -> Option<&ferrumx::store::StoreError> {
        match self {
            SyncError::Index(IndexError::Store(e)) => Some(e),
            _ => None,
        }
    }

    /// A write failed for want of space; the index kept its last commit.
    pub fn is_out_of_space(&self) -> bool {
        self.store_error().is_some_and(|e| e.is_out_of_space())
    }

    pub fn is_map_full(&self) -> bool {
        self.store_error().is_some_and(|e| e.is_map_full())
    }

    /// Errors after which retrying cannot help: the server must stop.
    pub fn is_fatal(&self) -> bool {
        let fatal = matches!(
            self,
            SyncError::NoForkPoint { .. }
                | SyncError::Index(IndexError::ReorgTooDeep { .. })
                | SyncError::Index(IndexError::Store(_))
                | SyncError::Index(IndexError::WrongGenesis { .. })
                | SyncError::Daemon(DaemonError::WrongGenesis { .. })
        );
        // A full disk or map is waited out, not fatal.
        fatal && !self.is_out_of_space()
    }
}
