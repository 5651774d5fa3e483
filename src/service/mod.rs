//! Use cases: what a client can ask of the CA, independent of how it asked.
//!
//! Each public method is synchronous and may block (token calls, disk flushes); the HTTP
//! layer runs them on blocking threads. Errors are [`ServiceError`], which `api/` alone turns
//! into HTTP responses.

pub mod access;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cas;
pub mod ceremony;
pub mod certs;
pub mod crl;
pub mod csr;
pub mod input;
pub mod issue;
pub mod observe;
pub mod revoke;
pub mod roles;
pub mod schema;
pub mod trust;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use crate::ca::CaError;
use crate::hsm::{HsmError, Token, TokenStatus};
use crate::keys::{InvalidKeySize, SignError};
use crate::store::{Store, StoreError};

pub use auth::Principal;

/// Errors a use case reports to its caller. Each variant is one kind of answer a client
/// gets; the message is safe to show (no secrets, no internals).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    InvalidKeySize(#[from] InvalidKeySize),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("this token lacks the capability {0:?}")]
    MissingCapability(String),
    #[error("a tenant named {0:?} already exists")]
    TenantExists(String),
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("a CA named {0:?} already exists")]
    CaNameTaken(String),
    #[error("a role named {0:?} already exists")]
    RoleNameTaken(String),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    InvalidCsr(crate::ca::csr::CsrError),
    #[error("certificate {0} has no stored private key")]
    PrivateKeyNotStored(String),
    #[error("this certificate cannot be renewed: {0}")]
    NotRenewable(String),
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    #[error("{0}")]
    InvalidChain(String),
    #[error("{0}")]
    InvalidCertificate(String),
    #[error("{0}")]
    InvalidCrl(String),
    #[error("this certificate is already tracked")]
    CertificateExists,
    #[error("more than one certificate has serial {0}")]
    AmbiguousSerial(String),
    #[error("a root CA's certificate cannot be revoked: no CA above it publishes a CRL for it")]
    CannotRevokeRoot,
    #[error("a CA certificate cannot be put on certificate_hold: a CA's revocation cannot be released; use a permanent reason")]
    HoldNotAllowedForCa,
    #[error("CA {0} has been revoked and signs nothing")]
    CaRevoked(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("a trust anchor with this {0} already exists in the tenant")]
    TrustAnchorExists(String),
    #[error("four-eyes rule: a CSR may not be approved by the party that asked for it (its token, or a token of the same party: minted by it or by the same non-admin token)")]
    FourEyes,
    #[error("no CRL has been published yet for CA {0}")]
    CrlNotAvailable(String),
    #[error("CA {0} is inactive and signs nothing until it is reactivated")]
    CaInactive(String),
    #[error("CA {0} has expired")]
    CaExpired(String),
    #[error("the token is unavailable: {0}")]
    HsmUnavailable(String),
    /// A configured limit (`[limits]`) refused the request.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
    /// Anything unexpected. The text goes to the log; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::ca::csr::CsrError> for ServiceError {
    /// A CSR whose key no role could allow is a policy refusal like a key the role does
    /// not allow (422 `key_type_not_allowed`); anything else is a bad CSR.
    fn from(e: crate::ca::csr::CsrError) -> Self {
        use crate::ca::csr::CsrError;
        match e {
            CsrError::UnsupportedKey(_) => {
                ServiceError::Policy(crate::policy::PolicyError::KeyNotAllowed(e.to_string()))
            }
            e => ServiceError::InvalidCsr(e),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken(n) => ServiceError::CaNameTaken(n),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<HsmError> for ServiceError {
    fn from(e: HsmError) -> Self {
        match e {
            HsmError::Unavailable(m) => ServiceError::HsmUnavailable(m),
            HsmError::TokenNotFound(l) => {
                ServiceError::HsmUnavailable(format!("token {l:?} is not present"))
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<der::Error> for ServiceError {
    fn from(e: der::Error) -> Self {
        ServiceError::Internal(format!("DER encoding: {e}"))
    }
}

impl From<CaError> for ServiceError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::Sign(SignError::Unavailable(m)) => ServiceError::HsmUnavailable(m),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// Settings the use cases need from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Base URL relying parties reach us at; puts CRL DP and AIA into leaves.
    pub public_base_url: Option<String>,
    pub crl: crl::CrlSettings,
    /// The token that imported a CSR may not approve it.
    pub four_eyes: bool,
    /// Bounds on what a request's input can make us do.
    pub limits: crate::limits::Limits,
    pub audit: audit::AuditSettings,
}

/// The CA service: the token, the store and the settings, shared by every request.
pub struct Pki {
    pub(crate) store: Store,
    pub(crate) token: Arc<Token>,
    pub(crate) settings: Settings,
    pub(crate) crl: crl::CrlState,
    /// CA chains as PEM, by CA id (see `chain_pems`).
    pub(crate) chains: std::sync::Mutex<std::collections::HashMap<String, Arc<Vec<String>>>>,
    pub(crate) audit: audit::AuditLog,
}

impl Pki {
    pub fn new(store: Store, token: Arc<Token>, settings: Settings) -> Self {
        Pki {
            store,
            token,
            settings,
            crl: crl::CrlState::default(),
            chains: Default::default(),
            audit: Default::default(),
        }
    }

    /// A real round trip to the token, for health checks.
    pub fn token_status(&self) -> Result<TokenStatus, ServiceError> {
        Ok(self.token.status()?)
    }

    /// Close the token's idle sessions at shutdown; returns how many remain in use.
    pub fn close_token_sessions(&self) -> usize {
        self.token.close_sessions()
    }

    /// The configured `[limits]`.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.settings.limits
    }

    /// Make everything written so far durable, e.g. at shutdown.
    pub fn flush(&self) -> Result<(), ServiceError> {
        Ok(self.store.flush()?)
    }
}

/// A client's CSR must fit `limits.max_csr_bytes` before it is parsed.
pub(crate) fn check_csr_size(
    pem: &str,
    limits: &crate::limits::Limits,
) -> Result<(), ServiceError> {
    let max = limits.max_csr_bytes;
    if pem.len() > max {
        return Err(crate::limits::LimitExceeded::CsrTooLarge { max }.into());
    }
    Ok(())
}
