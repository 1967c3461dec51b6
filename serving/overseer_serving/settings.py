"""The serving process's one settings object (env prefix OVERSEER_), built once at start-up.

`overseer serve` builds it from the environment plus its flags, then exports the resolved values
back into the environment so the BentoML worker processes it spawns build the very same object.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_NAME = "overseer-yolo"  # the BentoML service name (config key, logs)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OVERSEER_", extra="ignore")

    model_file: Path | None = Field(default=None, description="The start-up model document (JSON or YAML).")
    admin_token_file: Path | None = Field(
        default=None, description="Bearer token for /admin/model; re-read on each call so rotation works."
    )
    # Loopback by default: a process started by hand must not be reachable from the network.
    # The operator's pods pass --host with the pod IP. An IP literal, bound exactly (0.0.0.0 and
    # :: are literals too, for all addresses); never a name, whose resolution could bind elsewhere.
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="BentoML worker processes (each holds a model).")
    state_dir: Path | None = Field(
        default=None, description="Shared desired-state directory; `overseer serve` makes a private one."
    )
    cache_dir: Path | None = Field(default=None, description="Verified weights cache; default <state_dir>/weights.")
    device: str = "cpu"

    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_document_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_weights_bytes: int = Field(default=2 * 1024**3, ge=1)
    fetch_timeout_s: float = Field(default=60.0, gt=0)
    # s3://: `auto` = virtual-hosted on AWS, path-style with an endpoint override (S3-compatible stores).
    s3_addressing_style: str = Field(default="auto", pattern="^(auto|path|virtual)$")
    # Followers poll the desired-state file; the leader waits this long for all to follow.
    poll_interval_s: float = Field(default=0.2, gt=0)
    follow_timeout_s: float = Field(default=120.0, gt=0)
    log_format: str = Field(default="json", pattern="^(json|text)$")
    # Set by `overseer serve` for its workers: whom to stop when start-up fails.
    supervisor_pid: int | None = None

    @field_validator("host")
    @classmethod
    def _ip_literal(cls, host: str) -> str:
        try:
            return str(ipaddress.ip_address(host.strip()))
        except ValueError:
            raise ValueError(
                f"must be an IP address literal (for example 127.0.0.1, the pod IP, or 0.0.0.0 for all addresses), "
                f"not {host!r}"
            ) from None

    @property
    def weights_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        if self.state_dir is None:
            raise RuntimeError("state_dir is not set: `overseer serve` sets it before workers start")
        return self.state_dir / "weights"

    def to_env(self) -> dict[str, str]:
        """The environment that rebuilds this object in a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                env[f"OVERSEER_{name.upper()}"] = str(value)
        return env
