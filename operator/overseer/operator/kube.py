"""A small async Kubernetes API client on aiohttp: plain JSON dicts, deadlines, one error type.

Kopf talks to the API for its own watches and status writes; this client is for what the
operator does itself: server-side apply of owned objects, reads with a label selector, and
label-selected watches of owned objects (server-side filtering: the operator never watches every
Pod or Secret of the cluster). Credentials come from the same kubeconfig / in-cluster config Kopf
logs in with (`load_credentials`).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from overseer.operator.settings import FIELD_MANAGER

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """An API call failed: `status` is the HTTP status (0 when the API server was unreachable)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying as is: unreachable, throttled, a conflict, or a server-side error."""
        return self.status in (0, 408, 409, 429) or self.status >= 500


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    """Re-read on every request: projected service-account tokens rotate."""
    insecure: bool = False

    def current_token(self) -> str | None:
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError:
                return self.token
        return self.token


def load_credentials(kubeconfig: Path | None) -> Credentials:
    """In-cluster config when running in a pod (and no kubeconfig is given), else the kubeconfig.

    The Kubernetes client library does the parsing (auth plugins, inline certificates written
    to temporary files); only the results are kept.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    token_file: str | None = None
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        token_file = str(SERVICE_ACCOUNT_DIR / "token")
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None, client_configuration=cfg
        )
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    token = header.split(" ", 1)[-1] if header else None
    return Credentials(
        server=cfg.host.rstrip("/"),
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        token=token,
        token_file=token_file,
        insecure=not cfg.verify_ssl,
    )


def api_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """`/apis/apps/v1/namespaces/ns/deployments/x` and friends."""
    parts = ["/api/v1" if api_version == "v1" else f"/apis/{api_version}"]
    if namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def object_path(api_version: str, plural: str, body: Mapping[str, Any], subresource: str | None = None) -> str:
    meta = body["metadata"]
    return api_path(api_version, plural, meta.get("namespace"), meta["name"], subresource)


class KubeClient:
    """One aiohttp session per operator; create it inside the running event loop."""

    def __init__(self, credentials: Credentials, *, timeout_s: float = 10.0) -> None:
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        creds = self.credentials
        if creds.insecure:
            return False
        context = ssl.create_default_context(cafile=creds.ca_file)
        if creds.cert_file and creds.key_file:
            context.load_cert_chain(creds.cert_file, creds.key_file)
        return context

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=32)
            # No base_url: a server URL may carry a path prefix (API proxies), which base_url refuses.
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.credentials.current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout_s: float | None = None,
    ) -> Any:
        data = json.dumps(body) if body is not None else None
        try:
            async with self.session.request(
                method,
                self.credentials.server + path,
                params=params,
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=aiohttp.ClientTimeout(total=timeout_s or self.timeout_s),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise _error(response.status, text)
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise KubeError(0, "Unavailable", f"{method} {path}: {type(error).__name__}: {error}") from error

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return dict(await self.request("GET", path))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        answer = await self.request("GET", path, params=params)
        return list(answer.get("items") or [])

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self.request("POST", path, body=dict(body), params={"fieldManager": FIELD_MANAGER}))

    async def apply(self, path: str, body: Mapping[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply as FIELD_MANAGER: the fields we own go back to what we say."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        # JSON is YAML: the apply content type takes it as is.
        return dict(
            await self.request(
                "PATCH", path, body=dict(body), params=params, content_type="application/apply-patch+yaml"
            )
        )

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(
            await self.request(
                "PATCH",
                path,
                body=dict(body),
                params={"fieldManager": FIELD_MANAGER},
                content_type="application/merge-patch+json",
            )
        )

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeError as error:
            if error.status != 404:
                raise

    async def watch(
        self, path: str, *, label_selector: str | None, resource_version: str | None, timeout_s: int = 300
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) of one watch request until the server ends it; raises KubeError(410) when
        `resource_version` is too old (the caller lists again)."""
        params = {"watch": "1", "timeoutSeconds": str(timeout_s), "allowWatchBookmarks": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s, sock_read=timeout_s + 30)
        try:
            async with self.session.get(
                self.credentials.server + path, params=params, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.text())
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type", ""), event.get("object") or {}
                    if kind == "ERROR":
                        raise _error(int(obj.get("code") or 500), json.dumps(obj))
                    yield kind, obj
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as error:
            raise KubeError(0, "Unavailable", f"watch {path}: {type(error).__name__}: {error}") from error


def _error(status: int, text: str) -> KubeError:
    try:
        payload = json.loads(text)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    return KubeError(status, str(payload.get("reason") or "Error"), str(payload.get("message") or text[:500]))


__all__ = [
    "Credentials",
    "KubeClient",
    "KubeError",
    "api_path",
    "load_credentials",
    "object_path",
]
