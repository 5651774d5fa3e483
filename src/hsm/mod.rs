//! The token layer: the only module that speaks PKCS#11 (through `cryptoki`).
//!
//! It owns the process's one PKCS#11 context, a pool of logged-in sessions, key-pair
//! generation inside the token, and signing of digests. Callers see plain types:
//! [`KeyRef`] names a key, [`GeneratedKey`] carries its public half as a
//! SubjectPublicKeyInfo, and [`TokenSigner`] implements [`DigestSigner`].

mod data;
mod encoding;
mod inventory;
mod pool;
pub mod uri;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::keys::{DigestSigner, KeySpec, SignError, SignatureAlgorithm};
pub use encoding::EncodingError;
pub use inventory::{Mechanisms, TokenObject};
use pool::Pool;
pub use uri::{ObjectType, Pkcs11Uri};

/// Errors of the token layer. `Unavailable` is the one callers map to 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    Module { path: PathBuf, reason: String },
    #[error("no token labelled {0:?} is present")]
    TokenNotFound(String),
    #[error("the token refused the PIN")]
    PinIncorrect,
    #[error("the token is unavailable: {0}")]
    Unavailable(String),
    #[error("key {0} was not found in the token")]
    KeyNotFound(String),
    #[error("token operation failed: {0}")]
    Operation(String),
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// The session lost its login or was closed under us; retried once on a fresh session.
    #[error("token session lost: {0}")]
    SessionLost(String),
}

impl HsmError {
    /// Sort a PKCS#11 failure by what the caller can do about it.
    fn from_pkcs11(e: CkError) -> Self {
        match &e {
            CkError::Pkcs11(rv, func) => {
                let what = format!("{func}: {rv:?}");
                match rv {
                    RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::UserNotLoggedIn => HsmError::SessionLost(what),
                    RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::DeviceMemory
                    | RvError::TokenNotPresent
                    | RvError::TokenNotRecognized
                    | RvError::SlotIdInvalid
                    | RvError::CryptokiNotInitialized
                    | RvError::GeneralError
                    | RvError::SessionCount => HsmError::Unavailable(what),
                    RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired => {
                        HsmError::PinIncorrect
                    }
                    _ => HsmError::Operation(what),
                }
            }
            other => HsmError::Operation(other.to_string()),
        }
    }

    fn is_stale_handle(&self) -> bool {
        matches!(self, HsmError::Operation(m) if m.contains("ObjectHandleInvalid") || m.contains("KeyHandleInvalid"))
    }
}

/// `first`, or, when it failed on a stale object handle (one cached before the object was
/// made again), `again` after `forget` has dropped the cached handle.
fn once_more_if_stale<T>(
    first: Result<T, HsmError>,
    forget: impl FnOnce(),
    again: impl FnOnce() -> Result<T, HsmError>,
) -> Result<T, HsmError> {
    match first {
        Err(e) if e.is_stale_handle() => {
            forget();
            again()
        }
        other => other,
    }
}

impl From<CkError> for HsmError {
    fn from(e: CkError) -> Self {
        HsmError::from_pkcs11(e)
    }
}

/// The user PIN. Zeroized on drop and never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn new(pin: String) -> Self {
        Pin(Zeroizing::new(pin))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// How to reach the token.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: Pin,
    /// Upper bound on concurrently open sessions (one per signing worker).
    pub pool_size: usize,
}

/// Names one key pair in the token: both halves share the label and CKA_ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub label: String,
    pub id: Vec<u8>,
}

impl KeyRef {
    /// RFC 7512 URI of the private key, e.g. `pkcs11:token=ca;object=scaivault-ca-x;id=%01%02;type=private`.
    pub fn uri(&self, token_label: &str) -> String {
        Pkcs11Uri {
            token: Some(token_label.to_string()),
            object: Some(self.label.clone()),
            id: Some(self.id.clone()),
            object_type: Some(ObjectType::Private),
        }
        .to_string()
    }
}

/// A key pair just made in the token.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub key: KeyRef,
    pub spec: KeySpec,
    /// DER SubjectPublicKeyInfo read back from the token's public key object.
    pub spki_der: Vec<u8>,
}

/// The security-relevant attributes of a private key, as the token reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttributes {
    pub sensitive: bool,
    pub always_sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    pub sign: bool,
    pub decrypt: bool,
    pub unwrap: bool,
    pub derive: bool,
}

/// What health checks report about the token.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub sessions_open: usize,
    pub sessions_idle: usize,
}

/// The process's PKCS#11 contexts, one per module path: `C_Initialize` may run only once per
/// process and finalizing one handle breaks every other.
static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

fn context_for(module: &Path) -> Result<Pkcs11, HsmError> {
    let map = CONTEXTS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let module_err = |reason: String| HsmError::Module {
        path: module.to_path_buf(),
        reason,
    };
    let ctx = Pkcs11::new(module).map_err(|e| module_err(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(module_err(e.to_string())),
    }
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A logged-in connection to one token.
pub struct Token {
    ctx: Pkcs11,
    label: String,
    pin: Pin,
    slot: Mutex<Option<Slot>>,
    pool: Pool,
    /// Private-key handles by CKA_ID, so signing skips C_FindObjects. Handles of token
    /// objects stay valid across sessions; a stale one is dropped and looked up again.
    handles: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
    /// When the library was last re-initialized to look for a vanished token.
    last_recovery: Mutex<Option<Instant>>,
    /// Held for reading around every PKCS#11 call, for writing by `try_recover`.
    library: RwLock<()>,
    /// Held for reading around C_FindObjects, for writing around making or destroying a
    /// token object. SoftHSM2 2.6.1 (the release Debian and Ubuntu ship) races the two
    /// inside one process: the call that makes the object fails with CKR_GENERAL_ERROR,
    /// seen as a rare 503 on CA creation under parallel load (upstream issue 573, fixed
    /// after that release). Signing with a known handle does not race and takes no lock.
    catalogue: RwLock<()>,
    /// The sealing key's handle once found or made, so that sealing and unsealing skip
    /// C_FindObjects (and never wait behind a slow key generation; see `catalogue`). Held
    /// by `seal_key` through its lookup, so that two first sealings make one key.
    seal_handle: Mutex<Option<ObjectHandle>>,
}

/// Label of the AES-256 key that seals stored leaf private keys.
pub const SEAL_KEY_LABEL: &str = "scaivault-seal-v1";

/// Data sealed by the token: AES-256-GCM, a fresh 96-bit IV, the tag appended.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub key_label: String,
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// How long to wait before looking again for a key that was not found (see
/// `present_or_unavailable`).
const KEY_RECHECK_DELAY: Duration = Duration::from_millis(50);

/// How often a missing token may trigger a library re-initialization.
const RECOVERY_INTERVAL: Duration = Duration::from_millis(500);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("label", &self.label).finish()
    }
}

impl Token {
    /// Load the module, find the token by label and log in once, so that a wrong PIN or a
    /// missing token stops the daemon at start instead of failing the first request.
    pub fn open(cfg: TokenConfig) -> Result<Self, HsmError> {
        let ctx = context_for(&cfg.module)?;
        let token = Token {
            ctx,
            label: cfg.token_label,
            pin: cfg.pin,
            slot: Mutex::new(None),
            pool: Pool::new(cfg.pool_size),
            handles: Mutex::new(HashMap::new()),
            last_recovery: Mutex::new(None),
            library: RwLock::new(()),
            catalogue: RwLock::new(()),
            seal_handle: Mutex::new(None),
        };
        let lease = token.pool.acquire(|| token.open_session_once())?;
        lease.release();
        Ok(token)
    }

    /// Taken while looking objects up (see `catalogue`).
    fn finding(&self) -> RwLockReadGuard<'_, ()> {
        self.catalogue.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken while making or destroying token objects (see `catalogue`).
    fn changing(&self) -> RwLockWriteGuard<'_, ()> {
        self.catalogue.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn find_slot(&self) -> Result<Slot, HsmError> {
        let mut cached = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = *cached {
            return Ok(slot);
        }
        for slot in self.ctx.get_slots_with_token()? {
            let info = match self.ctx.get_token_info(slot) {
                Ok(info) => info,
                Err(_) => continue,
            };
            if info.label().trim_end() == self.label {
                *cached = Some(slot);
                return Ok(slot);
            }
        }
        Err(HsmError::TokenNotFound(self.label.clone()))
    }

    fn forget_slot(&self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A token that vanished (unplugged, its store unreadable) is not rediscovered by the
    /// library on its own: SoftHSM2, like many modules, scans for tokens in C_Initialize.
    /// So re-initialize — only while no other thread is inside the library (the write lock
    /// of `library`; if it is busy, a later call tries again) and not more often than
    /// `RECOVERY_INTERVAL`. Returns whether the library was re-initialized. The caller
    /// must not hold a `library` guard.
    fn try_recover(&self) -> bool {
        let mut last = self.last_recovery.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < RECOVERY_INTERVAL) {
            return false;
        }
        let Ok(_exclusive) = self.library.try_write() else {
            return false;
        };
        *last = Some(Instant::now());
        drop(last);
        self.pool.close_idle();
        // No session can be lent out while the write lock is held; this is a backstop.
        if self.pool.counts().0 > 0 {
            return false;
        }
        // Object handles are renumbered by a new C_Initialize.
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.forget_seal_key();
        self.forget_slot();
        let _ = self.ctx.clone().finalize();
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                tracing::info!(token = %self.label, "re-initialized the PKCS#11 library to look for the token");
                true
            }
            Err(e) => {
                tracing::warn!(token = %self.label, error = %e, "re-initializing the PKCS#11 library failed");
                false
            }
        }
    }

    fn open_session_once(&self) -> Result<Session, HsmError> {
        let slot = self.find_slot()?;
        let session = self
            .ctx
            .open_rw_session(slot)
            .inspect_err(|_| self.forget_slot())?;
        let pin = AuthPin::from(self.pin.0.as_str());
        match session.login(UserType::User, Some(&pin)) {
            // Login is per token per process: the second session is already logged in.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(HsmError::from_pkcs11(e)),
        }
    }

    /// Run `f` on a pooled session. A session that lost its login is replaced and `f`
    /// retried once; a token that went away makes every idle session go too, so the next
    /// call starts from slot discovery; a session that cannot be opened at all makes the
    /// library look for the token again (`try_recover`) before one more try, so the daemon
    /// recovers by itself when the token returns.
    ///
    /// Every PKCS#11 call runs under a read lock of `library`, which `try_recover` takes
    /// for writing: C_Finalize while another thread is inside the library is undefined
    /// behaviour (SoftHSM2 crashes).
    fn with_session<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let mut session_lost = false;
        let mut recovered = false;
        loop {
            let guard = self.library.read().unwrap_or_else(|p| p.into_inner());
            let lease = match self.pool.acquire(|| self.open_session_once()) {
                Ok(l) => l,
                Err(HsmError::PinIncorrect) => return Err(HsmError::PinIncorrect),
                Err(e) => {
                    drop(guard);
                    if !recovered && self.try_recover() {
                        recovered = true;
                        continue;
                    }
                    return Err(match e {
                        HsmError::TokenNotFound(_) | HsmError::SessionLost(_) => {
                            HsmError::Unavailable(e.to_string())
                        }
                        other => other,
                    });
                }
            };
            match f(lease.session()) {
                Ok(v) => {
                    lease.release();
                    return Ok(v);
                }
                Err(HsmError::SessionLost(what)) => {
                    drop(lease);
                    if session_lost {
                        return Err(HsmError::Unavailable(what));
                    }
                    session_lost = true;
                }
                Err(e @ HsmError::Unavailable(_)) => {
                    drop(lease);
                    self.pool.close_idle();
                    self.forget_slot();
                    return Err(e);
                }
                Err(e) => {
                    lease.release();
                    return Err(e);
                }
            }
        }
    }

    /// Generate a key pair inside the token. The private half is a token object that is
    /// private, sensitive, never extractable and may only sign.
    pub fn generate_key_pair(&self, spec: KeySpec, label: &str) -> Result<GeneratedKey, HsmError> {
        let mut id = vec![0u8; 16];
        getrandom::fill(&mut id).map_err(|e| HsmError::Operation(e.to_string()))?;
        let label_bytes = label.as_bytes().to_vec();

        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Label(label_bytes.clone()),
            Attribute::Id(id.clone()),
        ];
        // SoftHSM2 defaults Decrypt and Unwrap to true unless told otherwise: say every "no".
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::SignRecover(false),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label_bytes),
            Attribute::Id(id.clone()),
        ];
        let mechanism = match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                public.push(Attribute::EcParams(encoding::ec_params(spec)?));
                Mechanism::EccKeyPairGen
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                public.push(Attribute::ModulusBits(u64::from(spec.size()).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };

        let (spki_der, private_handle) = self.with_session(|s| {
            let (pub_h, priv_h) = {
                let _changing = self.changing();
                s.generate_key_pair(&mechanism, &public, &private)?
            };
            Ok((read_spki(s, pub_h, spec)?, priv_h))
        })?;
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), private_handle);
        Ok(GeneratedKey {
            key: KeyRef {
                label: label.to_string(),
                id,
            },
            spec,
            spki_der,
        })
    }

    fn private_handle(&self, s: &Session, key: &KeyRef) -> Result<ObjectHandle, HsmError> {
        if let Some(h) = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key.id)
        {
            return Ok(*h);
        }
        let found = {
            let _finding = self.finding();
            s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(key.id.clone()),
            ])?
        };
        // Two objects with one id would make "which key signed" ambiguous: refuse.
        let h = match found.as_slice() {
            [h] => *h,
            [] => return Err(HsmError::KeyNotFound(key.label.clone())),
            _ => {
                return Err(HsmError::Operation(format!(
                    "more than one private key has the id of {}",
                    key.label
                )))
            }
        };
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.id.clone(), h);
        Ok(h)
    }

    fn forget_handle(&self, key: &KeyRef) {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key.id);
    }

    /// Sign a precomputed digest with a private key in the token and return the X.509
    /// signature value (DER `Ecdsa-Sig-Value` for ECDSA, the raw block for RSA).
    pub fn sign_digest(
        &self,
        key: &KeyRef,
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        encoding::check_digest(alg, digest)?;
        let (mechanism, data) = match alg {
            SignatureAlgorithm::EcdsaSha256 | SignatureAlgorithm::EcdsaSha384 => {
                (Mechanism::Ecdsa, digest.to_vec())
            }
            SignatureAlgorithm::RsaPkcs1Sha256 => (
                Mechanism::RsaPkcs,
                encoding::rsa_sha256_digest_info(digest)?,
            ),
        };
        let raw = self.with_session(|s| {
            let handle = || {
                self.present_or_unavailable(s, self.private_handle(s, key), || {
                    self.private_handle(s, key)
                })
            };
            let sign = |h| -> Result<Vec<u8>, HsmError> { Ok(s.sign(&mechanism, h, &data)?) };
            once_more_if_stale(
                sign(handle()?),
                || self.forget_handle(key),
                || sign(handle()?),
            )
        })?;
        match alg {
            SignatureAlgorithm::RsaPkcs1Sha256 => Ok(raw),
            _ => Ok(encoding::ecdsa_raw_to_der(alg, &raw)?),
        }
    }

    /// A key that is not found may have gone with its token (its files unreadable, the
    /// device pulled): the session still answers but finds nothing. That is an outage
    /// (503, retry later), not a missing key (500). SoftHSM2 for one keeps answering
    /// C_GetTokenInfo from memory then, so ask what a client of the token would see: a
    /// token that shows no private key at all has lost its storage (or is not the token
    /// the CAs were made in); one that shows others has really lost this key.
    fn present_or_unavailable<T>(
        &self,
        s: &Session,
        r: Result<T, HsmError>,
        retry: impl Fn() -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        match r {
            Err(HsmError::KeyNotFound(label)) => {
                // What vanishes does not vanish at once: look again after a moment.
                std::thread::sleep(KEY_RECHECK_DELAY);
                match retry() {
                    Err(HsmError::KeyNotFound(_)) => {}
                    other => return other,
                }
                let probe = s
                    .get_session_info()
                    .map_err(HsmError::from)
                    .and_then(|_| self.find_slot())
                    .and_then(|slot| Ok(self.ctx.get_token_info(slot)?))
                    .and_then(|_| {
                        let _finding = self.finding();
                        Ok(s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?)
                    });
                match probe {
                    Ok(keys) if !keys.is_empty() => Err(HsmError::KeyNotFound(label)),
                    Ok(_) => Err(HsmError::Unavailable(format!(
                        "key {label} not found: the token shows no private key at all"
                    ))),
                    Err(e @ (HsmError::Unavailable(_) | HsmError::SessionLost(_))) => Err(e),
                    Err(e) => Err(HsmError::Unavailable(format!(
                        "key {label} not found and the token does not answer: {e}"
                    ))),
                }
            }
            other => other,
        }
    }

    /// A [`DigestSigner`] for one key, for the signing core.
    pub fn signer<'a>(&'a self, key: &'a KeyRef) -> TokenSigner<'a> {
        TokenSigner { token: self, key }
    }

    /// Remove both halves of a key pair, e.g. when the CA it was made for could not be stored.
    pub fn destroy_key_pair(&self, key: &KeyRef) -> Result<(), HsmError> {
        self.forget_handle(key);
        self.with_session(|s| {
            let _changing = self.changing();
            for h in s.find_objects(&[Attribute::Id(key.id.clone())])? {
                s.destroy_object(h)?;
            }
            Ok(())
        })
    }

    /// Read back what the token says about a private key's protection.
    pub fn key_attributes(&self, key: &KeyRef) -> Result<KeyAttributes, HsmError> {
        self.with_session(|s| {
            let h = self.private_handle(s, key)?;
            let attrs = s.get_attributes(
                h,
                &[
                    AttributeType::Sensitive,
                    AttributeType::AlwaysSensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Sign,
                    AttributeType::Decrypt,
                    AttributeType::Unwrap,
                    AttributeType::Derive,
                ],
            )?;
            let mut out = KeyAttributes {
                sensitive: false,
                always_sensitive: false,
                extractable: true,
                never_extractable: false,
                sign: false,
                decrypt: true,
                unwrap: true,
                derive: true,
            };
            for a in attrs {
                match a {
                    Attribute::Sensitive(v) => out.sensitive = v,
                    Attribute::AlwaysSensitive(v) => out.always_sensitive = v,
                    Attribute::Extractable(v) => out.extractable = v,
                    Attribute::NeverExtractable(v) => out.never_extractable = v,
                    Attribute::Sign(v) => out.sign = v,
                    Attribute::Decrypt(v) => out.decrypt = v,
                    Attribute::Unwrap(v) => out.unwrap = v,
                    Attribute::Derive(v) => out.derive = v,
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    /// At shutdown: close every idle session (closing the last one logs the token out).
    /// Returns how many sessions are still open, lent to work that has not finished.
    pub fn close_sessions(&self) -> usize {
        self.pool.close_idle();
        self.pool.counts().0
    }

    /// Probe the token with a real round trip: a pooled, logged-in session and its token info.
    pub fn status(&self) -> Result<TokenStatus, HsmError> {
        let info = self.with_session(|s| {
            s.get_session_info()?;
            let slot = self.find_slot()?;
            Ok(self.ctx.get_token_info(slot)?)
        })?;
        let (open, idle) = self.pool.counts();
        Ok(TokenStatus {
            label: info.label().trim_end().to_string(),
            manufacturer: info.manufacturer_id().trim_end().to_string(),
            model: info.model().trim_end().to_string(),
            serial: info.serial_number().trim_end().to_string(),
            sessions_open: open,
            sessions_idle: idle,
        })
    }
}

impl Token {
    /// The sealing key's handle, creating the key on first use: AES-256, a private token
    /// object that is sensitive, never extractable, and can only encrypt and decrypt.
    fn seal_key(&self, s: &Session) -> Result<ObjectHandle, HsmError> {
        let mut cached = self.seal_handle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = *cached {
            return Ok(h);
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(SEAL_KEY_LABEL.as_bytes().to_vec()),
        ];
        let found = {
            let _finding = self.finding();
            s.find_objects(&template)?
        };
        match found.as_slice() {
            [h] => {
                *cached = Some(*h);
                return Ok(*h);
            }
            [] => {}
            _ => {
                return Err(HsmError::Operation(format!(
                    "more than one {SEAL_KEY_LABEL} key in the token"
                )))
            }
        }
        let mut id = vec![0u8; 16];
        getrandom::fill(&mut id).map_err(|e| HsmError::Operation(e.to_string()))?;
        let _changing = self.changing();
        let h = s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Derive(false),
                Attribute::ValueLen(32u64.into()),
                Attribute::Label(SEAL_KEY_LABEL.as_bytes().to_vec()),
                Attribute::Id(id),
            ],
        )?;
        tracing::info!(
            label = SEAL_KEY_LABEL,
            "created the sealing key in the token"
        );
        *cached = Some(h);
        Ok(h)
    }

    fn cached_seal_key(&self) -> Option<ObjectHandle> {
        *self.seal_handle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_seal_key(&self, h: ObjectHandle) {
        *self.seal_handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
    }

    fn forget_seal_key(&self) {
        *self.seal_handle.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Encrypt `plaintext` in the token, binding it to `aad` (e.g. the certificate id).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, HsmError> {
        let mut iv = vec![0u8; 12];
        getrandom::fill(&mut iv).map_err(|e| HsmError::Operation(e.to_string()))?;
        let ciphertext = self.with_session(|s| {
            let encrypt = |key| -> Result<Vec<u8>, HsmError> {
                let mut iv = iv.clone();
                let params =
                    cryptoki::mechanism::aead::GcmParams::new(&mut iv, aad, 128u64.into())?;
                Ok(s.encrypt(&Mechanism::AesGcm(params), key, plaintext)?)
            };
            once_more_if_stale(
                encrypt(self.seal_key(s)?),
                || self.forget_seal_key(),
                || encrypt(self.seal_key(s)?),
            )
        })?;
        Ok(Sealed {
            key_label: SEAL_KEY_LABEL.to_string(),
            iv,
            ciphertext,
        })
    }

    /// Decrypt what `seal` produced; a wrong `aad` or any tampering fails.
    pub fn unseal(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let ours = sealed.key_label == SEAL_KEY_LABEL;
        let find = |s: &Session| {
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(sealed.key_label.as_bytes().to_vec()),
            ];
            let _finding = self.finding();
            match s.find_objects(&template)?.as_slice() {
                [h] => Ok(*h),
                _ => Err(HsmError::KeyNotFound(sealed.key_label.clone())),
            }
        };
        // Unlike `seal_key`, never makes the key: data sealed under a key that is gone
        // cannot be opened by a new one.
        let lookup = |s: &Session| -> Result<ObjectHandle, HsmError> {
            if let Some(h) = self.cached_seal_key().filter(|_| ours) {
                return Ok(h);
            }
            let h = self.present_or_unavailable(s, find(s), || find(s))?;
            if ours {
                self.remember_seal_key(h);
            }
            Ok(h)
        };
        self.with_session(|s| {
            let decrypt = |key| -> Result<Zeroizing<Vec<u8>>, HsmError> {
                let mut iv = sealed.iv.clone();
                let params =
                    cryptoki::mechanism::aead::GcmParams::new(&mut iv, aad, 128u64.into())?;
                Ok(Zeroizing::new(s.decrypt(
                    &Mechanism::AesGcm(params),
                    key,
                    &sealed.ciphertext,
                )?))
            };
            once_more_if_stale(
                decrypt(lookup(s)?),
                || self.forget_seal_key(),
                || decrypt(lookup(s)?),
            )
        })
    }
}

/// Read a public key object back as a DER SubjectPublicKeyInfo.
fn read_spki(s: &Session, h: ObjectHandle, spec: KeySpec) -> Result<Vec<u8>, HsmError> {
    match spec {
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let attrs = s.get_attributes(h, &[AttributeType::EcPoint])?;
            let point = attrs
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcPoint(p) => Some(p),
                    _ => None,
                })
                .ok_or_else(|| HsmError::Operation("token returned no CKA_EC_POINT".into()))?;
            let point = encoding::unwrap_ec_point(spec, &point)?;
            Ok(encoding::ec_spki(spec, &point)?)
        }
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let attrs =
                s.get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])?;
            let (mut n, mut e) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            match (n, e) {
                (Some(n), Some(e)) => Ok(encoding::rsa_spki(&n, &e)?),
                _ => Err(HsmError::Operation(
                    "token returned no RSA modulus or exponent".into(),
                )),
            }
        }
    }
}

/// One token key seen as a [`DigestSigner`].
pub struct TokenSigner<'a> {
    token: &'a Token,
    key: &'a KeyRef,
}

impl DigestSigner for TokenSigner<'_> {
    fn sign_digest(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, SignError> {
        self.token
            .sign_digest(self.key, alg, digest)
            .map_err(|e| match e {
                HsmError::Unavailable(m) => SignError::Unavailable(m),
                other => SignError::Failed(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_uri_follows_rfc7512() {
        let k = KeyRef {
            label: "scaivault-ca-ca_1".into(),
            id: vec![0x01, 0xab],
        };
        assert_eq!(
            k.uri("my token"),
            "pkcs11:token=my%20token;object=scaivault-ca-ca_1;id=%01%AB;type=private"
        );
    }

    #[test]
    fn pin_is_never_printed() {
        let p = Pin::new("123456".into());
        assert!(!format!("{p:?}").contains("123456"));
    }
}
