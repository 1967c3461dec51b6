"""The operator's one settings object (env prefix OVERSEER_), built once at start-up.

The same variables configure `kopf run -m overseer.operator` (the container's command) and the
embedded runner `python -m overseer.operator` (local mode; its flags override the environment).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from overseer.version import version

FIELD_MANAGER = "schema-overseer"
"""The server-side apply field manager and the Events' reporting component."""


def package_version() -> str:
    return version()


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OVERSEER_", extra="ignore")

    # --- the cluster -------------------------------------------------------------------------
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig to use; empty: in-cluster config when running in a pod, else $KUBECONFIG "
        "or ~/.kube/config.",
    )
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to serve (comma-separated); empty serves all namespaces.",
    )
    api_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Deadline of one Kubernetes API call.")

    # --- serving pods ------------------------------------------------------------------------
    serving_image: str = Field(
        default_factory=lambda: f"schema-overseer-serving:{package_version()}",
        min_length=1,
        description="Serving image of ModelDeployments that do not set spec.serving.image.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"

    # --- admission webhooks ------------------------------------------------------------------
    webhook_mode: Literal["url", "service", "none"] = Field(
        default="service",
        description="service: a Service routes the webhooks to this pod and the Helm chart registers them; "
        "url: the operator registers them itself with a url clientConfig (local mode); none: no webhooks.",
    )
    webhook_addr: str = Field(default="0.0.0.0", description="Address the webhook server listens on.")
    webhook_port: int = Field(default=9443, ge=1, le=65535)
    webhook_host: str = Field(
        default="127.0.0.1",
        description="url mode: the host the API server calls (an IP literal; the certificate names it).",
    )
    webhook_cert_dir: Path = Field(
        default=Path("/tmp/overseer-webhook-certs"),  # an emptyDir or a mounted Secret in a pod
        description="tls.crt, tls.key (and ca.crt): mounted from a Secret in service mode; made here in url mode.",
    )
    webhook_configuration_name: str = Field(
        default="schema-overseer",
        description="Name of the Validating/MutatingWebhookConfiguration (url mode registers them).",
    )
    webhook_timeout_seconds: int = Field(default=5, ge=1, le=5, description="timeoutSeconds of each webhook.")
    admission_check_timeout_s: float = Field(
        default=3.0,
        gt=0,
        lt=5,
        description="Deadline of the checks of one admission request (below the webhooks' timeoutSeconds).",
    )

    # --- reconciliation ----------------------------------------------------------------------
    resync_interval_s: float = Field(
        default=300.0,
        ge=1,
        description="Every object is reconciled at least this often; watches of the owned objects catch "
        "most drift at once, this catches the rest (a deleted Secret, a missed event).",
    )

    # --- rollouts (docs/rollout.md) -----------------------------------------------------------
    drift_check_interval_s: float = Field(
        default=60.0,
        ge=1,
        description="How often a deployment whose rollout is done is checked again: every pod is asked what it "
        "serves, and a pod serving another model is put back (drift repair).",
    )
    rollout_progress_deadline_s: float = Field(
        default=600.0,
        ge=10,
        description="A HotSwap rollout or rollback that made no progress (no swap sent or answered, no phase "
        "change) for this long while pods do not answer, start or settle: Degraded ProgressDeadlineExceeded "
        "naming them, polled less often; it is not rolled back.",
    )
    swap_timeout_s: float = Field(
        default=300.0,
        ge=5,
        le=3600,
        description="Deadline of one PUT /admin/model (fetch, load, warm-up and smoke test on the pod); a pod "
        "that does not answer in time refuses the model (Timeout).",
    )
    pod_query_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Deadline of one GET /admin/model (what a pod serves).",
    )

    # --- observability -----------------------------------------------------------------------
    metrics_addr: str = Field(default="0.0.0.0", description="Address of the Prometheus /metrics endpoint.")
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 disables the metrics endpoint.")
    liveness_port: int = Field(default=8081, ge=0, le=65535, description="Kopf's /healthz (embedded runner).")
    log_format: Literal["text", "json"] = "text"

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_host")
    @classmethod
    def _ip_literal(cls, host: str) -> str:
        # The url clientConfig and the certificate's IP SAN must agree: a literal, never a name.
        try:
            return str(ipaddress.ip_address(host.strip()))
        except ValueError:
            raise ValueError(f"must be an IP address literal, not {host!r}") from None

    @property
    def version(self) -> str:
        return package_version()


__all__ = ["FIELD_MANAGER", "OperatorSettings", "package_version"]
