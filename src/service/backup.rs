//! Backups while the daemon runs: a consistent snapshot of the store, spooled to a
//! temporary file in the data directory so the store's writers wait only for the local
//! copy, never for a slow client.

use std::io::{Seek, SeekFrom, Write};

use super::{Pki, ServiceError};
use crate::store::backup::{BackupError, BackupSummary};

impl From<BackupError> for ServiceError {
    fn from(e: BackupError) -> Self {
        ServiceError::Internal(format!("backup: {e}"))
    }
}

impl Pki {
    /// Snapshot the store into an unnamed temporary file (gone when closed), positioned at
    /// its start, with what it holds.
    pub fn backup_snapshot(&self) -> Result<(std::fs::File, BackupSummary), ServiceError> {
        let io = |e: std::io::Error| ServiceError::Internal(format!("backup spool file: {e}"));
        let mut file = tempfile::tempfile_in(&self.settings.data_dir).map_err(io)?;
        let summary = {
            let mut w = std::io::BufWriter::new(&mut file);
            let s = self.store.backup(&mut w)?;
            w.flush().map_err(io)?;
            s
        };
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok((file, summary))
    }
}
