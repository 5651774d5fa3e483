#!/usr/bin/env python3
"""Write the certificate pool the `validate_path` and `request_json` fuzz targets draw on.

    python3 fuzz/pool/make_pool.py   # needs the `cryptography` package

A fuzzer mutating DER bytes never produces a valid signature, so a path builder fed only
mutated certificates never gets past its first signature check. The pool gives it
certificates that *do* chain, in awkward shapes: two cross-signed roots (a loop), the same
subject under several keys, a self-issued key rollover, name constraints, an extKeyUsage
conflict, an RSA intermediate, expired and not-yet-valid CAs, pathLenConstraint
violations, an unknown critical extension, and CRLs. The fuzz input picks certificates by
index (`pool.pem` order), so keep existing entries in place and append new ones.

Every certificate is valid from 2024-01-01 to 2034-01-01 unless its name says otherwise;
the fuzz targets' fixed validation time is 2025-06-01T00:00:00Z.
"""

import datetime as dt
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
NB = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
NA = dt.datetime(2034, 1, 1, tzinfo=dt.timezone.utc)
OLD_NB = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
OLD_NA = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
THIS_UPDATE = dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ec_key(curve=ec.SECP256R1):
    return ec.generate_private_key(curve())


KEYS = {k: ec_key() for k in ["ra", "rb", "i1", "i1b", "i2", "i2r", "nc", "cl", "old",
                              "i3", "leaf", "future"]}
KEYS["p384"] = ec_key(ec.SECP384R1)
KEYS["rsa"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

serial = [1000]


def cert(subject, key, issuer, issuer_key, *, ca, pathlen=None, sans=None, eku=None,
         nc=None, nb=NB, na=NA, extra=None, aki=True):
    serial[0] += 1
    b = (x509.CertificateBuilder()
         .subject_name(name(subject))
         .issuer_name(name(issuer))
         .public_key(KEYS[key].public_key())
         .serial_number(serial[0])
         .not_valid_before(nb)
         .not_valid_after(na)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(KEYS[key].public_key()),
                        critical=False))
    if aki:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(KEYS[issuer_key].public_key()),
            critical=False)
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                          False, False), critical=True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                          False, False), critical=True)
    if sans:
        gn = []
        for s in sans:
            try:
                gn.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                gn.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(gn), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if nc:
        b = b.add_extension(nc, critical=True)
    for ext, crit in extra or []:
        b = b.add_extension(ext, critical=crit)
    return b.sign(KEYS[issuer_key], hashes.SHA256())


SA, CA_ = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
POOL = [
    # 0-3: two roots, each also cross-signed by the other (a loop for the path builder).
    ("root_a", cert("Root A", "ra", "Root A", "ra", ca=True)),
    ("root_b", cert("Root B", "rb", "Root B", "rb", ca=True)),
    ("root_a_by_b", cert("Root A", "ra", "Root B", "rb", ca=True)),
    ("root_b_by_a", cert("Root B", "rb", "Root A", "ra", ca=True)),
    # 4-6: "Int 1" under both roots, and a second "Int 1" with another key.
    ("int_1", cert("Int 1", "i1", "Root A", "ra", ca=True, pathlen=1)),
    ("int_1_by_b", cert("Int 1", "i1", "Root B", "rb", ca=True, pathlen=1)),
    ("int_1_other_key", cert("Int 1", "i1b", "Root A", "ra", ca=True)),
    # 7-8: "Int 2" (pathlen 0) and its self-issued key rollover.
    ("int_2", cert("Int 2", "i2", "Int 1", "i1", ca=True, pathlen=0)),
    ("int_2_rollover", cert("Int 2", "i2r", "Int 2", "i2", ca=True, pathlen=0)),
    # 9: name constraints: example.com and 10.0.0.0/8 permitted, bad.example.com excluded.
    ("int_nc", cert("Int NC", "nc", "Root A", "ra", ca=True, nc=x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.com"),
                            x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
        excluded_subtrees=[x509.DNSName("bad.example.com")]))),
    # 10-12: an intermediate for clientAuth only, an RSA one, an expired one.
    ("int_client_only", cert("Int Client", "cl", "Root A", "ra", ca=True, eku=[CA_])),
    ("int_rsa", cert("Int RSA", "rsa", "Root A", "ra", ca=True)),
    ("int_expired", cert("Int Old", "old", "Root A", "ra", ca=True, nb=OLD_NB, na=OLD_NA)),
    # 13-14: leaves under Int 2 and under its rolled-over key.
    ("leaf_a", cert("a.example.com", "leaf", "Int 2", "i2", ca=False,
                    sans=["a.example.com", "10.0.0.1"], eku=[SA, CA_])),
    ("leaf_rollover", cert("b.example.com", "leaf", "Int 2", "i2r", ca=False,
                           sans=["b.example.com"], eku=[SA])),
    # 15-17: leaves under the name-constrained CA: inside, excluded, outside.
    ("leaf_nc_ok", cert("ok.example.com", "leaf", "Int NC", "nc", ca=False,
                        sans=["ok.example.com", "10.1.2.3"])),
    ("leaf_nc_excluded", cert("x.bad.example.com", "leaf", "Int NC", "nc", ca=False,
                              sans=["x.bad.example.com"])),
    ("leaf_nc_outside", cert("other.org", "leaf", "Int NC", "nc", ca=False,
                             sans=["other.org", "192.168.0.1"])),
    # 18-20: serverAuth leaf under a clientAuth CA; a leaf under the RSA CA; a P-384
    # wildcard leaf straight under Root A.
    ("leaf_eku_conflict", cert("c.example.com", "leaf", "Int Client", "cl", ca=False,
                               sans=["c.example.com"], eku=[SA])),
    ("leaf_under_rsa", cert("r.example.com", "leaf", "Int RSA", "rsa", ca=False,
                            sans=["r.example.com"])),
    ("leaf_p384_wildcard", cert("*.example.com", "p384", "Root A", "ra", ca=False,
                                sans=["*.example.com"], eku=[SA])),
    # 21-22: an unknown critical extension; an expired leaf.
    ("leaf_unknown_critical", cert("u.example.com", "leaf", "Int 1", "i1", ca=False,
                                   sans=["u.example.com"], extra=[(x509.UnrecognizedExtension(
                                       x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"),
                                       b"\x05\x00"), True)])),
    ("leaf_expired", cert("e.example.com", "leaf", "Int 1", "i1", ca=False,
                          sans=["e.example.com"], nb=OLD_NB, na=OLD_NA)),
    # 23: under the second "Int 1" key (its AKI names that key).
    ("leaf_other_key", cert("o.example.com", "leaf", "Int 1", "i1b", ca=False,
                            sans=["o.example.com"])),
    # 24-25: "Int 3" under Int 2 breaks Int 2's pathLenConstraint 0.
    ("int_3", cert("Int 3", "i3", "Int 2", "i2", ca=True)),
    ("leaf_under_int_3", cert("d.example.com", "leaf", "Int 3", "i3", ca=False,
                              sans=["d.example.com"])),
    # 26: many names under the name-constrained CA (name-constraint work).
    ("leaf_nc_many", cert("m0.example.com", "leaf", "Int NC", "nc", ca=False,
                          sans=[f"m{i}.example.com" for i in range(40)]
                          + [f"10.0.{i}.1" for i in range(20)])),
    # 27-28: a CA not valid before 2030 and a leaf without an AKI or SAN.
    ("int_not_yet_valid", cert("Int Future", "future", "Root A", "ra", ca=True,
                               nb=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))),
    ("leaf_no_aki_no_san", cert("n.example.com", "leaf", "Int 1", "i1", ca=False, aki=False)),
]


def crl(issuer, issuer_key, revoked, *, number=1, next_update=NA):
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(name(issuer))
         .last_update(THIS_UPDATE)
         .next_update(next_update)
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             KEYS[issuer_key].public_key()), critical=False))
    for s in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(THIS_UPDATE)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build())
    return b.sign(KEYS[issuer_key], hashes.SHA256())


by_name = dict(POOL)
CRLS = [
    ("int_2 revokes leaf_a", crl("Int 2", "i2", [by_name["leaf_a"].serial_number])),
    ("root_a revokes int_1", crl("Root A", "ra", [by_name["int_1"].serial_number])),
    ("int_nc revokes nothing", crl("Int NC", "nc", [])),
    ("int_1 past its nextUpdate", crl("Int 1", "i1", [], next_update=THIS_UPDATE
                                      + dt.timedelta(days=1))),
]


def pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode()


with open(os.path.join(HERE, "certs.pem"), "w") as f:
    for i, (n, c) in enumerate(POOL):
        f.write(f"{i} {n}\n{pem(c)}")
with open(os.path.join(HERE, "crls.pem"), "w") as f:
    for i, (n, c) in enumerate(CRLS):
        f.write(f"{i} {n}\n{pem(c)}")
