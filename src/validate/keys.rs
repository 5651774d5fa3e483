//! Public keys the CA/Browser Forum Baseline Requirements allow (§6.1.5, §7.1.3.1):
//! RSA with a modulus of at least 2048 bits and a multiple of 8, or ECDSA on a named
//! P-256, P-384 or P-521 curve. Applied under the Web PKI rules (`server_auth`) only;
//! signature verification has its own floor (RSA ≥ 2048) whatever the purpose.

use der::asn1::ObjectIdentifier;
use spki::SubjectPublicKeyInfoOwned;

use super::cert::tlv;

const RSA: &str = "1.2.840.113549.1.1.1";
const EC: &str = "1.2.840.10045.2.1";
const CURVES: [&str; 3] = ["1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35"];

/// Bits of a DER INTEGER's magnitude.
fn integer_bits(contents: &[u8]) -> usize {
    let trimmed: &[u8] = match contents.iter().position(|b| *b != 0) {
        Some(i) => &contents[i..],
        None => return 0,
    };
    match trimmed.first() {
        Some(first) => (trimmed.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// Why this key is not allowed under the Baseline Requirements, if it isn't.
pub fn web_pki_key_problem(spki: &SubjectPublicKeyInfoOwned) -> Option<String> {
    let alg = spki.algorithm.oid.to_string();
    match alg.as_str() {
        RSA => {
            let modulus = spki
                .subject_public_key
                .as_bytes()
                .and_then(|k| tlv(k))
                .and_then(|(_, seq, _)| tlv(seq))
                .map(|(_, n, _)| integer_bits(n));
            match modulus {
                Some(bits) if bits >= 2048 && bits.is_multiple_of(8) => None,
                Some(bits) => Some(format!(
                    "its RSA key has {bits} bits; at least 2048 and a multiple of 8 are required (CA/B BR 6.1.5)"
                )),
                None => Some("its RSA key can't be read".into()),
            }
        }
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .map(|o| o.to_string());
            match curve {
                Some(c) if CURVES.contains(&c.as_str()) => None,
                _ => Some(
                    "its EC key is not on a named P-256, P-384 or P-521 curve (CA/B BR 6.1.5)"
                        .into(),
                ),
            }
        }
        other => Some(format!(
            "its key type ({other}) is not RSA or ECDSA (CA/B BR 6.1.5)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bits_ignore_the_sign_octet() {
        assert_eq!(integer_bits(&[0x00, 0x80]), 8);
        assert_eq!(integer_bits(&[0x01, 0x00]), 9);
        assert_eq!(integer_bits(&[0x00]), 0);
    }
}
