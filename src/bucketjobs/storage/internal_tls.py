"""Mutual TLS between the embedded SeaweedFS's own parts.

`weed mini` serves its master, volume and filer on 127.0.0.1, over HTTP and gRPC, with no
authentication of its own: any account of the host could read and write objects through
them. With a `security.toml` naming a private CA and a certificate it signed, every one of
those ports requires a client certificate, and only the S3 port (with its credentials)
serves data. The CA key signs once and is then dropped; the certificate and key are kept in
the store's directory, 0600, for weed alone.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Every gRPC service weed mini may run; each is served and dialled with the same pair.
_GRPC_SERVICES = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker",
                  "msg_agent", "mq")  # fmt: skip
_HTTPS_SERVICES = ("master", "volume", "filer")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ensure_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, certificate, key) in `directory`, made on first use (10 years)."""
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path, cert_path, key_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = _name("bucketjobs embedded store CA")
    ca = (
        x509.CertificateBuilder().subject_name(issuer).issuer_name(issuer)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    _write_private(ca_path, ca.public_bytes(serialization.Encoding.PEM))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )  # fmt: skip
    return ca_path, cert_path, key_path


def security_toml(ca: Path, cert: Path, key: Path) -> str:
    """SeaweedFS's security.toml: mTLS on every internal gRPC and HTTP port."""
    pair = f'cert = "{cert}"\nkey = "{key}"\n'
    sections = [f'[grpc]\nca = "{ca}"\n']
    sections += [f'[grpc.{name}]\n{pair}client_cert = "{cert}"\nclient_key = "{key}"\n'
                 for name in _GRPC_SERVICES]  # fmt: skip
    sections.append(f"[grpc.client]\n{pair}")
    sections.append(f'[https.client]\nenabled = true\n{pair}ca = "{ca}"\n')
    sections += [f'[https.{name}]\n{pair}ca = "{ca}"\n' for name in _HTTPS_SERVICES]
    return "\n".join(sections)


def write_security(root: Path) -> Path:
    """`root/security.toml` (0600) over certificates in `root/tls`; weed reads it from its
    working directory."""
    path = root / "security.toml"
    _write_private(path, security_toml(*ensure_certificates(root / "tls")).encode())
    return path
