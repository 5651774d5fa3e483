# Judge CA certificates with Python `cryptography` (run by tests/ca_api.rs).
#
# argv[1]: JSON list, root first; each later entry is issued by the one before it:
#   [{"pem": PATH, "ca": <the CA object the API returned>}, ...]
# Exit 0 and print "OK" when every check holds, else print the problems and exit 1.
import datetime
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def ext(cert, cls, label):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        problems.append(f"{label}: no {cls.__name__} extension")
        return None


def profile(cert, ca, label):
    check(cert.version == x509.Version.v3, f"{label}: version {cert.version}, want v3")
    # cert.extensions raises on duplicate extensions: that is a finding too.
    try:
        exts = cert.extensions
    except Exception as e:  # noqa: BLE001
        problems.append(f"{label}: extensions do not parse: {e!r}")
        return
    oids = [e.oid.dotted_string for e in exts]
    check(len(oids) == len(set(oids)), f"{label}: duplicate extensions {oids}")

    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    check(len(cn) == 1, f"{label}: want exactly one subject CN, got {cn}")
    if cn:
        check(cn[0].value == ca["common_name"], f"{label}: CN {cn[0].value!r} != common_name {ca['common_name']!r}")

    bc = ext(cert, x509.BasicConstraints, label)
    if bc:
        check(bc.critical, f"{label}: basicConstraints not critical")
        check(bc.value.ca is True, f"{label}: basicConstraints CA is not TRUE")

    ku = ext(cert, x509.KeyUsage, label)
    if ku:
        k = ku.value
        check(ku.critical, f"{label}: keyUsage not critical")
        check(k.key_cert_sign, f"{label}: keyUsage lacks keyCertSign")
        check(k.crl_sign, f"{label}: keyUsage lacks cRLSign")
        check(not k.key_encipherment, f"{label}: keyUsage has keyEncipherment")
        check(not k.data_encipherment, f"{label}: keyUsage has dataEncipherment")
        check(not k.key_agreement, f"{label}: keyUsage has keyAgreement")

    ski = ext(cert, x509.SubjectKeyIdentifier, label)
    if ski:
        check(not ski.critical, f"{label}: subjectKeyIdentifier is critical")
        check(len(ski.value.digest) > 0, f"{label}: empty subjectKeyIdentifier")

    n = cert.serial_number
    check(n > 0, f"{label}: serial {n} is not positive")
    octets = (n.bit_length() + 8) // 8  # DER INTEGER content length of a positive number
    check(octets <= 20, f"{label}: serial is {octets} octets (> 20)")
    check(n.bit_length() >= 64, f"{label}: serial has only {n.bit_length()} bits (< 64 bits of entropy)")
    api_serial = int(ca["serial_number"].replace(":", ""), 16)
    check(api_serial == n, f"{label}: API serial_number {ca['serial_number']} != certificate serial {n:X}")

    der = cert.public_bytes(serialization.Encoding.DER)
    fp = hashlib.sha256(der).hexdigest()
    api_fp = ca["fingerprint_sha256"].replace(":", "").lower()
    check(api_fp == fp, f"{label}: API fingerprint_sha256 {ca['fingerprint_sha256']} != {fp}")

    pk = cert.public_key()
    if ca["key_type"] == "rsa":
        check(isinstance(pk, rsa.RSAPublicKey), f"{label}: key_type rsa but public key is {type(pk).__name__}")
        if isinstance(pk, rsa.RSAPublicKey):
            check(pk.key_size == ca["key_size"], f"{label}: RSA key is {pk.key_size} bits, API says {ca['key_size']}")
            check(pk.public_numbers().e == 65537, f"{label}: RSA exponent {pk.public_numbers().e}")
    elif ca["key_type"] == "ec":
        check(isinstance(pk, ec.EllipticCurvePublicKey), f"{label}: key_type ec but public key is {type(pk).__name__}")
        if isinstance(pk, ec.EllipticCurvePublicKey):
            want = {256: "secp256r1", 384: "secp384r1"}.get(ca["key_size"])
            check(pk.curve.name == want, f"{label}: curve {pk.curve.name}, API key_size {ca['key_size']}")
    else:
        problems.append(f"{label}: unknown key_type {ca['key_type']!r}")

    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    check(nb == ts(ca["valid_from"]), f"{label}: notBefore {nb.isoformat()} != valid_from {ca['valid_from']}")
    check(na == ts(ca["valid_until"]), f"{label}: notAfter {na.isoformat()} != valid_until {ca['valid_until']}")

    h = cert.signature_hash_algorithm
    check(h is not None and h.name in ("sha256", "sha384", "sha512"), f"{label}: signature hash {h and h.name}")


def ski_of(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except Exception:  # noqa: BLE001
        return None


entries = json.loads(sys.argv[1])
certs = []
for i, e in enumerate(entries):
    with open(e["pem"], "rb") as f:
        data = f.read()
    check(data.count(b"-----BEGIN CERTIFICATE-----") == 1, f"#{i}: want exactly one certificate in the PEM")
    certs.append(x509.load_pem_x509_certificate(data))

for i, (e, cert) in enumerate(zip(entries, certs)):
    ca = e["ca"]
    label = f"#{i} {ca['ca_type']} {ca['name']}"
    profile(cert, ca, label)
    ski = ski_of(cert)
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        aki = None
    except Exception:  # noqa: BLE001
        aki = None
    if i == 0:
        check(ca["ca_type"] == "root", f"{label}: first entry must be a root")
        check(cert.issuer == cert.subject, f"{label}: root issuer {cert.issuer} != subject {cert.subject}")
        if aki is not None:
            check(aki.value.key_identifier == ski, f"{label}: root AKI keyIdentifier != its own SKI")
        try:
            cert.verify_directly_issued_by(cert)
        except Exception as ex:  # noqa: BLE001
            problems.append(f"{label}: self-signature does not verify: {ex!r}")
    else:
        issuer = certs[i - 1]
        issuer_ski = ski_of(issuer) or b""
        check(cert.issuer == issuer.subject, f"{label}: issuer {cert.issuer} != parent subject {issuer.subject}")
        check(aki is not None, f"{label}: no authorityKeyIdentifier")
        if aki is not None:
            check(not aki.critical, f"{label}: authorityKeyIdentifier is critical")
            check(
                aki.value.key_identifier == issuer_ski,
                f"{label}: AKI keyIdentifier {aki.value.key_identifier and aki.value.key_identifier.hex()} "
                f"!= parent SKI {issuer_ski.hex()}",
            )
        check(
            cert.not_valid_after_utc <= issuer.not_valid_after_utc,
            f"{label}: notAfter {cert.not_valid_after_utc} outlives parent {issuer.not_valid_after_utc}",
        )
        try:
            cert.verify_directly_issued_by(issuer)
        except Exception as ex:  # noqa: BLE001
            problems.append(f"{label}: signature by parent does not verify: {ex!r}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("OK")
