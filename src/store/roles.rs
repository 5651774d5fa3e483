//! Roles, keyed by tenant and name.

use super::{decode, encode, name_key, Store, StoreError};
use crate::policy::Role;

impl Store {
    /// Store a new role; its name must be free in its tenant.
    pub fn insert_role(&self, role: &Role) -> Result<(), StoreError> {
        let _w = self.writing();
        let key = name_key(&role.tenant, &role.name);
        match self
            .roles
            .compare_and_swap(key, None as Option<&[u8]>, Some(encode(role)?))?
        {
            Ok(()) => self.flush(),
            Err(_) => Err(StoreError::NameTaken(role.name.clone())),
        }
    }

    /// Replace an existing role (compare-and-swap, retried when another write got there
    /// first). Returns false when there is none.
    pub fn replace_role(&self, role: &Role) -> Result<bool, StoreError> {
        let _w = self.writing();
        let key = name_key(&role.tenant, &role.name);
        let new = encode(role)?;
        loop {
            let Some(old) = self.roles.get(&key)? else {
                return Ok(false);
            };
            if self
                .roles
                .compare_and_swap(&key, Some(old), Some(new.clone()))?
                .is_ok()
            {
                self.flush()?;
                return Ok(true);
            }
        }
    }

    pub fn get_role(&self, tenant: &str, name: &str) -> Result<Option<Role>, StoreError> {
        self.roles
            .get(name_key(tenant, name))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn list_roles(&self, tenant: &str) -> Result<Vec<Role>, StoreError> {
        self.roles
            .scan_prefix(name_key(tenant, ""))
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
            .collect()
    }

    pub fn delete_role(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let _w = self.writing();
        let existed = self.roles.remove(name_key(tenant, name))?.is_some();
        if existed {
            self.flush()?;
        }
        Ok(existed)
    }
}
