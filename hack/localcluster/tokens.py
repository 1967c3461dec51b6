"""Projected ServiceAccount tokens, as kubelet's token manager keeps them.

Each token comes from the TokenRequest API (bound to the pod, with the volume's audience and
expirationSeconds) and is requested again once 80% of its lifetime has passed or it is 24 hours old,
so a client that re-reads the file (client-go, the Python client, Kopf) never holds an expired one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_AGE = 24 * 3600.0
REFRESH_AT = 0.8  # of the requested lifetime, as kubelet does (minus its jitter)


@dataclass(frozen=True)
class Token:
    value: str
    issued_at: float  # epoch seconds
    expires_at: float  # epoch seconds, as the apiserver reported it
    lifetime: float  # the expirationSeconds asked for

    def needs_refresh(self, now: float) -> bool:
        # The apiserver may extend a token's expiry (3607 s tokens become a year); the requested
        # lifetime still drives the refresh, as for kubelet.
        refresh_at = min(self.expires_at, self.issued_at + self.lifetime) - (1 - REFRESH_AT) * self.lifetime
        return now >= refresh_at or now - self.issued_at >= MAX_AGE


# Asks the apiserver for a token: (namespace, service account, audience or None, expirationSeconds,
# pod name, pod uid) -> (token, expiry as epoch seconds).
TokenRequester = Callable[[str, str, str | None, int, str, str], tuple[str, float]]


def parse_expiry(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class PodTokens:
    """The tokens of one pod, keyed by (audience, expirationSeconds)."""

    def __init__(self, request: TokenRequester, clock: Callable[[], float] = time.time) -> None:
        self._request = request
        self._clock = clock
        self._tokens: dict[tuple[str | None, int], Token] = {}
        self._lock = threading.Lock()

    def get(self, pod: Mapping[str, Any], audience: str | None, expiration_seconds: int) -> str:
        key = (audience, expiration_seconds)
        with self._lock:
            now = self._clock()
            token = self._tokens.get(key)
            if token is None or token.needs_refresh(now):
                meta, spec = pod["metadata"], pod["spec"]
                value, expires_at = self._request(
                    meta["namespace"], spec.get("serviceAccountName") or "default", audience,
                    expiration_seconds, meta["name"], meta["uid"],
                )
                token = Token(value, now, expires_at, float(expiration_seconds))
                self._tokens[key] = token
            return token.value
