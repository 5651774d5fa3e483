//! Backups, signed and checked: a consistent snapshot of the store whose content hash is
//! signed in the token by the audit key, and restores that accept a backup only when that
//! signature verifies with a key read from the token itself.
//!
//! A checksum alone proves nothing against someone who can write backup storage: they
//! add an `api_tokens` row with a secret of their choosing (or drop a revocation) and
//! recompute it. The signature is what stops them, so the key that checks it must never
//! come from the file: the file only names it (by the SHA-256 of its public key), and the
//! restore looks for that key in the token and makes the token prove it holds the private
//! half. The signed message starts with its own context line, unlike an audit head's, so a
//! backup signature can never pass for a head signature or the other way round.
//!
//! While the daemon runs, the snapshot is spooled to a temporary file in the data
//! directory so the store's writers wait only for the local copy, never for a slow client.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::audit::{ecdsa_p256_verifies, sha256_hex, AUDIT_KEY_LABEL};
use super::{Pki, ServiceError};
use crate::hsm::{HsmError, KeyRef, ObjectType, Token};
use crate::keys::{KeySpec, SignatureAlgorithm};
use crate::store::backup::{self as store_backup, BackupError, BackupSignature, BackupSummary};

/// Domain separation for what the audit key signs for a backup.
const BACKUP_CONTEXT: &str = "scaivault-backup-v1";
/// Domain separation for the throw-away signature that proves the token holds the
/// private half of the key a restore is about to trust.
const KEY_CHECK_CONTEXT: &str = "scaivault-backup-key-check-v1";

impl From<BackupError> for ServiceError {
    fn from(e: BackupError) -> Self {
        ServiceError::Internal(format!("backup: {e}"))
    }
}

/// The bytes the audit key signs (as ECDSA with SHA-256) for a backup whose content hash
/// (the `sha256` of its `end` line, lower-case hex) is `content_sha256`.
pub fn backup_message(content_sha256: &str) -> Vec<u8> {
    format!(
        "{BACKUP_CONTEXT}\n{}\n",
        content_sha256.to_ascii_lowercase()
    )
    .into_bytes()
}

/// Why a backup is not restored although it is intact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// A version 1 backup (written before backups were signed), not accepted explicitly.
    #[error(
        "this backup is not signed (format version 1, written before backups were signed), \
         so nothing shows it was not altered"
    )]
    Unsigned,
    /// Signed, but by no audit key this token holds.
    #[error(
        "this backup is signed by a key that is not in this token (key SHA-256 {0}): it was \
         made with another token, or altered; it is not restored"
    )]
    UnknownKey(String),
    #[error(
        "the backup's signature does not verify with the token's audit key: the file was \
         altered after it was made; it is not restored"
    )]
    BadSignature,
    #[error("cannot check the backup's signature in the token: {0}")]
    Token(String),
}

impl From<HsmError> for RestoreError {
    fn from(e: HsmError) -> Self {
        RestoreError::Token(e.to_string())
    }
}

/// What a restore (or a token-backed check) established about where a backup came from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Authenticity {
    /// Signed by the audit key in this token; the signature verifies.
    Verified { key_sha256: String },
    /// Version 1, unsigned, accepted because the operator asked for it.
    UnsignedAccepted,
}

impl Pki {
    /// Write a backup of the store to `out`, signed by the audit key in the token.
    pub fn backup_to(&self, out: impl Write) -> Result<BackupSummary, ServiceError> {
        let key = self.ensure_audit_key()?;
        let spki = key.spki_der().map_err(ServiceError::Internal)?;
        let key_ref = key.key_ref()?;
        let key_sha256 = sha256_hex(&spki);
        self.store.backup(out, |content_sha256| {
            let message = backup_message(content_sha256);
            let sig = self.token.sign_digest(
                &key_ref,
                SignatureAlgorithm::EcdsaSha256,
                &Sha256::digest(&message),
            )?;
            // A signature the restore would refuse is worse than none: it fails when the
            // backup is needed. So check it now, in software, like every CA signature.
            if !ecdsa_p256_verifies(&spki, &message, &sig) {
                return Err(ServiceError::Internal(
                    "the token's signature on the backup does not verify with the audit key".into(),
                ));
            }
            Ok(BackupSignature {
                key_sha256: key_sha256.clone(),
                signature: base64::engine::general_purpose::STANDARD.encode(sig),
            })
        })
    }

    /// Snapshot the store, signed, into an unnamed temporary file (gone when closed),
    /// positioned at its start, with what it holds.
    pub fn backup_snapshot(&self) -> Result<(std::fs::File, BackupSummary), ServiceError> {
        let io = |e: std::io::Error| ServiceError::Internal(format!("backup spool file: {e}"));
        let mut file = tempfile::tempfile_in(&self.settings.data_dir).map_err(io)?;
        let summary = {
            let mut w = std::io::BufWriter::new(&mut file);
            let s = self.backup_to(&mut w)?;
            w.flush().map_err(io)?;
            s
        };
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok((file, summary))
    }
}

/// The public key (DER SPKI) of the audit key in `token` whose SPKI hashes to
/// `key_sha256`, once the token has shown it holds the private half; None when it holds
/// no such key.
///
/// Only private key objects marked private are candidates: those only a logged-in user can
/// create, whereas a public key object (or a non-private private key) may be created by
/// anyone who reaches the token without its PIN. And a public key object is only trusted
/// after a fresh signature by the private key verifies with it, so a public key planted
/// next to the real private key is no help either.
fn token_audit_key(token: &Token, key_sha256: &str) -> Result<Option<Vec<u8>>, RestoreError> {
    for o in token.list_objects()? {
        if o.kind != ObjectType::Private || o.label != AUDIT_KEY_LABEL || o.private != Some(true) {
            continue;
        }
        let key = KeyRef {
            label: o.label.clone(),
            id: o.id.clone(),
        };
        // A pair whose public half is missing or ambiguous is not the one we look for.
        let Ok(spki) = token.public_key_spki(&key, KeySpec::EcP256) else {
            continue;
        };
        if !sha256_hex(&spki).eq_ignore_ascii_case(key_sha256) {
            continue;
        }
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| RestoreError::Token(e.to_string()))?;
        let challenge = format!("{KEY_CHECK_CONTEXT}\n{}\n", hex::encode(nonce));
        let sig = token.sign_digest(
            &key,
            SignatureAlgorithm::EcdsaSha256,
            &Sha256::digest(challenge.as_bytes()),
        )?;
        if !ecdsa_p256_verifies(&spki, challenge.as_bytes(), &sig) {
            return Err(RestoreError::Token(format!(
                "the public key of the audit key {key_sha256} in the token is not its private \
                 key's (a test signature does not verify)"
            )));
        }
        return Ok(Some(spki));
    }
    Ok(None)
}

/// Check a verified backup's signature against the audit key in `token`. An unsigned
/// (version 1) backup passes only with `accept_unsigned`, and then with a warning.
pub fn authenticate(
    token: &Token,
    summary: &BackupSummary,
    accept_unsigned: bool,
) -> Result<Authenticity, RestoreError> {
    let Some(sig) = &summary.signature else {
        if !accept_unsigned {
            return Err(RestoreError::Unsigned);
        }
        tracing::warn!(sha256 = %summary.sha256, created_at = %summary.created_at,
            "accepting an UNSIGNED backup (--accept-unsigned): nothing shows it was not altered \
             since it was written; anyone who could write it could have added API tokens or \
             removed revocations");
        return Ok(Authenticity::UnsignedAccepted);
    };
    let spki = token_audit_key(token, &sig.key_sha256)?
        .ok_or_else(|| RestoreError::UnknownKey(sig.key_sha256.clone()))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&sig.signature)
        .map_err(|_| RestoreError::BadSignature)?;
    if !ecdsa_p256_verifies(&spki, &backup_message(&summary.sha256), &signature) {
        return Err(RestoreError::BadSignature);
    }
    Ok(Authenticity::Verified {
        key_sha256: sha256_hex(&spki),
    })
}

/// Check a backup completely, its signature included, without writing anything.
pub fn check(
    token: &Token,
    path: &Path,
    accept_unsigned: bool,
) -> Result<(BackupSummary, Authenticity), RestoreError> {
    let summary = store_backup::verify(path)?;
    let auth = authenticate(token, &summary, accept_unsigned)?;
    Ok((summary, auth))
}

/// Restore a backup into `data_dir` (absent or empty), after checking it completely and
/// its signature against the audit key in `token`; nothing is written when it is refused.
pub fn restore(
    token: &Token,
    path: &Path,
    data_dir: &Path,
    accept_unsigned: bool,
) -> Result<(BackupSummary, Authenticity), RestoreError> {
    let mut auth = None;
    let summary = store_backup::restore(path, data_dir, |s| {
        auth = Some(authenticate(token, s, accept_unsigned)?);
        Ok::<(), RestoreError>(())
    })?;
    let auth =
        auth.ok_or_else(|| RestoreError::Token("the backup was not authenticated".into()))?;
    Ok((summary, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_message_is_never_an_audit_head_message() {
        let hash = "ab".repeat(32);
        let backup = backup_message(&hash.to_ascii_uppercase());
        assert_eq!(
            backup,
            format!("scaivault-backup-v1\n{hash}\n").into_bytes()
        );
        let head = super::super::audit::head_message(7, &hash);
        let first_line = |m: &[u8]| m.split(|b| *b == b'\n').next().map(<[u8]>::to_vec);
        assert_ne!(first_line(&backup), first_line(&head));
        assert_ne!(
            first_line(&backup),
            Some(KEY_CHECK_CONTEXT.as_bytes().to_vec())
        );
    }
}
