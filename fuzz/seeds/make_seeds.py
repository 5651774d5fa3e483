#!/usr/bin/env python3
"""Write the hand-made seed inputs of the fuzz targets into fuzz/seeds/<target>/.

    python3 fuzz/seeds/make_seeds.py   # needs the `cryptography` package

Each target's input format is described at the top of its fuzz_targets/<target>.rs.
The seeds of `validate_path` are not made here: its input is `arbitrary`-encoded, and its
seeds are a minimised corpus of a short run (see fuzz/README.md).
"""

import ipaddress
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
POOL = os.path.join(HERE, "..", "pool")


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pool_pems(path):
    """The PEM blocks of a pool file, by the name on the line above each."""
    out, cur, name = {}, None, None
    for line in open(path):
        if line.startswith("-----BEGIN"):
            cur = [line]
        elif cur is not None:
            cur.append(line)
            if line.startswith("-----END"):
                out[name] = "".join(cur)
                cur = None
        elif line.strip():
            name = line.split(maxsplit=1)[1].strip()
    return out


CERTS = pool_pems(os.path.join(POOL, "certs.pem"))
CRLS = pool_pems(os.path.join(POOL, "crls.pem"))


def csr(key, cn, sans=(), uris=(), emails=()):
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    gn = []
    for s in sans:
        try:
            gn.append(x509.IPAddress(ipaddress.ip_address(s)))
        except ValueError:
            gn.append(x509.DNSName(s))
    gn += [x509.UniformResourceIdentifier(u) for u in uris]
    gn += [x509.RFC822Name(e) for e in emails]
    if gn:
        b = b.add_extension(x509.SubjectAlternativeName(gn), critical=False)
    return b.sign(key, hashes.SHA256())


def der(obj):
    return obj.public_bytes(serialization.Encoding.DER)


def pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode()


p256 = ec.generate_private_key(ec.SECP256R1())
p384 = ec.generate_private_key(ec.SECP384R1())
rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)

# --- csr: mode byte (0 PEM text, 1 DER as CERTIFICATE REQUEST, 2 DER as NEW ...), body.
svc = csr(p256, "billing.svc.cluster.local", ["billing.svc.cluster.local", "10.0.5.100"],
          ["spiffe://cluster.local/ns/a/sa/b"])
write("csr", "p256-pem", b"\x00" + pem(svc).encode())
write("csr", "p256-der", b"\x01" + der(svc))
write("csr", "p384-der-new-label", b"\x02" + der(csr(p384, "a.internal", ["a.internal"])))
write("csr", "rsa2048-der", b"\x01" + der(csr(rsa2048, "r.internal", ["r.internal"])))
write("csr", "email-san-der", b"\x01" + der(csr(p256, "m.internal", emails=["a@b.c"])))

# --- pem_bundle: mode byte (0 PEM text, 1 certificate DER, 2 CRL DER, 3 key PEM), body.
write("pem_bundle", "chain-text", "\x00subject=CN=Int 2\n" + CERTS["int_2"] + CERTS["int_1"])
write("pem_bundle", "crl-text", "\x00" + CRLS["int_2 revokes leaf_a"])
write("pem_bundle", "leaf-der",
      b"\x01" + x509.load_pem_x509_certificate(CERTS["leaf_a"].encode()).public_bytes(
          serialization.Encoding.DER))
write("pem_bundle", "crl-der",
      b"\x02" + x509.load_pem_x509_crl(CRLS["root_a revokes int_1"].encode()).public_bytes(
          serialization.Encoding.DER))
write("pem_bundle", "ec-key-sec1", b"\x03" + p256.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption()))
write("pem_bundle", "ec-key-pkcs8", b"\x03" + p384.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption()))

# --- role_names: flag byte, then name 0xFF pattern 0xFF pattern ..., one token per byte.
TOKENS = ["a", "b", "w", "x", "-", ".", "*", "_", " ", "0", "9", "A", "Z", "\t", "\u00e9",
          "svc", "internal", "example", "com", "localhost", "localdomain", "xn--", "web-",
          "a" * 63, "..", "*.", "/", ":", "cluster", "local", "\u0130", "K"]


def tokens(s):
    """Greedy longest-token encoding of s."""
    out, i = [], 0
    order = sorted(range(len(TOKENS)), key=lambda k: -len(TOKENS[k]))
    while i < len(s):
        for k in order:
            if s.startswith(TOKENS[k], i):
                out.append(k)
                i += len(TOKENS[k])
                break
        else:
            raise ValueError(f"no token for {s[i:]!r}")
    return bytes(out)


SUB, BARE, GLOB, WILD, LH, ANY, ENF = 1, 2, 4, 8, 16, 32, 64
for n, (flags, name, patterns) in enumerate([
    (SUB | WILD | LH | ENF, "ab-9.svc.cluster.local", ["*.svc.cluster.local", "*.internal"]),
    (SUB | WILD | LH | ENF, "svc.cluster.local.example.com", ["*.svc.cluster.local"]),
    (SUB | WILD | LH | ENF, "*.a.internal", ["*.internal"]),
    (GLOB | WILD | ENF, "web-a.example.com", ["web-*.example.com"]),
    (BARE | ENF, "example.com.", ["example.com"]),
    (LH | ENF, "localhost.localdomain", []),
    (ANY, "a_b.example.com", []),
    (SUB | ENF, "x" + ".a" * 126 + ".com", ["com"]),
]):
    write("role_names", f"readme-{n}",
          bytes([flags]) + b"\xff".join(tokens(s) for s in [name] + patterns))

# --- duration: the text as sent.
for n, s in enumerate(["30s", "90m", "720h", "30d", "1h30m", "3600", "2592000", '"720h"',
                       "36600d"]):
    write("duration", f"form-{n}", s)

# --- request_json: role byte (flags, bit 7 allow_ip_sans), role byte (patterns & 7,
# require_cn 8, use_csr_common_name 16, use_csr_sans 32, key type >> 6), byte (URI
# patterns & 3, TTLs 4-8, subject fields 16, base URL 32, endpoint >> 6), then JSON.
role_a = bytes([0x80 | SUB | WILD | LH | ENF, 0 | 8 | 16 | 32, 0])
write("request_json", "issue-readme", role_a + json.dumps({
    "common_name": "billing-api.svc.cluster.local",
    "alt_names": "billing-api.svc.cluster.local,billing.internal",
    "ip_sans": ["10.0.5.100"], "ttl": "720h"}).encode())
write("request_json", "issue-uri", bytes([0x80 | WILD | ENF, 8 | (3 << 6), 1 | 16 | 32])
      + json.dumps({"common_name": "a.svc.cluster.local",
                    "uri_sans": ["spiffe://cluster.local/ns/a/sa/b"], "ttl": 3600,
                    "private_key_format": "pkcs8", "exclude_cn_from_sans": True}).encode())
write("request_json", "sign-csr", bytes([role_a[0], role_a[1], 1 << 6]) + json.dumps({
    "csr_pem": pem(svc), "ttl": "24h"}).encode())
write("request_json", "validate-chain", bytes([0, 0, 2 << 6]) + json.dumps({
    "certificate_pem": CERTS["leaf_a"], "chain_pem": CERTS["int_2"] + CERTS["int_1"],
    "crls_pem": CRLS["int_2 revokes leaf_a"], "dns_name": "a.example.com",
    "purpose": "server_auth", "validation_time": "2025-06-01T00:00:00Z"}).encode())
write("request_json", "renew", bytes([0, 0, 3 << 6]) + b'{"ttl": "1h"}')
