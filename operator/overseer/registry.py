"""The cluster as the schema registry: ModelSchemas read from a kube-apiserver, read-only.

Teams in other repositories check their models against the contracts the cluster holds instead of
a copied schema file: `overseer validate --schemas-from-cluster`, `overseer deployment new --schema
cluster:NAMESPACE/NAME#N`, and the SDK's `load_schema("cluster:NAMESPACE/NAME#N")`.

Only get and list requests are made (the chart's read-only ClusterRole grants get/list/watch on
modelschemas). Credentials come from the kubeconfig (KUBECONFIG or ~/.kube/config, its current
context or `--context`) or, with no kubeconfig, from the pod's ServiceAccount (in-cluster config).
Every failure is a ClusterAccessError whose message says in one line what went wrong: no
kubeconfig, an unknown context, an unreachable server, refused credentials, a forbidden read, a
missing namespace or a missing ModelSchema API. The Kubernetes client (the `operator` extra) is
imported only when a cluster is used, so the light core stays light.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from overseer.api.v1alpha1 import API_VERSION, GROUP, VERSION, ModelSchema, SchemaVersion
from overseer.checks import Problem
from overseer.manifests import Document, SchemaFileError, parse_model_schema, pick_version, read_model_schema
from overseer.manifests import split_version as _split_version
from overseer.schema.hints import one_line

CLUSTER_PREFIX = "cluster:"
PLURAL = "modelschemas"
RESOURCE = f"{PLURAL}.{GROUP}"
OPERATOR_EXTRA_HINT = "pip install 'schema-overseer[operator]'"
# A CI job should learn within seconds that the API server is not there, not after minutes of
# TCP retries; a slow but live server still gets the read timeout.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
PAGE_SIZE = 250
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class ClusterAccessError(Exception):
    """The cluster cannot be read; `reason` is a stable word, the message one line for a user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(one_line(message))
        self.reason = reason


# --- references: cluster:NAMESPACE/NAME[#N] ----------------------------------------------------------


@dataclass(frozen=True)
class ClusterReference:
    namespace: str
    name: str
    version: int | None = None

    def __str__(self) -> str:
        suffix = f"#{self.version}" if self.version is not None else ""
        return f"{CLUSTER_PREFIX}{self.namespace}/{self.name}{suffix}"


def is_cluster_reference(reference: str | os.PathLike[str]) -> bool:
    return isinstance(reference, str) and reference.startswith(CLUSTER_PREFIX)


def parse_cluster_reference(reference: str) -> ClusterReference:
    """`cluster:NAMESPACE/NAME[#N]`; SchemaFileError naming the expected spelling otherwise."""
    where, version = _split_version(reference)
    namespace, slash, name = where.removeprefix(CLUSTER_PREFIX).partition("/")
    spelling = f"{reference}: expected {CLUSTER_PREFIX}NAMESPACE/NAME or {CLUSTER_PREFIX}NAMESPACE/NAME#N"
    if not slash or not namespace or not name:
        raise SchemaFileError(spelling)
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise SchemaFileError(f"{spelling} ({namespace!r} is not a namespace name)")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise SchemaFileError(f"{spelling} ({name!r} is not an object name)")
    return ClusterReference(namespace, name, version)


# --- the client ---------------------------------------------------------------------------------------


def _import_client() -> Any:
    try:
        import kubernetes
    except ImportError as error:
        raise ClusterAccessError(
            "ClientMissing", f"reading the cluster needs the Kubernetes client: {OPERATOR_EXTRA_HINT}"
        ) from error
    return kubernetes


def kubeconfig_paths(environ: Mapping[str, str] | None = None) -> tuple[list[str], str]:
    """Existing kubeconfig files, as kubectl finds them, and where it looked (for messages)."""
    env = os.environ if environ is None else environ
    listed = env.get("KUBECONFIG")
    if listed:  # kubectl merges every file of the list and skips the missing ones
        paths = [os.path.expanduser(p) for p in listed.split(os.pathsep) if p]
        return [p for p in paths if os.path.isfile(p)], f"KUBECONFIG={listed}"
    default = os.path.expanduser("~/.kube/config")
    return ([default] if os.path.isfile(default) else []), "KUBECONFIG is unset, ~/.kube/config does not exist"


class ClusterRegistry:
    """ModelSchemas of one cluster. Use `connect()`; close() (or `with`) releases the connections."""

    def __init__(self, api_client: Any, *, where: str, namespace: str, timeouts: tuple[float, float]) -> None:
        kubernetes = _import_client()
        self._api_client = api_client
        self._objects = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)
        self.where = where
        """`context 'ci' (https://...)` or `in-cluster config (https://...)`: for messages."""
        self.namespace = namespace
        """The default namespace: the context's, the pod's, or `default`."""
        self._timeouts = timeouts

    def __enter__(self) -> ClusterRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._api_client.close()

    def list_schemas(self, namespace: str) -> list[dict[str, Any]]:
        """Every ModelSchema of `namespace` (as plain manifests, without status)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._request("list", namespace, None, self._lister(namespace, token))
            items.extend(_manifest(item) for item in page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        if not items:
            self._require_namespace(namespace)
        return items

    def _lister(self, namespace: str, token: str | None) -> Any:
        extra = {"_continue": token} if token else {}
        return lambda: self._objects.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, limit=PAGE_SIZE, _request_timeout=self._timeouts, **extra
        )

    def get_schema(self, namespace: str, name: str) -> dict[str, Any]:
        """One ModelSchema as a plain manifest (without status); NotFound when it does not exist."""
        body = self._request(
            "get",
            namespace,
            name,
            lambda: self._objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeouts
            ),
        )
        return _manifest(body)

    def _require_namespace(self, namespace: str) -> None:
        """A missing namespace is a usage error, not "no schemas here". Read only when a list came
        back empty; a CI role without `get namespaces` cannot tell, and the empty list stands."""
        kubernetes = _import_client()
        try:
            self._core.read_namespace(namespace, _request_timeout=self._timeouts)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                raise ClusterAccessError(
                    "NamespaceNotFound", f"namespace {namespace!r} not found on the cluster ({self.where})"
                ) from error
            if error.status in (401, 403):
                return
            raise self._api_error(error, "get", namespace, None) from error
        except Exception as error:  # the list just worked; a failure here is as real as any other
            raise self._transport_error(error) from error

    def _request(self, verb: str, namespace: str, name: str | None, call: Any) -> Any:
        kubernetes = _import_client()
        try:
            return call()
        except kubernetes.client.ApiException as error:
            if error.status == 404 and verb == "get" and _names_object(error):
                self._require_namespace(namespace)
                raise ClusterAccessError(
                    "NotFound", f"ModelSchema {name!r} not found in namespace {namespace!r} ({self.where})"
                ) from error
            raise self._api_error(error, verb, namespace, name) from error
        except ClusterAccessError:
            raise
        except Exception as error:
            raise self._transport_error(error) from error

    def _api_error(self, error: Any, verb: str, namespace: str, name: str | None) -> ClusterAccessError:
        status = error.status or 0
        message = _status_message(error)
        if status == 0:  # the client turns TLS failures into a status-less ApiException
            return ClusterAccessError("Unreachable", f"cluster unreachable: {self.where}: {message}")
        if status == 401:
            return ClusterAccessError(
                "Unauthorized",
                f"the cluster refused the credentials of {self.where} (401 Unauthorized): "
                "the token or certificate is invalid or expired",
            )
        if status == 403:
            return ClusterAccessError(
                "Forbidden",
                f"forbidden: {message} ({self.where}); reading ModelSchemas needs get and list on {RESOURCE}",
            )
        if status == 404:
            return ClusterAccessError(
                "NoAPI",
                f"the cluster has no {RESOURCE} API ({self.where}): is schema-overseer installed (its CRDs)?",
            )
        target = f"{verb} {RESOURCE}{'/' + name if name else ''} in namespace {namespace!r}"
        return ClusterAccessError("Error", f"{target} failed ({self.where}): {status} {message}")

    def _transport_error(self, error: Exception) -> ClusterAccessError:
        import urllib3.exceptions as http

        if isinstance(error, http.NewConnectionError):  # before its base class ConnectTimeoutError
            detail = "connection refused" if "refused" in str(error).lower() else _reason(error)
        elif isinstance(error, http.ConnectTimeoutError):
            detail = f"no connection within {self._timeouts[0]:g}s"
        elif isinstance(error, http.ReadTimeoutError):
            detail = f"no answer within {self._timeouts[1]:g}s"
        elif isinstance(error, http.HTTPError):
            detail = _reason(error)
        else:
            detail = f"{type(error).__name__}: {error}"
        return ClusterAccessError("Unreachable", f"cluster unreachable: {self.where}: {detail}")


def connect(
    context: str | None = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> ClusterRegistry:
    """A registry for the kubeconfig's current context, `context`, or the in-cluster config."""
    kubernetes = _import_client()
    env = os.environ if environ is None else environ
    configuration = kubernetes.client.Configuration()
    paths, looked = kubeconfig_paths(env)
    if paths:
        where, namespace = _load_kubeconfig(kubernetes, configuration, paths, context)
    elif context is not None:
        raise ClusterAccessError("NoConfig", f"context {context!r}: no kubeconfig found ({looked})")
    elif env.get("KUBERNETES_SERVICE_HOST"):
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except Exception as error:
            raise ClusterAccessError("BadConfig", f"in-cluster config unusable: {_first_line(error)}") from error
        where = f"in-cluster config ({configuration.host})"
        namespace = _service_account_namespace()
    else:
        raise ClusterAccessError("NoConfig", f"no kubeconfig found ({looked}) and not running in a pod")
    # One attempt per request: the client's default retries multiply the connect timeout.
    configuration.retries = False
    api_client = kubernetes.client.ApiClient(configuration)
    return ClusterRegistry(api_client, where=where, namespace=namespace, timeouts=(connect_timeout, read_timeout))


def _load_kubeconfig(kubernetes: Any, configuration: Any, paths: list[str], context: str | None) -> tuple[str, str]:
    shown = ", ".join(paths)
    contexts, current = _kubeconfig_contexts(paths)
    chosen = context if context is not None else current
    if chosen is None:
        raise ClusterAccessError(
            "BadConfig", f"kubeconfig {shown} has no current-context; pass --context ({_listing(list(contexts))})"
        )
    if chosen not in contexts:
        raise ClusterAccessError(
            "BadConfig", f"context {chosen!r} not found in kubeconfig {shown} ({_listing(list(contexts))})"
        )
    try:
        # persist_config=False: a read-only tool never rewrites the user's kubeconfig (token refreshes).
        kubernetes.config.load_kube_config(
            config_file=os.pathsep.join(paths), context=chosen, client_configuration=configuration, persist_config=False
        )
    except Exception as error:
        detail = f"context {chosen!r} of kubeconfig {shown}: {_first_line(error)}"
        raise ClusterAccessError("BadConfig", detail) from error
    namespace = contexts[chosen].get("namespace") or "default"
    return f"context {chosen!r} ({configuration.host})", str(namespace)


def _kubeconfig_contexts(paths: list[str]) -> tuple[dict[str, Mapping[str, Any]], str | None]:
    """Contexts by name and the current context, merged the way kubectl merges a KUBECONFIG list:
    the first file to set a name (or current-context) wins."""
    import yaml

    contexts: dict[str, Mapping[str, Any]] = {}
    current: str | None = None
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ClusterAccessError("BadConfig", f"kubeconfig {path}: {_first_line(error)}") from error
        if data is None:
            continue
        if not isinstance(data, Mapping):
            raise ClusterAccessError("BadConfig", f"kubeconfig {path}: not a kubeconfig (a mapping)")
        if current is None and isinstance(data.get("current-context"), str) and data["current-context"]:
            current = data["current-context"]
        for entry in data.get("contexts") or []:
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and name not in contexts:
                body = entry.get("context")
                contexts[name] = body if isinstance(body, Mapping) else {}
    return contexts, current


def _service_account_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def _listing(names: Sequence[str]) -> str:
    return f"contexts: {', '.join(str(n) for n in names)}" if names else "it defines no contexts"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _reason(error: Exception) -> str:
    # urllib3 wraps the socket error: "<HTTPSConnection ...>: Failed to establish a new connection: [Errno 111] ..."
    text = _first_line(error)
    return text.split(">: ", 1)[-1]


def _status_message(error: Any) -> str:
    """The API server's Status message, or the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    # The client reports a TLS failure as a status-less exception whose reason is "SSLError\n<detail>".
    lines = [line.strip() for line in str(error.reason or "").splitlines() if line.strip()]
    return ": ".join(lines) if lines else "no message"


def _names_object(error: Any) -> bool:
    """A 404 about a named object (it does not exist), not about the resource type (no such API)."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        return False
    details = body.get("details") if isinstance(body, Mapping) else None
    return isinstance(details, Mapping) and bool(details.get("name"))


def _manifest(item: Mapping[str, Any]) -> dict[str, Any]:
    """The user's object: no status (the operator's, possibly with fields this client does not know),
    no managedFields (noise)."""
    body = {k: v for k, v in item.items() if k != "status"}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        body["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return body


# --- what the CLI and SDK use -------------------------------------------------------------------------


def read_cluster_schema(reference: str, *, context: str | None = None) -> tuple[ModelSchema, dict[str, Any]]:
    """The ModelSchema named by `cluster:NAMESPACE/NAME` (a `#N` is ignored here) and its manifest."""
    ref = parse_cluster_reference(reference)
    with connect(context) as registry:
        body = registry.get_schema(ref.namespace, ref.name)
    return parse_model_schema(body, str(replace(ref, version=None))), body


@dataclass(frozen=True)
class ResolvedSchema:
    """A schema reference (`FILE[#N]` or `cluster:NAMESPACE/NAME[#N]`) turned into one version."""

    reference: str
    schema: ModelSchema
    version: SchemaVersion
    body: dict[str, Any]
    """The ModelSchema manifest, as `overseer.checks` takes it."""
    namespace: str | None
    """Where the schema lives: the cluster namespace, or what the file's metadata says."""
    in_cluster: bool


def resolve_schema(reference: str, *, context: str | None = None) -> ResolvedSchema:
    """SchemaFileError for a bad reference or file, ClusterAccessError for the cluster."""
    where, number = _split_version(reference)
    if is_cluster_reference(where):
        schema, body = read_cluster_schema(where, context=context)
        return ResolvedSchema(
            reference, schema, pick_version(schema, number, where), body, schema.metadata.namespace, True
        )
    schema = read_model_schema(where)
    body = schema.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"status"})
    version = pick_version(schema, number, where)
    return ResolvedSchema(reference, schema, version, body, schema.metadata.namespace, False)


def deployment_namespaces(documents: Iterable[Document], default: str) -> list[str]:
    """The namespaces the ModelDeployments among `documents` go to (`default` for those naming none)."""
    found: dict[str, None] = {}
    for document in documents:
        body = document.body
        if _is_ours(body, "ModelDeployment"):
            found[_namespace_of(body) or default] = None
    return list(found)


def cluster_schema_documents(
    documents: Sequence[Document], local_schemas: Sequence[Document], registry: ClusterRegistry
) -> tuple[list[Document], list[str]]:
    """The cluster's ModelSchemas for the deployments among `documents`, as Documents named
    `cluster:NAMESPACE/NAME`, and the namespaces read.

    A ModelSchema given locally (the change under review) shadows the cluster's copy of the same
    name and namespace. The default namespace is read first: a deployment naming no namespace goes
    there (kubectl's rule), and `overseer.checks` matches it to the first schema of that name.
    """
    namespaces = sorted(
        deployment_namespaces(documents, registry.namespace), key=lambda ns: (ns != registry.namespace, ns)
    )
    local = {
        (_namespace_of(d.body) or registry.namespace, _name_of(d.body))
        for d in local_schemas
        if _is_ours(d.body, "ModelSchema")
    }
    found: list[Document] = []
    for namespace in namespaces:
        for body in sorted(registry.list_schemas(namespace), key=lambda b: _name_of(b) or ""):
            name = _name_of(body)
            if (namespace, name) in local:
                continue
            found.append(Document(f"{CLUSTER_PREFIX}{namespace}/{name}", 1, 1, body))
    return found, namespaces


@dataclass(frozen=True)
class ClusterSchemas:
    documents: list[Document]
    where: str | None
    """The registry's `where` (context and server), None when the cluster was not read."""
    default_namespace: str = "default"
    referenced: frozenset[str] = frozenset()
    """Sources (`cluster:NAMESPACE/NAME`) of the cluster schemas the deployments reference."""


def read_cluster_schemas(
    documents: Sequence[Document], local_schemas: Sequence[Document], *, context: str | None = None
) -> ClusterSchemas:
    """`overseer validate --schemas-from-cluster`: connect, read what the deployments need, close."""
    with connect(context) as registry:
        found, _ = cluster_schema_documents(documents, local_schemas, registry)
        referenced = frozenset(
            f"{CLUSTER_PREFIX}{_namespace_of(d.body) or registry.namespace}/{_schema_ref_name(d.body)}"
            for d in documents
            if _is_ours(d.body, "ModelDeployment")
        )
        return ClusterSchemas(found, registry.where, registry.namespace, referenced)


def adjust_problems(problems: Sequence[Problem], cluster: ClusterSchemas) -> list[Problem]:
    """The problems a change under review is answerable for: those of a cluster ModelSchema only
    when a deployment references it (someone else's broken schema must not fail this merge
    request), and an unresolved schemaRef saying that the cluster was asked too, and where."""
    adjusted: list[Problem] = []
    for problem in problems:
        if problem.source.startswith(CLUSTER_PREFIX) and problem.source not in cluster.referenced:
            continue
        unresolved = problem.kind == "ModelDeployment" and problem.path == "spec.schemaRef.name"
        if unresolved and "not found" in problem.message:
            namespace = problem.namespace or cluster.default_namespace
            note = f"not on the cluster either (namespace {namespace!r}, {cluster.where})"
            problem = replace(problem, message=f"{problem.message}; {note}")  # noqa: PLW2901
        adjusted.append(problem)
    return adjusted


def _schema_ref_name(body: Any) -> str | None:
    spec = body.get("spec") if isinstance(body, Mapping) else None
    ref = spec.get("schemaRef") if isinstance(spec, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) else None


def _is_ours(body: Any, kind: str) -> bool:
    return isinstance(body, Mapping) and body.get("kind") == kind and body.get("apiVersion") == API_VERSION


def _namespace_of(body: Any) -> str | None:
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    value = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) and value else None


def _name_of(body: Any) -> str | None:
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    value = metadata.get("name") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) and value else None


__all__ = [
    "CLUSTER_PREFIX",
    "ClusterAccessError",
    "ClusterReference",
    "ClusterRegistry",
    "ClusterSchemas",
    "ResolvedSchema",
    "adjust_problems",
    "cluster_schema_documents",
    "connect",
    "deployment_namespaces",
    "is_cluster_reference",
    "kubeconfig_paths",
    "parse_cluster_reference",
    "read_cluster_schema",
    "read_cluster_schemas",
    "resolve_schema",
]
