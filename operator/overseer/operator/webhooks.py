"""The admission webhook configurations - one template for local mode and the Helm chart - and
the webhook server's certificates.

Kopf's managed mode cannot be used: it hard-codes `timeoutSeconds: 30` and overwrites every
webhook in the object. So the project builds the Validating/MutatingWebhookConfiguration itself
from `WEBHOOKS`:

- local mode (`url`): `configurations(url_client_config(...))`, registered by the operator at
  start with server-side apply; the server certificate (IP SAN of the URL host) and its CA are
  made here with `cryptography` and kept in the cert dir, so restarts keep the same caBundle.
- the Helm chart (`service`): `python -m overseer.operator.chartgen` writes the same
  configurations as a named Helm template; `--check` fails on drift (like `make crds-check`).

Every webhook: failurePolicy Fail, sideEffects None, timeoutSeconds <= 5,
admissionReviewVersions [v1], rules only for overseer.dev resources, so a dead operator can never
block anything outside the project's own kinds.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from overseer.api.v1alpha1 import GROUP, VERSION

WebhookType = Literal["Validating", "Mutating"]


@dataclass(frozen=True)
class Webhook:
    handler_id: str
    """The Kopf handler id; also the URL path (Kopf routes `/<handler-id>` to that handler alone)."""
    type: WebhookType
    resources: tuple[str, ...]
    operations: tuple[str, ...]
    description: str

    @property
    def name(self) -> str:
        return f"{self.handler_id}.{GROUP}"

    @property
    def path(self) -> str:
        return f"/{self.handler_id}"


DEFAULT_DEPLOYMENT = Webhook(
    "default-modeldeployment",
    "Mutating",
    ("modeldeployments",),
    ("CREATE", "UPDATE"),
    "fills in the referenced ModelSchema version's defaults",
)
VALIDATE_DEPLOYMENT = Webhook(
    "validate-modeldeployment",
    "Validating",
    ("modeldeployments",),
    ("CREATE", "UPDATE"),
    "schemaRef resolves, config valid, promotion gate, warnings",
)
VALIDATE_SCHEMA = Webhook(
    "validate-modelschema",
    "Validating",
    ("modelschemas",),
    ("CREATE", "UPDATE", "DELETE"),
    "valid JSON Schemas, immutable and compatible versions, no deletion while referenced",
)
WEBHOOKS: tuple[Webhook, ...] = (DEFAULT_DEPLOYMENT, VALIDATE_DEPLOYMENT, VALIDATE_SCHEMA)

TIMEOUT_SECONDS = 5
KIND_OF: dict[WebhookType, str] = {
    "Validating": "ValidatingWebhookConfiguration",
    "Mutating": "MutatingWebhookConfiguration",
}

ClientConfigFor = Callable[[Webhook], dict[str, Any]]


def url_client_config(host: str, port: int, ca_bundle: str) -> ClientConfigFor:
    """Local mode: the API server calls https://host:port/<handler-id>, trusting `ca_bundle` (base64 PEM)."""
    netloc = f"[{host}]" if ":" in host else host

    def build(webhook: Webhook) -> dict[str, Any]:
        return {"url": f"https://{netloc}:{port}{webhook.path}", "caBundle": ca_bundle}

    return build


def service_client_config(name: str, namespace: str, ca_bundle: str | None, port: int = 443) -> ClientConfigFor:
    """In a cluster: the API server calls the webhook Service (TLS name <name>.<namespace>.svc)."""

    def build(webhook: Webhook) -> dict[str, Any]:
        config: dict[str, Any] = {"service": {"name": name, "namespace": namespace, "path": webhook.path, "port": port}}
        if ca_bundle is not None:
            config["caBundle"] = ca_bundle
        return config

    return build


def configurations(
    client_config: ClientConfigFor,
    *,
    name: str = "schema-overseer",
    labels: Mapping[str, str] | None = None,
    timeout_seconds: int = TIMEOUT_SECONDS,
) -> list[dict[str, Any]]:
    """The ValidatingWebhookConfiguration and the MutatingWebhookConfiguration, in that order."""
    if not 1 <= timeout_seconds <= TIMEOUT_SECONDS:
        raise ValueError(f"timeoutSeconds must be between 1 and {TIMEOUT_SECONDS}, not {timeout_seconds}")
    out = []
    for kind in ("Validating", "Mutating"):
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        out.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": KIND_OF[kind],  # type: ignore[index]
                "metadata": metadata,
                "webhooks": [_webhook(w, client_config, timeout_seconds) for w in WEBHOOKS if w.type == kind],
            }
        )
    return out


def _webhook(webhook: Webhook, client_config: ClientConfigFor, timeout_seconds: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": webhook.name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config(webhook),
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "operations": list(webhook.operations),
                "resources": list(webhook.resources),
                "scope": "Namespaced",
            }
        ],
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
    }
    if webhook.type == "Mutating":
        # Defaults depend only on the spec; a later mutating webhook cannot invalidate them.
        entry["reinvocationPolicy"] = "Never"
    return entry


# --- the Helm chart's template -------------------------------------------------------------------

CHART_TEMPLATE = Path("charts/schema-overseer/templates/_webhooks.tpl")
# Placeholders YAML writes unquoted, replaced by Helm expressions after dumping.
_FULLNAME, _NAMESPACE, _CABUNDLE, _LABELS = "XXFULLNAMEXX", "XXNAMESPACEXX", "XXCABUNDLEXX", "XXLABELSXX"
_NAMESPACE_SELECTOR = "XXNAMESPACESELECTORXX"
_HEADER = """\
{{- /*
Generated by `python -m overseer.operator.chartgen --out %s`
from operator/overseer/operator/webhooks.py: the same webhooks the operator registers in local mode,
with a service clientConfig. Do not edit; `make crds-check` fails when this file drifts.

Usage (the chart defines "schema-overseer.fullname" and "schema-overseer.labels"):
  {{ include "schema-overseer.webhookConfigurations" (dict "root" . "caBundle" $caBundle "annotations" $annotations
     "namespaceSelector" $namespaceSelector) }}
caBundle: base64 PEM of the CA that signed the webhook certificate, or empty when cert-manager's
CA injector fills it (annotations: cert-manager.io/inject-ca-from: <namespace>/<certificate>).
namespaceSelector: empty for every namespace, or a selector (the chart's watchNamespaces).
The webhook Service is "<fullname>-webhook", port 443, in the release namespace.
*/ -}}
"""


def chart_template() -> str:
    """The named Helm template `schema-overseer.webhookConfigurations`."""
    docs = configurations(service_client_config(f"{_FULLNAME}-webhook", _NAMESPACE, _CABUNDLE), name=_FULLNAME)
    for doc in docs:
        doc["metadata"]["labels"] = _LABELS
        for webhook in doc["webhooks"]:
            webhook["namespaceSelector"] = _NAMESPACE_SELECTOR
    body = "---\n".join(yaml.safe_dump(doc, sort_keys=False, width=120) for doc in docs)
    lines = []
    for line in body.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        if line.strip() == f"caBundle: {_CABUNDLE}":
            lines += [
                f"{indent}{{{{- with $.caBundle }}}}",
                f"{indent}caBundle: {{{{ . }}}}",
                f"{indent}{{{{- end }}}}",
            ]
        elif line.strip() == f"namespaceSelector: {_NAMESPACE_SELECTOR}":
            lines += [
                f"{indent}{{{{- with $.namespaceSelector }}}}",
                f"{indent}namespaceSelector: {{{{- toYaml . | nindent {len(indent) + 2} }}}}",
                f"{indent}{{{{- end }}}}",
            ]
        elif line.strip() == f"labels: {_LABELS}":
            lines += [
                f'{indent}labels: {{{{- include "schema-overseer.labels" $.root | nindent {len(indent) + 2} }}}}',
                f"{indent}{{{{- with $.annotations }}}}",
                f"{indent}annotations: {{{{- toYaml . | nindent {len(indent) + 2} }}}}",
                f"{indent}{{{{- end }}}}",
            ]
        else:
            named = line.replace(_FULLNAME, '{{ include "schema-overseer.fullname" $.root }}')
            lines.append(named.replace(_NAMESPACE, "{{ $.root.Release.Namespace }}"))
    template = "\n".join(lines)
    return (
        _HEADER % CHART_TEMPLATE
        + '{{- define "schema-overseer.webhookConfigurations" -}}\n'
        + template
        + "\n{{- end }}\n"
    )


# --- certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> CertFiles:
        return cls(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")


def ensure_certificates(
    directory: Path,
    *,
    ip_sans: Sequence[str] = (),
    dns_sans: Sequence[str] = (),
    min_remaining: dt.timedelta = dt.timedelta(days=7),
) -> CertFiles:
    """A CA and a server certificate for the SANs in `directory`, reused while they still fit.

    Reuse keeps the caBundle stable across operator restarts; a certificate that expires within
    `min_remaining`, misses a SAN, or no longer chains to the CA is replaced (CA included).
    """
    from cryptography import x509

    files = CertFiles.in_dir(directory)
    try:
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
        files.key.stat()
        if _fits(ca, leaf, ip_sans, dns_sans, min_remaining):
            return files
    except (OSError, ValueError):
        pass
    _generate(files, ip_sans, dns_sans)
    return files


def _fits(ca: Any, leaf: Any, ip_sans: Sequence[str], dns_sans: Sequence[str], min_remaining: dt.timedelta) -> bool:
    from cryptography import x509

    now = dt.datetime.now(dt.UTC)
    if min(ca.not_valid_after_utc, leaf.not_valid_after_utc) - now < min_remaining:
        return False
    if leaf.issuer != ca.subject:
        return False
    try:
        leaf.verify_directly_issued_by(ca)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, Exception):  # any doubt: make new ones
        return False
    have_ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    have_dns = set(names.get_values_for_type(x509.DNSName))
    return {str(ipaddress.ip_address(ip)) for ip in ip_sans} <= have_ips and set(dns_sans) <= have_dns


def _generate(files: CertFiles, ip_sans: Sequence[str], dns_sans: Sequence[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "schema-overseer-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_sans]
    sans += [x509.DNSName(name) for name in dns_sans]
    common_name = (list(dns_sans) + list(ip_sans) + ["schema-overseer-webhook"])[0]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files.ca.parent.mkdir(parents=True, exist_ok=True)
    _write_private(files.key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))  # fmt: skip
    # The server re-reads its files when they change: write the key first, the certificate last.
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from the first byte
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)
