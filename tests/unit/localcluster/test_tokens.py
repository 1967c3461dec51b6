"""Projected ServiceAccount tokens are requested once and refreshed before they expire, as kubelet does."""

from __future__ import annotations

from localcluster.tokens import PodTokens, Token, parse_expiry

POD = {"metadata": {"name": "web-0", "namespace": "ns", "uid": "u-1"}, "spec": {"serviceAccountName": "web"}}


class FakeApi:
    def __init__(self, clock: list[float], extend_to: float | None = None) -> None:
        self.clock = clock
        self.requests: list[tuple[str, str, str | None, int, str, str]] = []
        self.extend_to = extend_to

    def __call__(self, ns: str, sa: str, audience: str | None, seconds: int, name: str, uid: str) -> tuple[str, float]:
        self.requests.append((ns, sa, audience, seconds, name, uid))
        expires = self.clock[0] + (self.extend_to or seconds)
        return f"token-{len(self.requests)}", expires


def test_a_token_is_bound_to_the_pod_and_reused_until_80_percent_of_its_lifetime() -> None:
    clock = [1000.0]
    api = FakeApi(clock)
    tokens = PodTokens(api, clock=lambda: clock[0])
    assert tokens.get(POD, None, 3600) == "token-1"
    assert api.requests == [("ns", "web", None, 3600, "web-0", "u-1")]
    clock[0] += 0.79 * 3600
    assert tokens.get(POD, None, 3600) == "token-1"
    clock[0] += 0.02 * 3600  # past 80%: refreshed while the old one is still valid
    assert tokens.get(POD, None, 3600) == "token-2"
    assert tokens.get(POD, "vault", 600) == "token-3"  # another audience, another token


def test_an_extended_token_is_still_refreshed_on_its_requested_lifetime() -> None:
    # kube-apiserver extends 3607 s tokens to a year (for old clients); kubelet still refreshes hourly.
    clock = [0.0]
    tokens = PodTokens(FakeApi(clock, extend_to=365 * 86400), clock=lambda: clock[0])
    assert tokens.get(POD, None, 3607) == "token-1"
    clock[0] = 0.81 * 3607
    assert tokens.get(POD, None, 3607) == "token-2"


def test_a_long_lived_token_is_refreshed_after_a_day() -> None:
    token = Token("t", issued_at=0, expires_at=7 * 86400, lifetime=7 * 86400)
    assert not token.needs_refresh(86400 - 1)
    assert token.needs_refresh(86400)


def test_expiry_timestamps_parse_as_utc() -> None:
    assert parse_expiry("1970-01-01T01:00:00Z") == 3600.0
