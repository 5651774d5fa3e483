//! API tokens (keyed by the SHA-256 of their secret) and tenants (keyed by name).

use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{decode, encode, ApiTokenRecord, Store, StoreError, TenantRecord};

impl Store {
    /// Store a new API token under the hash of its secret, then flush.
    pub fn insert_api_token(&self, hash: &[u8], rec: &ApiTokenRecord) -> Result<(), StoreError> {
        let _w = self.writing();
        let value = encode(rec)?;
        match self
            .api_tokens
            .compare_and_swap(hash, None as Option<&[u8]>, Some(value))?
        {
            Ok(()) => self.flush(),
            // 32 random bytes colliding means the RNG is broken; refuse rather than overwrite.
            Err(_) => Err(StoreError::NameTaken("token secret".into())),
        }
    }

    /// Every token of every tenant, with the hash it is stored under. Tokens are few
    /// (people and services, not certificates), so a scan is cheap.
    fn all_api_tokens(&self) -> Result<Vec<(Vec<u8>, ApiTokenRecord)>, StoreError> {
        self.api_tokens
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), decode(&v)?))
            })
            .collect()
    }

    /// A tenant's tokens, oldest first.
    pub fn list_api_tokens(&self, tenant: &str) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let mut out: Vec<ApiTokenRecord> = self
            .all_api_tokens()?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.tenant == tenant)
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub fn api_token_by_id(&self, id: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        Ok(self
            .all_api_tokens()?
            .into_iter()
            .map(|(_, r)| r)
            .find(|r| r.id == id))
    }

    /// Mark a token revoked (kept, so the audit log's token ids stay explainable), then
    /// flush. Returns the record as it now is, or None when there is no such token.
    pub fn revoke_api_token(
        &self,
        id: &str,
        at: time::OffsetDateTime,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let _w = self.writing();
        loop {
            let Some((hash, mut rec)) =
                self.all_api_tokens()?.into_iter().find(|(_, r)| r.id == id)
            else {
                return Ok(None);
            };
            let old = encode(&rec)?;
            if rec.revoked_at.is_none() {
                rec.revoked_at = Some(at);
            }
            let new = encode(&rec)?;
            if self
                .api_tokens
                .compare_and_swap(&hash, Some(old), Some(new))?
                .is_ok()
            {
                self.flush()?;
                return Ok(Some(rec));
            }
        }
    }

    /// Store a new tenant; its name must be free. Then flush.
    pub fn insert_tenant(&self, rec: &TenantRecord) -> Result<(), StoreError> {
        let _w = self.writing();
        let value = encode(rec)?;
        let result = self.tenants.transaction(|t| {
            if t.get(rec.name.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::NameTaken(
                    rec.name.clone(),
                )));
            }
            t.insert(rec.name.as_bytes(), value.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => self.flush(),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    pub fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.tenants
            .get(name.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every tenant, by name.
    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.tenants.iter().values().map(|v| decode(&v?)).collect()
    }
}
