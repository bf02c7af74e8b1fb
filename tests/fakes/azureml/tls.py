"""A throwaway self-signed certificate for fakes that must speak HTTPS on 127.0.0.1.

The Azure SDKs refuse to send bearer tokens over plain http ("Bearer token
authentication is not permitted for non-TLS protected URLs"), so a fake of an
Azure control plane has to serve TLS, and the client has to trust it: point
REQUESTS_CA_BUNDLE at ``cert_path`` (the certificate is its own CA).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SelfSignedCert:
    cert_path: Path  # PEM certificate; also usable as the CA bundle
    key_path: Path  # PEM private key, unencrypted


def make_self_signed_cert(
    directory: Path, common_name: str = "127.0.0.1", dns_names: tuple[str, ...] = ()
) -> SelfSignedCert:
    """Write a certificate valid for IP 127.0.0.1, DNS localhost and ``dns_names`` into ``directory``.

    ``dns_names`` may hold wildcards such as ``*.westeurope.inference.ml.localhost``
    (the fake v2's per-endpoint scoring hosts).

    It is marked CA:TRUE with keyCertSign and carries subject/authority key
    identifiers, so OpenSSL accepts it as its own trust anchor even under the
    strict X.509 checks that newer Pythons (3.13+) turn on by default.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())  # fast to generate, unlike RSA
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    *(x509.DNSName(name) for name in dns_names),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "fake-cert.pem"
    key_path = directory / "fake-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return SelfSignedCert(cert_path=cert_path, key_path=key_path)
