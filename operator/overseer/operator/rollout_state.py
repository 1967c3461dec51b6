"""Pure records of a hot-swap rollout: model identities, what a pod answered, and the state the
operator persists between reconciles.

Three kinds of records, all free of I/O:

- identities: `ModelKey` (what a pod's swap protocol treats as "the same model": name, version,
  digest and the schema-defaulted config) and `Release` (a key with its model document);
- observations, the typed answers of a pod's admin API that `podclient` produces and `plan`
  consumes: `PodAnswer` / `PodUnavailable` for `GET /admin/model`, `SwapOutcome` for a
  `PUT /admin/model` (followed by a confirming GET);
- `RolloutState`, what the operator persists before acting (docs/rollout.md, "Persisted state"):
  the rollout's phase, its target, the last fully served model (the rollback target) with their
  whole documents, the pods with a PUT in flight, and the failure that stopped it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from overseer.api.model_document import JSONObject, ModelDocument
from overseer.schema.validation import validate_model_config

STATE_FORMAT = 1  # version of the persisted JSON; a record of another version is not trusted

# --- identities -----------------------------------------------------------------------------------


def config_fingerprint(config: Any) -> str:
    """A short hash of a schema-defaulted config ({labels, metadata, customObjects}).

    The operator computes it from the document it sends, the pod's answer carries the config it
    applied: both sides derive it with the same `validate_model_config`, so equal configs hash equal.
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class _Record(BaseModel):
    """A persisted record. Unknown fields are refused (`extra="forbid"`): a record written by a
    newer operator that this one does not understand is treated as lost, not half-read. Fields
    added after format 1 was released are left out of the JSON while they hold their default,
    so that a record without them stays readable by the operator before them (a `helm rollback`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_added_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            fields = type(self).model_fields
            for name in self.ADDED_FIELDS:
                if name in data and getattr(self, name) == fields[name].default:
                    del data[name]
        return data


@dataclass(frozen=True, slots=True)
class ModelKey:
    """What a serving pod treats as the same model: the same weights with the same effective config.

    Mirrors the pod's own no-op rule (`Desired.same_as`: identity and defaulted config): a
    document whose key equals the one a pod serves is a no-op there, one that differs is a swap.
    The schema version is deliberately not part of it (the pod ignores it for the same reason).
    A plain dataclass (pydantic validates it inside the records): the planner compares keys a lot.
    """

    name: str
    version: str
    digest: str
    config: str  # config_fingerprint of the defaulted labels/metadata/customObjects

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


class Release(_Record):
    """A model document (what the ConfigMap holds and a PUT sends) with its key."""

    key: ModelKey
    document_json: str = Field(description="The model document, canonical JSON (hashable, compact).")

    @model_validator(mode="after")
    def _a_model_document_of_its_key(self) -> Release:
        # A record read back from the ConfigMap is untrusted (anyone may edit a ConfigMap): its
        # documents must be model documents whose key is the one recorded - the same model and the
        # same schema-defaulted config, recomputed here - or the whole record is refused (the
        # planner then starts from what the pods serve). The config check is the bounded one
        # admission runs (its compiled sections are cached).
        document = ModelDocument.model_validate_json(self.document_json)
        if key_of(document) != self.key:
            raise ValueError("the document is not of the model and config its key names")
        return self

    @property
    def document(self) -> JSONObject:
        data: JSONObject = json.loads(self.document_json)
        return data

    @property
    def schema_version(self) -> int | None:
        version = self.document.get("schema", {}).get("version")
        return version if isinstance(version, int) else None


def key_of(document: ModelDocument) -> ModelKey:
    """The key of a model document: its model's identity and its schema-defaulted config."""
    model = document.model
    config = validate_model_config(document.schema_, model.labels, model.metadata, model.custom_objects).defaulted
    return ModelKey(name=model.name, version=model.version, digest=model.digest, config=config_fingerprint(config))


def release_of(document: ModelDocument) -> Release:
    """The release of a validated model document (spec.model with its schema snapshot)."""
    wire = document.to_wire()
    # Built from the document itself: the validator's re-check of a record read back (a second
    # config validation on the event loop per reconcile) has nothing to catch here.
    return Release.model_construct(
        key=key_of(document), document_json=json.dumps(wire, sort_keys=True, separators=(",", ":"))
    )


# --- observations: what a pod's admin API answered ---------------------------------------------------

PodAdminState = Literal["serving", "loading", "failed", "mixed"]
"""serving: every worker serves `served`; loading: no model yet (starting); failed: a worker
failed to reach the pod's model (readiness is 503); mixed: workers disagree (a multi-worker swap
between its followers' switch and the leader's)."""


@dataclass(frozen=True)
class PodAnswer:
    """`GET /admin/model` answered: what the pod serves."""

    served: ModelKey | None  # None while the pod loads its first model
    state: PodAdminState
    schema_version: int | None = None
    generation: int | None = None
    error: str | None = None  # a worker's last failure, as the pod reports it


UnavailableKind = Literal["unreachable", "timeout", "unauthorized", "not_ready", "bad_answer"]


@dataclass(frozen=True)
class PodUnavailable:
    """`GET /admin/model` did not tell what the pod serves, and why."""

    kind: UnavailableKind
    message: str


Observation = PodAnswer | PodUnavailable


@dataclass(frozen=True)
class Swapped:
    """The PUT was accepted; `served` is what the confirming GET saw afterwards (None if it failed)."""

    served: ModelKey | None
    changed: bool
    seconds: float | None = None


@dataclass(frozen=True)
class SwapRefused:
    """The pod answered the PUT with an error: it keeps (or went back to) its previous model.

    `reason` is the pod's `error.reason` (digest_mismatch, fetch_failed, load_failed, smoke_failed,
    invalid_config, worker_failed, ...), or `bad_answer` for an answer that is not the pod's API.
    """

    reason: str
    message: str
    status: int | None = None


@dataclass(frozen=True)
class SwapUndelivered:
    """The PUT never reached the swap (connection refused, 401, 503): nothing changed; safe to retry."""

    kind: Literal["unreachable", "unauthorized", "not_ready"]
    message: str


@dataclass(frozen=True)
class SwapLost:
    """The PUT was sent but its answer never came: the swap may still be running on the pod."""

    kind: Literal["timeout", "connection_lost"]
    message: str


SwapResult = Swapped | SwapRefused | SwapUndelivered | SwapLost


@dataclass(frozen=True)
class SwapOutcome:
    """The end of one PUT the operator sent: which pod, which model it was asked to take, the result.

    `uid` and `restarts` say which run of the pod's serving process the PUT was sent to (the
    executor copies them from the `Swap`): an answer of a PUT sent before the pod restarted is
    stale, and is matched to no later PUT to the same pod.
    """

    pod: str
    key: ModelKey
    result: SwapResult
    uid: str = ""
    restarts: int = 0


# --- persisted state ----------------------------------------------------------------------------------

Phase = Literal["Rolling", "RollingBack", "Complete", "RolledBack", "Halted", "RollbackFailed"]
"""Rolling: pods go to the target. RollingBack: a pod refused the target; pods go back to the
stable model. Complete: every pod serves the target (now the stable model). RolledBack: every pod
serves the stable model again after a refusal. Halted: a pod refused the target and autoRollback is
off (or there is nothing to go back to): hands off. RollbackFailed: a pod refused the stable model
during a rollback: hands off."""

ACTIVE_PHASES: frozenset[str] = frozenset({"Rolling", "RollingBack"})
HOLDING_PHASES: frozenset[str] = frozenset({"Halted", "RollbackFailed"})
SwapPurpose = Literal["rollout", "rollback", "repair"]
Strategy = Literal["HotSwap", "Rolling"]


class InFlight(_Record):
    """A PUT the operator sent (or is about to send), persisted before it is sent."""

    pod: str
    uid: str
    restarts: int = Field(ge=0, description="The pod's container restart count when the PUT was sent.")
    key: ModelKey
    earlier: bool = Field(
        default=False,
        description="An earlier PUT to the pod may still run there (its answer was lost): only an "
        "answer to a later PUT, which the pod's swap lock queues behind it, tells it ended.",
    )
    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset({"undecided", "dropped"})

    undecided: bool = Field(
        default=False,
        description="The PUT's connection dropped: the pod's serving process may have died (its new "
        "restart count shows later). No PUT is sent on top; what the pod answers next decides.",
    )
    dropped: int = Field(
        default=0, ge=0, description="PUTs to this run of the pod whose connection dropped while it kept running."
    )


class RestartBaseline(_Record):
    """A pod's serving-container restart count when the rollout first saw it: a crash loop is
    counted in restarts since (the ones from before the rollout are not the target's)."""

    uid: str
    restarts: int = Field(ge=0)


class Failure(_Record):
    """Why a rollout stopped, or why a pod could not be repaired."""

    pod: str
    uid: str = ""
    key: ModelKey = Field(description="The model the pod refused.")
    reason: str = Field(description="The pod's reason (digest_mismatch, load_failed, timeout, ...).")
    message: str
    at: datetime
    attempts: int = Field(default=1, ge=1)
    retry_at: datetime | None = Field(default=None, description="Drift repair only: when to try this pod again.")


class RolloutState(_Record):
    """What the operator persists about a deployment's rollout, before it acts on it.

    Stored next to the model document in the deployment's ConfigMap and written in the same
    update, so that the document pods start from and the record of what it is (the target or the
    rollback) never disagree, whenever the operator stops.
    """

    ADDED_FIELDS: ClassVar[frozenset[str]] = frozenset({"progressed_at", "restart_baselines"})

    format: int = STATE_FORMAT
    phase: Phase
    target: Release = Field(description="The model this rollout aims at (spec.model when it started).")
    stable: Release | None = Field(
        default=None, description="The last model every pod served: what a rollback goes back to."
    )
    from_key: ModelKey | None = Field(default=None, description="The model the rollout moves away from.")
    started_at: datetime
    progressed_at: datetime | None = Field(
        default=None,
        description="The last step that changed this record or sent a PUT while rolling out or back "
        "(the progress deadline).",
    )
    finished_at: datetime | None = None
    attempt: str = Field(default="", description="The retry token the rollout was started with.")
    strategy: Strategy = Field(default="HotSwap", description="spec.rollout.strategy when the rollout started.")
    in_flight: tuple[InFlight, ...] = ()
    failure: Failure | None = Field(default=None, description="The refusal that stopped this rollout.")
    rollback_failure: Failure | None = Field(default=None, description="A refusal of the rollback itself.")
    repairs_failed: tuple[Failure, ...] = Field(
        default=(), description="Drift repairs a pod refused; retried after `retry_at`."
    )
    superseded: tuple[ModelKey, ...] = Field(
        default=(), description="Targets this rollout replaced before they were fully served."
    )
    restart_baselines: tuple[RestartBaseline, ...] = Field(
        default=(), description="Rolling out or back: each pod's restart count when the rollout first saw it."
    )

    @model_validator(mode="after")
    def _a_phase_with_what_it_needs(self) -> RolloutState:
        # A rollback, rolled back or refused rollback is of a stable model: a record of one
        # without it (hand-edited, or from a broken writer) is not trusted.
        if self.phase in ("RollingBack", "RolledBack", "RollbackFailed") and self.stable is None:
            raise ValueError(f"phase {self.phase} without a stable model to go back to")
        return self

    @property
    def wanted(self) -> Release:
        """The model pods should serve in this phase; also what the ConfigMap holds."""
        if self.phase in ("RollingBack", "RolledBack", "RollbackFailed") and self.stable is not None:
            return self.stable
        return self.target

    def configmap_document(self) -> JSONObject:
        """The model document new pods start from."""
        return self.wanted.document

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)

    @classmethod
    def from_json(cls, text: str | None) -> RolloutState | None:
        """Parse a persisted record; None when absent, unreadable or of another format (the
        planner then starts from what the pods serve - docs/rollout.md, "Lost state")."""
        if not text:
            return None
        try:
            state = cls.model_validate_json(text)
        except (ValidationError, ValueError, RecursionError):
            return None
        return state if state.format == STATE_FORMAT else None
