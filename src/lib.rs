//! scaivault-pki: a certificate authority daemon whose CA private keys live only in a
//! PKCS#11 token. See ARCHITECTURE.md for the layers.

pub mod api;
pub mod ca;
pub mod config;
pub mod daemon;
pub mod hsm;
pub mod keys;
pub mod limits;
pub mod policy;
pub mod service;
pub mod store;
pub mod types;
pub mod validate;
