"""Configuration, stages and errors of fedkit's secure aggregation (see ``secagg``)."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.quantize import check_headroom, max_scale

__all__ = [
    "SecAggAbort",
    "SecAggConfig",
    "SecAggConfigError",
    "SecAggError",
    "SecAggProtocolError",
    "SecAggStateError",
    "Stage",
]

_U64 = (1 << 64) - 1
_OPTIONS = ("committed_graph", "consistency_check")  # bool fields to_fields leaves out when off


class SecAggError(Exception):
    """Base class of every secure-aggregation error."""


class SecAggConfigError(SecAggError, ValueError):
    """A :class:`SecAggConfig` field is invalid."""


class SecAggProtocolError(SecAggError, ValueError):
    """A protocol message was rejected; the receiver's state is unchanged.

    On the server, the sender is then treated as dropped. On a client, the client stops
    (it refuses every later stage) and the server sees it as dropped.
    """


class SecAggStateError(SecAggError, RuntimeError):
    """A one-shot state machine was called twice, out of order, or after a failure."""


class SecAggAbort(SecAggError):
    """The round cannot complete securely (too few clients or shares); nothing is output."""


class Stage(enum.Enum):
    """The stages of the protocol, in protocol order.

    The four stages of the semi-honest protocol always run; an optional stage runs only when
    its option of :class:`SecAggConfig` is on (:attr:`SecAggConfig.stages`):
    ``REVEAL_NONCE`` with ``committed_graph``, ``CONSISTENCY_CHECK`` with
    ``consistency_check``.
    """

    ADVERTISE_KEYS = "advertise_keys"
    REVEAL_NONCE = "reveal_nonce"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASK = "unmask"


def _check_int(name: str, value: object, low: int, high: int = _U64) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SecAggConfigError(f"{name}={value!r} must be an integer in [{low}, {high}]")


def _check_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SecAggConfigError(f"{name}={value!r} must be a finite number")
    if value <= 0:
        raise SecAggConfigError(f"{name}={value!r} must be positive")


@dataclass(frozen=True, kw_only=True)
class SecAggConfig:
    """Parameters of one secure-aggregation instance (one round of one run).

    Args:
        num_clients: Cohort size n: the most clients that may advertise keys. Also the
            ``n`` of the headroom rule.
        vector_length: Length m of every client's real vector (the weight is appended).
        threshold: Shamir threshold t per neighbourhood (the client itself included):
            ``2 <= t <= degree + 1``. Below t survivors a round aborts.
        num_neighbours: Graph degree k (rounded up to even); ``None`` or ``>= n - 1`` gives
            the complete graph (Bonawitz et al.'s SecAgg).
        clip: Inputs are clipped to ``[-clip, clip]`` before quantisation.
        bits: Ring Z_{2^bits}: 32 (default, ``uint32``) or 64.
        scale: Fixed-point scale; ``None`` picks the largest power of two that passes the
            headroom rule ``n * ceil(max(clip, 1) * scale) <= 2^(bits-1) - 1``.
        max_weight: Upper bound of a client weight (e.g. example count); weights travel as
            ``weight / max_weight`` inside the masked vector.
        round_id: Round identifier, bound into every derived key and associated data.
        run_id: Run identifier, bound likewise.
        committed_graph: Fix the SecAgg+ graph seed by commit-reveal (stage
            ``REVEAL_NONCE``): each client commits to a fresh nonce with its keys, the server
            commits to the roster, then every member reveals its nonce and the seed hashes
            them all, so no party -- colluders who see the honest keys first included -- can
            choose the graph. Costs one round trip (docs/secagg.md, "Committed graph").
        consistency_check: Run Bonawitz et al.'s signed keys and ConsistencyCheck round
            (stage ``CONSISTENCY_CHECK`` between masked input and unmask) against an active
            server: every client signs its keys with a long-term Ed25519 key and checks
            every roster entry against the operator's key list
            (:mod:`fedkit.privacy.secagg.signing`), then signs the set of survivors and
            reveals shares only once enough clients signed the very same set, so the server
            cannot show clients different views of who dropped. Each client needs a
            :class:`~fedkit.privacy.secagg.signing.SigningIdentity`; costs one round trip
            (docs/secagg.md, "Consistency round").

    Raises:
        SecAggConfigError: On an invalid field.
        HeadroomError: If an explicit ``scale`` overflows the ring.

    Example:
        >>> cfg = SecAggConfig(num_clients=10, vector_length=4, threshold=6)
        >>> cfg.resolved_scale == 2.0**27
        True
    """

    num_clients: int
    vector_length: int
    threshold: int
    num_neighbours: int | None = None
    clip: float = 1.0
    bits: int = 32
    scale: float | None = None
    max_weight: float = 1.0
    round_id: int = 0
    run_id: int = 0
    committed_graph: bool = False
    consistency_check: bool = False
    resolved_scale: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int("num_clients", self.num_clients, 2, 1 << 20)
        _check_int("vector_length", self.vector_length, 1, (1 << 31) - 1)
        if self.num_neighbours is not None:
            _check_int("num_neighbours", self.num_neighbours, 1, _U64)
        degree = neighbourhood_size(self.num_clients, self.num_neighbours)
        _check_int("threshold", self.threshold, 2, degree + 1)
        _check_float("clip", self.clip)
        if self.bits not in (32, 64):
            raise SecAggConfigError(f"bits={self.bits!r} unsupported, expected 32 or 64")
        _check_float("max_weight", self.max_weight)
        _check_int("round_id", self.round_id, 0)
        _check_int("run_id", self.run_id, 0)
        for option in _OPTIONS:
            if not isinstance(getattr(self, option), bool):
                raise SecAggConfigError(
                    f"{option}={getattr(self, option)!r} must be a bool (True or False)"
                )
        bound = self.element_bound
        if self.scale is None:
            scale = max_scale(self.num_clients, bound, self.bits)
        else:
            _check_float("scale", self.scale)
            check_headroom(self.num_clients, bound, self.scale, self.bits)
            scale = float(self.scale)
        object.__setattr__(self, "resolved_scale", scale)

    @classmethod
    def secagg_plus(
        cls, *, num_clients: int, vector_length: int, num_neighbours: int | None = None, **kwargs
    ) -> SecAggConfig:
        """Return a config with the common threshold ``t = floor((degree + 1) / 2) + 1``.

        ``num_neighbours=None`` picks ``k = 2 * ceil(log2 n)`` (complete graph for small n).
        """
        if num_neighbours is None:
            num_neighbours = 2 * math.ceil(math.log2(max(num_clients, 2)))
        degree = neighbourhood_size(num_clients, num_neighbours)
        threshold = min((degree + 1) // 2 + 1, degree + 1)
        return cls(
            num_clients=num_clients,
            vector_length=vector_length,
            threshold=threshold,
            num_neighbours=num_neighbours,
            **kwargs,
        )

    def to_fields(self) -> dict[str, int | float]:
        """The init fields as plain numbers: the one encoding of a config, on the wire
        (``secagg-*`` record entries) and in a client's saved state.

        ``num_neighbours = None`` becomes 0 and ``scale`` its resolved value, so
        ``type(cfg).from_fields(cfg.to_fields()).to_fields() == cfg.to_fields()``. An option
        that is off (``committed_graph``, ``consistency_check``) is left out, so a config
        without options encodes exactly as before they existed, and a field set without it
        reads as off.
        """
        out: dict[str, int | float] = {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONS and not value:
                continue
            if f.name == "num_neighbours":
                value = 0 if value is None else value
            elif f.name == "scale":
                value = float(self.resolved_scale)
            out[f.name] = value
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, object]) -> SecAggConfig:
        """The config :meth:`to_fields` encoded.

        Raises:
            SecAggConfigError: A missing, unknown or invalid field.
        """
        try:
            values = dict(fields)
            values["num_neighbours"] = int(values["num_neighbours"]) or None  # type: ignore
            return cls(**values)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SecAggConfigError):
                raise
            raise SecAggConfigError(f"invalid {cls.__name__} fields: {exc}") from exc

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages this instance runs, in protocol order (optional ones only when on)."""
        off = set()
        if not self.committed_graph:
            off.add(Stage.REVEAL_NONCE)
        if not self.consistency_check:
            off.add(Stage.CONSISTENCY_CHECK)
        return tuple(s for s in Stage if s not in off)

    @property
    def element_bound(self) -> float:
        """Bound on every encoded element: ``max(clip, 1)`` (the weight fraction is <= 1)."""
        return max(float(self.clip), 1.0)

    @property
    def wire_length(self) -> int:
        """Number of ring elements in a masked vector: ``vector_length + 1`` (the weight)."""
        return self.vector_length + 1
