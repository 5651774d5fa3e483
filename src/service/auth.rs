//! Bearer-token authentication and the bootstrap admin token.
//!
//! Secrets are 32 random bytes, base64url; only their SHA-256 is stored, and a token is
//! found by that hash, so no stored secret is ever compared byte by byte with input.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Pki, ServiceError};
use crate::store::ApiTokenRecord;
use crate::types::{new_id, now};

/// The tenant every object belongs to until tenants are configured.
pub const DEFAULT_TENANT: &str = "default";

/// Who is calling, once their token checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub tenant: String,
    pub capabilities: Vec<String>,
}

/// Name of the file, in the data directory, that receives the bootstrap token's secret.
pub const ROOT_TOKEN_FILE: &str = "root-token";

fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl Pki {
    /// Find the caller by bearer secret.
    pub fn authenticate(&self, secret: &str) -> Result<Principal, ServiceError> {
        match self.store.api_token_by_hash(&hash_secret(secret))? {
            Some(rec) => Ok(Principal {
                token_id: rec.id,
                tenant: rec.tenant,
                capabilities: rec.capabilities,
            }),
            None => Err(ServiceError::Unauthorized),
        }
    }

    /// At first start, make the bootstrap admin token: the secret goes to
    /// `<data_dir>/root-token` (mode 0600) before its hash is stored, so a crash in between
    /// leaves no token whose secret nobody has. Returns the token id when one was made.
    pub fn ensure_bootstrap_token(&self) -> Result<Option<String>, ServiceError> {
        if self.store.bootstrap_token_id()?.is_some() {
            return Ok(None);
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut()).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let secret =
            Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()));
        write_secret_file(&self.settings.data_dir.join(ROOT_TOKEN_FILE), &secret)
            .map_err(|e| ServiceError::Internal(format!("writing the root token file: {e}")))?;
        let rec = ApiTokenRecord {
            id: new_id("tok"),
            name: "bootstrap admin".into(),
            tenant: DEFAULT_TENANT.into(),
            capabilities: vec!["sys".into(), "admin".into()],
            created_at: now(),
        };
        self.store
            .insert_bootstrap_token(&hash_secret(&secret), &rec)?;
        Ok(Some(rec.id))
    }
}

/// Write a secret to `path` with mode 0600, atomically (temp file, fsync, rename).
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
