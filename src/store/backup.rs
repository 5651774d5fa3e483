//! Backups of the metadata store: a consistent snapshot written as one file, its
//! verification, and its restoration into an empty data directory.
//!
//! The file (format `scaivault-pki-backup`, version 2) is UTF-8 text, one JSON object per
//! line, so it can be inspected with ordinary tools:
//!
//! ```text
//! {"type":"header","format":"scaivault-pki-backup","version":1,"created_at":"…","producer":"scaivault-pki 0.1.0","next_id":N}
//! {"type":"tree","name":"cas"}                       one per sled tree, then its entries:
//! {"type":"entry","k":"<base64>","v":"<base64>"}
//! {"type":"file","path":"crls/<ca>.crl","data":"<base64>"}   published CRL files
//! {"type":"end","trees":T,"entries":E,"files":F,"sha256":"<hex>","key_sha256":"<hex>","signature":"<base64>"}
//! ```
//!
//! `sha256` covers every byte before the `end` line; the counts must match too, so a
//! truncated or altered file is refused before anything is written. A checksum only
//! catches accidents: whoever can write the file can recompute it. So version 2 also
//! carries a signature over `sha256`, made by the caller of [`Store::backup`] (the
//! service layer signs in the token) and checked by the caller of [`restore`]; this
//! module only carries it and insists that a version 2 file has one. Version 1 files
//! (written before backups were signed) have none and are read as unsigned. `next_id` is above
//! every sequence number the store had handed out: a restored store continues from it.
//! A restore also moves every CA's CRL number up to the restore time in milliseconds, so
//! CRL numbers keep growing past those published after the backup was taken.
//!
//! Consistency: the snapshot is taken with the store's write gate held exclusively, so
//! no write is half visible in it; writers wait for the (local, sequential) copy.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, ID_FLOOR_KEY};

pub const FORMAT: &str = "scaivault-pki-backup";
/// The version written: signed.
pub const VERSION: u32 = 2;
/// The last version without a signature, still read so that old backups can be restored
/// when the operator says so explicitly.
pub const UNSIGNED_VERSION: u32 = 1;
/// The longest line accepted on restore (a CRL of a few million entries, base64).
const MAX_LINE: u64 = 512 * 1024 * 1024;
/// Where published CRLs live, relative to the store directory.
const CRL_DIR: &str = "crls";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{0}")]
    Io(String),
    #[error("this is not a scaivault-pki backup: {0}")]
    Format(String),
    #[error(
        "this backup has format version {0}; this program reads versions {UNSIGNED_VERSION} and {VERSION}"
    )]
    Version(u32),
    #[error("the backup is damaged or incomplete: {0}")]
    Damaged(String),
    #[error("{0} is not empty; a backup is restored only into an empty data directory")]
    NotEmpty(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signature a version 2 backup carries over its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSignature {
    /// Hex SHA-256 of the signing key's DER SubjectPublicKeyInfo.
    pub key_sha256: String,
    /// The signature, base64 (its meaning is the signer's: see `service::backup`).
    pub signature: String,
}

/// What a backup holds, as written or as verified.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub format: &'static str,
    pub version: u32,
    pub created_at: String,
    pub producer: String,
    pub trees: u64,
    pub entries: u64,
    pub files: u64,
    /// Size of the whole file.
    pub bytes: u64,
    /// SHA-256 of everything before the `end` line (the value the file carries).
    pub sha256: String,
    /// As the file carries it, not yet checked by anyone; None in a version 1 file.
    pub signature: Option<BackupSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Header {
        format: String,
        version: u32,
        created_at: String,
        producer: String,
        next_id: u64,
    },
    Tree {
        name: String,
    },
    Entry {
        k: String,
        v: String,
    },
    File {
        path: String,
        data: String,
    },
    End {
        trees: u64,
        entries: u64,
        files: u64,
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_sha256: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(what: &str, s: &str) -> Result<Vec<u8>, BackupError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| BackupError::Damaged(format!("{what} is not base64: {e}")))
}

/// Writes through to `inner`, hashing and counting every byte.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn line(&mut self, line: &Line) -> Result<(), BackupError> {
        let mut buf = serde_json::to_vec(line).map_err(|e| BackupError::Io(e.to_string()))?;
        buf.push(b'\n');
        self.hash.update(&buf);
        self.bytes += buf.len() as u64;
        self.inner
            .write_all(&buf)
            .map_err(|e| BackupError::Io(format!("writing the backup: {e}")))
    }
}

/// A file name we write into `crls/` ourselves: `<ca id>[.delta].crl`.
fn is_crl_name(name: &str) -> bool {
    name.ends_with(".crl")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What the snapshot part of a backup wrote, for its `end` line.
struct Snapshot {
    created_at: String,
    producer: String,
    trees: u64,
    entries: u64,
    files: u64,
}

impl Store {
    /// Write a consistent snapshot of the whole store (every tree, every published CRL
    /// file) to `out`, then its `end` line with the signature `sign` makes over the
    /// content hash (hex SHA-256 of every byte before the `end` line). Writers wait while
    /// the snapshot is taken; readers do not. `sign` runs after the write gate is
    /// released, so writers never wait on the token.
    pub fn backup<E: From<BackupError>>(
        &self,
        out: impl Write,
        sign: impl FnOnce(&str) -> Result<BackupSignature, E>,
    ) -> Result<BackupSummary, E> {
        let mut w = Hashing {
            inner: out,
            hash: Sha256::new(),
            bytes: 0,
        };
        let snap = self.snapshot(&mut w)?;
        let sha256 = hex::encode(w.hash.clone().finalize());
        let signature = sign(&sha256)?;
        let before_end = w.bytes;
        let end = Line::End {
            trees: snap.trees,
            entries: snap.entries,
            files: snap.files,
            sha256: sha256.clone(),
            key_sha256: Some(signature.key_sha256.clone()),
            signature: Some(signature.signature.clone()),
        };
        let mut buf = serde_json::to_vec(&end).map_err(|e| BackupError::Io(e.to_string()))?;
        buf.push(b'\n');
        w.inner
            .write_all(&buf)
            .and_then(|()| w.inner.flush())
            .map_err(|e| BackupError::Io(format!("writing the backup: {e}")))?;
        Ok(BackupSummary {
            format: FORMAT,
            version: VERSION,
            created_at: snap.created_at,
            producer: snap.producer,
            trees: snap.trees,
            entries: snap.entries,
            files: snap.files,
            bytes: before_end + buf.len() as u64,
            sha256,
            signature: Some(signature),
        })
    }

    /// Everything before the `end` line, with the write gate held exclusively.
    fn snapshot<W: Write>(&self, w: &mut Hashing<W>) -> Result<Snapshot, BackupError> {
        let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let created_at = crate::types::rfc3339(crate::types::now());
        let producer = format!("scaivault-pki {}", env!("CARGO_PKG_VERSION"));
        w.line(&Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            created_at: created_at.clone(),
            producer: producer.clone(),
            next_id: self.next_id()?,
        })?;

        let mut names: Vec<String> = Vec::new();
        for raw in self.db.tree_names() {
            let name = String::from_utf8(raw.to_vec())
                .map_err(|_| StoreError::Corrupt("a tree name is not UTF-8".into()))?;
            names.push(name);
        }
        names.sort();
        let (mut entries, mut files) = (0u64, 0u64);
        for name in &names {
            w.line(&Line::Tree { name: name.clone() })?;
            let tree = self.db.open_tree(name).map_err(StoreError::from)?;
            for item in tree.iter() {
                let (k, v) = item.map_err(StoreError::from)?;
                w.line(&Line::Entry {
                    k: b64(&k),
                    v: b64(&v),
                })?;
                entries += 1;
            }
        }

        let mut crl_names = Vec::new();
        match fs::read_dir(&self.crl_dir) {
            Ok(dir) => {
                for e in dir {
                    let e = e.map_err(|e| BackupError::Io(format!("listing CRL files: {e}")))?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    // Staged `.tmp` files are a publication in progress, never published.
                    if is_crl_name(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
                        crl_names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::Io(format!("listing CRL files: {e}"))),
        }
        crl_names.sort();
        for name in crl_names {
            let data = fs::read(self.crl_dir.join(&name))
                .map_err(|e| BackupError::Io(format!("reading CRL file {name}: {e}")))?;
            w.line(&Line::File {
                path: format!("{CRL_DIR}/{name}"),
                data: b64(&data),
            })?;
            files += 1;
        }
        Ok(Snapshot {
            created_at,
            producer,
            trees: names.len() as u64,
            entries,
            files,
        })
    }
}

/// Read a backup line by line, handing each parsed line (but `end`) to `each`, and check
/// the header, the counts and the checksum.
fn read_backup(
    path: &Path,
    mut each: impl FnMut(&Line) -> Result<(), BackupError>,
) -> Result<BackupSummary, BackupError> {
    let f = fs::File::open(path)
        .map_err(|e| BackupError::Io(format!("cannot open {}: {e}", path.display())))?;
    let mut r = BufReader::new(f);
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = Vec::new();
    // created_at, producer, version
    let mut header: Option<(String, String, u32)> = None;
    let (mut trees, mut entries, mut files) = (0u64, 0u64, 0u64);
    let mut in_tree = false;
    loop {
        buf.clear();
        let n = (&mut r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .map_err(|e| BackupError::Io(format!("reading {}: {e}", path.display())))?;
        if n == 0 {
            return Err(BackupError::Damaged("it ends before its end line".into()));
        }
        if buf.last() != Some(&b'\n') {
            return Err(BackupError::Damaged(
                "its last line is cut short, or a line is too long".into(),
            ));
        }
        let line: Line = serde_json::from_slice(&buf).map_err(|e| {
            if header.is_none() {
                BackupError::Format(format!("the first line is not a backup header ({e})"))
            } else {
                BackupError::Damaged(format!("line {}: {e}", trees + entries + files + 2))
            }
        })?;
        match (&line, &header) {
            (
                Line::Header {
                    format,
                    version,
                    created_at,
                    producer,
                    ..
                },
                None,
            ) => {
                if format != FORMAT {
                    return Err(BackupError::Format(format!("its format is {format:?}")));
                }
                if *version != VERSION && *version != UNSIGNED_VERSION {
                    return Err(BackupError::Version(*version));
                }
                header = Some((created_at.clone(), producer.clone(), *version));
            }
            (_, None) => {
                return Err(BackupError::Format(
                    "the first line is not a backup header".into(),
                ))
            }
            (Line::Header { .. }, Some(_)) => {
                return Err(BackupError::Damaged("a second header".into()))
            }
            (Line::Tree { .. }, _) => {
                if files > 0 {
                    return Err(BackupError::Damaged("a tree after the files".into()));
                }
                trees += 1;
                in_tree = true;
            }
            (Line::Entry { .. }, _) => {
                if !in_tree || files > 0 {
                    return Err(BackupError::Damaged("an entry outside a tree".into()));
                }
                entries += 1;
            }
            (Line::File { .. }, _) => files += 1,
            (
                Line::End {
                    trees: t,
                    entries: e,
                    files: f,
                    sha256,
                    key_sha256,
                    signature,
                },
                Some((created_at, producer, version)),
            ) => {
                let got = hex::encode(hash.finalize());
                if !got.eq_ignore_ascii_case(sha256) {
                    return Err(BackupError::Damaged(format!(
                        "its checksum is {got}, but it says {sha256}"
                    )));
                }
                if (*t, *e, *f) != (trees, entries, files) {
                    return Err(BackupError::Damaged(format!(
                        "it holds {trees} trees, {entries} entries and {files} files, \
                         but says {t}, {e} and {f}"
                    )));
                }
                // The version is under the checksum (and so under the signature): a
                // version 2 file without its signature was altered, never merely old.
                let signature = match (*version, key_sha256, signature) {
                    (VERSION, Some(k), Some(s)) => Some(BackupSignature {
                        key_sha256: k.clone(),
                        signature: s.clone(),
                    }),
                    (VERSION, _, _) => {
                        return Err(BackupError::Damaged(format!(
                            "it is a version {VERSION} backup without its signature"
                        )))
                    }
                    (_, None, None) => None,
                    _ => {
                        return Err(BackupError::Damaged(format!(
                            "a version {version} backup cannot carry a signature"
                        )))
                    }
                };
                let mut rest = [0u8; 1];
                if r.read(&mut rest)
                    .map_err(|e| BackupError::Io(e.to_string()))?
                    != 0
                {
                    return Err(BackupError::Damaged("data after its end line".into()));
                }
                return Ok(BackupSummary {
                    format: FORMAT,
                    version: *version,
                    created_at: created_at.clone(),
                    producer: producer.clone(),
                    trees,
                    entries,
                    files,
                    bytes: bytes + buf.len() as u64,
                    sha256: got,
                    signature,
                });
            }
        }
        hash.update(&buf);
        bytes += buf.len() as u64;
        each(&line)?;
    }
}

/// Check a backup file completely (structure, counts, checksum) without writing anything.
/// The signature, if any, is returned as found: checking it is the caller's.
pub fn verify(path: &Path) -> Result<BackupSummary, BackupError> {
    read_backup(path, |_| Ok(()))
}

/// `crls/<name>` of a backup, as a path under `store_dir`; anything else is refused, so a
/// crafted backup cannot write outside the store.
fn file_target(store_dir: &Path, path: &str) -> Result<PathBuf, BackupError> {
    let p = Path::new(path);
    let mut parts = p.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(d)), Some(Component::Normal(name)), None)
            if d == CRL_DIR && is_crl_name(&name.to_string_lossy()) =>
        {
            Ok(store_dir.join(CRL_DIR).join(name))
        }
        _ => Err(BackupError::Damaged(format!(
            "file path {path:?} is not a CRL file"
        ))),
    }
}

/// CRL numbers must only grow (RFC 5280 §5.2.3), but CRLs published after the backup was
/// taken used numbers the backup does not know. So every CA's counter moves to at least
/// the restore time in milliseconds since 1970: above anything published before, as no
/// CA publishes a thousand CRLs a second. (The CRLs in the backup stay as they were.)
fn raise_crl_numbers(db: &sled::Db) -> Result<(), BackupError> {
    let floor = u64::try_from(crate::types::now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let numbers = db.open_tree("crl_numbers").map_err(StoreError::from)?;
    for item in numbers.iter() {
        let (k, v) = item.map_err(StoreError::from)?;
        let n = <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("CRL number".into()))?;
        if n < floor {
            numbers
                .insert(k, &floor.to_be_bytes())
                .map_err(StoreError::from)?;
        }
    }
    Ok(())
}

/// Is `dir` absent or an empty directory?
fn is_empty_dir(dir: &Path) -> Result<bool, BackupError> {
    match fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(BackupError::Io(format!(
            "cannot read {}: {e}",
            dir.display()
        ))),
    }
}

/// Restore a backup into `data_dir`, which must be absent or empty. The file is verified
/// completely first and handed to `authenticate` (which checks its signature, or refuses);
/// the store is then built under a temporary name and renamed into place
/// (`<data_dir>/store`), so an interrupted or refused restore leaves no half store behind.
pub fn restore<E: From<BackupError>>(
    path: &Path,
    data_dir: &Path,
    authenticate: impl FnOnce(&BackupSummary) -> Result<(), E>,
) -> Result<BackupSummary, E> {
    if !is_empty_dir(data_dir)? {
        return Err(BackupError::NotEmpty(data_dir.display().to_string()).into());
    }
    let checked = verify(path)?;
    authenticate(&checked)?;
    fs::create_dir_all(data_dir)
        .map_err(|e| BackupError::Io(format!("cannot create {}: {e}", data_dir.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| BackupError::Io(format!("cannot restrict {}: {e}", data_dir.display())))?;
    }
    let staging = data_dir.join(".store-restoring");
    // The file is read a second time to build the store: what was built must be what was
    // authenticated, even if someone rewrote the file in between.
    let result = restore_into(path, &staging).and_then(|built| {
        if built.sha256 == checked.sha256 && built.signature == checked.signature {
            Ok(built)
        } else {
            Err(BackupError::Damaged(
                "the file changed while it was being restored".into(),
            ))
        }
    });
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e.into());
        }
    };
    let target = data_dir.join("store");
    fs::rename(&staging, &target)
        .and_then(|()| fs::File::open(data_dir).and_then(|d| d.sync_all()))
        .map_err(|e| BackupError::Io(format!("cannot move the restored store into place: {e}")))?;
    Ok(summary)
}

fn restore_into(path: &Path, store_dir: &Path) -> Result<BackupSummary, BackupError> {
    let db = super::open_db(store_dir, None)?;
    let mut tree: Option<sled::Tree> = None;
    let mut next_id = 0u64;
    let summary = read_backup(path, |line| {
        match line {
            Line::Header { next_id: n, .. } => next_id = *n,
            Line::Tree { name } => {
                tree = Some(db.open_tree(name).map_err(StoreError::from)?);
            }
            Line::Entry { k, v } => {
                let t = tree
                    .as_ref()
                    .ok_or_else(|| BackupError::Damaged("an entry outside a tree".into()))?;
                t.insert(unb64("a key", k)?, unb64("a value", v)?)
                    .map_err(StoreError::from)?;
            }
            Line::File { path, data } => {
                let target = file_target(store_dir, path)?;
                let data = unb64("a file", data)?;
                if let Some(dir) = target.parent() {
                    fs::create_dir_all(dir).map_err(|e| BackupError::Io(e.to_string()))?;
                }
                fs::write(&target, data).map_err(|e| {
                    BackupError::Io(format!("cannot write {}: {e}", target.display()))
                })?;
            }
            Line::End { .. } => {}
        }
        Ok(())
    })?;
    // The fresh database's id generator starts again at 0: continue above the old one.
    db.open_tree("meta")
        .and_then(|m| m.insert(ID_FLOOR_KEY, &next_id.to_be_bytes()))
        .map_err(StoreError::from)?;
    raise_crl_numbers(&db)?;
    db.flush().map_err(StoreError::from)?;
    for f in fs::read_dir(store_dir.join(CRL_DIR))
        .into_iter()
        .flatten()
        .flatten()
    {
        fs::File::open(f.path())
            .and_then(|f| f.sync_all())
            .map_err(|e| BackupError::Io(format!("cannot sync a CRL file: {e}")))?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the token: the store only carries the signature.
    fn fake_sign(sha256: &str) -> Result<BackupSignature, BackupError> {
        Ok(BackupSignature {
            key_sha256: "ab".repeat(32),
            signature: format!("sig-of-{sha256}"),
        })
    }

    fn accept(_: &BackupSummary) -> Result<(), BackupError> {
        Ok(())
    }

    /// Rewrite a backup's lines with `edit` and give it a matching checksum again, as
    /// anyone who can write the file can.
    fn rewrite(file: &Path, edit: impl Fn(&mut serde_json::Value)) {
        let text = fs::read_to_string(file).unwrap();
        let mut out = String::new();
        for l in text.lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            edit(&mut v);
            if v["type"] == "end" {
                v["sha256"] = hex::encode(Sha256::digest(out.as_bytes())).into();
            }
            out.push_str(&v.to_string());
            out.push('\n');
        }
        fs::write(file, out).unwrap();
    }

    fn store_with_data(dir: &Path) -> Store {
        let s = Store::open(dir).unwrap();
        assert_eq!(s.reserve_crl_number("ca_1").unwrap(), 1);
        s.roles.insert(b"r1", b"role one".as_slice()).unwrap();
        s.meta.insert(b"x", b"y".as_slice()).unwrap();
        fs::create_dir_all(s.crl_dir.clone()).unwrap();
        fs::write(s.crl_dir.join("ca_1.crl"), b"crl bytes").unwrap();
        fs::write(s.crl_dir.join("ca_1.5.tmp"), b"staged").unwrap();
        s
    }

    #[test]
    fn a_backup_restores_every_entry_and_crl_and_ids_keep_growing() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_data(&tmp.path().join("a"));
        let before = s.next_id().unwrap();
        let file = tmp.path().join("b.backup");
        let sum = s
            .backup(fs::File::create(&file).unwrap(), fake_sign)
            .unwrap();
        assert_eq!(sum.files, 1, "the staged .tmp file is not a published CRL");
        let checked = verify(&file).unwrap();
        assert_eq!(checked.sha256, sum.sha256);
        assert_eq!(checked.version, VERSION);
        assert_eq!(
            checked.signature.unwrap().signature,
            format!("sig-of-{}", sum.sha256),
            "the signature is made over the content hash and carried as made"
        );

        let data = tmp.path().join("restored");
        restore(&file, &data, accept).unwrap();
        let r = Store::open(&data.join("store")).unwrap();
        assert!(
            r.reserve_crl_number("ca_1").unwrap() > 1_700_000_000_000,
            "CRL numbers continue above any published after the backup"
        );
        assert_eq!(r.roles.get(b"r1").unwrap().unwrap(), b"role one".as_slice());
        assert_eq!(r.meta.get(b"x").unwrap().unwrap(), b"y".as_slice());
        assert_eq!(r.read_crl("ca_1", false).unwrap().unwrap(), b"crl bytes");
        assert!(r.next_id().unwrap() > before);
    }

    #[test]
    fn a_damaged_backup_is_refused_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_data(&tmp.path().join("a"));
        let file = tmp.path().join("b.backup");
        s.backup(fs::File::create(&file).unwrap(), fake_sign)
            .unwrap();
        let mut bytes = fs::read(&file).unwrap();
        // Change one character of the roles entry's value.
        let at = bytes.windows(4).position(|w| w == b"cm9s").unwrap();
        bytes[at] = b'd';
        fs::write(&file, &bytes).unwrap();
        let data = tmp.path().join("restored");
        assert!(matches!(
            restore(&file, &data, accept),
            Err(BackupError::Damaged(_))
        ));
        assert!(!data.join("store").exists());

        let cut = tmp.path().join("cut.backup");
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(verify(&cut), Err(BackupError::Damaged(_))));
        fs::write(&cut, b"hello\n").unwrap();
        assert!(matches!(verify(&cut), Err(BackupError::Format(_))));
    }

    #[test]
    fn a_refused_backup_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_data(&tmp.path().join("a"));
        let file = tmp.path().join("b.backup");
        s.backup(fs::File::create(&file).unwrap(), fake_sign)
            .unwrap();
        let data = tmp.path().join("restored");
        let refused = restore(&file, &data, |_| {
            Err(BackupError::Damaged("not authentic".into()))
        });
        assert!(matches!(refused, Err(BackupError::Damaged(_))));
        assert!(!data.join("store").exists());
    }

    #[test]
    fn only_a_version_1_backup_may_be_unsigned() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_data(&tmp.path().join("a"));
        let file = tmp.path().join("b.backup");
        s.backup(fs::File::create(&file).unwrap(), fake_sign)
            .unwrap();
        let strip = |v: &mut serde_json::Value| {
            if let Some(o) = v.as_object_mut() {
                o.remove("key_sha256");
                o.remove("signature");
            }
        };
        // Version 2 without its signature: altered, not old.
        let stripped = tmp.path().join("stripped.backup");
        fs::copy(&file, &stripped).unwrap();
        rewrite(&stripped, strip);
        assert!(matches!(verify(&stripped), Err(BackupError::Damaged(_))));
        // Version 1 (as written before backups were signed): read as unsigned.
        let old = tmp.path().join("old.backup");
        fs::copy(&file, &old).unwrap();
        rewrite(&old, |v| {
            strip(v);
            if v["type"] == "header" {
                v["version"] = UNSIGNED_VERSION.into();
            }
        });
        let sum = verify(&old).unwrap();
        assert_eq!(sum.version, UNSIGNED_VERSION);
        assert!(sum.signature.is_none());
        // Version 1 with a signature is no file this program ever wrote.
        let odd = tmp.path().join("odd.backup");
        fs::copy(&file, &odd).unwrap();
        rewrite(&odd, |v| {
            if v["type"] == "header" {
                v["version"] = UNSIGNED_VERSION.into();
            }
        });
        assert!(matches!(verify(&odd), Err(BackupError::Damaged(_))));
        rewrite(&odd, |v| {
            if v["type"] == "header" {
                v["version"] = 3.into();
            }
        });
        assert!(matches!(verify(&odd), Err(BackupError::Version(3))));
    }

    #[test]
    fn restore_refuses_a_non_empty_directory_and_foreign_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_data(&tmp.path().join("a"));
        let file = tmp.path().join("b.backup");
        s.backup(fs::File::create(&file).unwrap(), fake_sign)
            .unwrap();
        let data = tmp.path().join("full");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("something"), b"x").unwrap();
        assert!(matches!(
            restore(&file, &data, accept),
            Err(BackupError::NotEmpty(_))
        ));
        let store = tmp.path().join("s");
        for bad in [
            "../x.crl",
            "/etc/x.crl",
            "crls/../../x.crl",
            "other/x.crl",
            "crls/a/b.crl",
        ] {
            assert!(file_target(&store, bad).is_err(), "{bad}");
        }
        assert!(file_target(&store, "crls/ca_1.delta.crl").is_ok());
    }

    #[test]
    fn a_locked_store_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let _held = Store::open(tmp.path()).unwrap();
        match Store::open(tmp.path()) {
            Err(StoreError::Locked(_)) => {}
            other => panic!("expected Locked, got {:?}", other.err()),
        }
    }
}
