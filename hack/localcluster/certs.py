"""Certificates for the local control plane, made with `cryptography`.

One CA signs everything: the apiserver serving cert (IP SAN 127.0.0.1), the admin client cert
(group system:masters), and it is the client CA the apiserver trusts. Service-account tokens are
signed with a separate RSA key pair.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class ClusterCerts:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_public: Path
    sa_private: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from the first byte
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    organization: str | None = None,
    ip_sans: tuple[str, ...] = (),
    dns_sans: tuple[str, ...] = (),
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Sign a leaf certificate; `server` chooses serverAuth vs clientAuth usage."""
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    builder = _builder(x509.Name(attrs), ca_cert.subject, key.public_key())
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_sans]
    sans += [x509.DNSName(name) for name in dns_sans]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def generate(cert_dir: Path, service_ip: str = "10.0.0.1") -> ClusterCerts:
    """Write a fresh set of certificates into cert_dir; `service_ip` is the `kubernetes` Service's
    ClusterIP, which in-cluster clients connect to (KUBERNETES_SERVICE_HOST)."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = ClusterCerts(
        ca_cert=cert_dir / "ca.crt",
        ca_key=cert_dir / "ca.key",
        serving_cert=cert_dir / "apiserver.crt",
        serving_key=cert_dir / "apiserver.key",
        admin_cert=cert_dir / "admin.crt",
        admin_key=cert_dir / "admin.key",
        sa_public=cert_dir / "sa.pub",
        sa_private=cert_dir / "sa.key",
    )
    ca_cert, ca_key = make_ca("schema-overseer-local-ca")
    _write_cert(ca_cert, paths.ca_cert)
    _write_key(ca_key, paths.ca_key)

    serving, serving_key = issue_leaf(
        ca_cert, ca_key, common_name="kube-apiserver", server=True,
        ip_sans=("127.0.0.1", service_ip),
        dns_sans=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                  "kubernetes.default.svc.cluster.local"),
    )
    _write_cert(serving, paths.serving_cert)
    _write_key(serving_key, paths.serving_key)

    admin, admin_key = issue_leaf(ca_cert, ca_key, common_name="overseer-admin", organization="system:masters")
    _write_cert(admin, paths.admin_cert)
    _write_key(admin_key, paths.admin_key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(sa_key, paths.sa_private)
    paths.sa_public.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return paths
