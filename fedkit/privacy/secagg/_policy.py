"""A client's own floor on the protocol parameters the server sends (client-side policy).

The server opens every secure-aggregation instance by sending its :class:`SecAggConfig`. A
semi-honest server sends what the operator configured, but a malicious one may lower the
Shamir threshold t (or the neighbourhood size k, or widen the clipping range) so that a few
colluding clients can rebuild an honest client's self-mask seed and pairwise keys from their
shares, and with them its input. A client cannot tell a lowered parameter from a configured
one, so it holds its own :class:`ClientPolicy` and refuses an opening request below it
before it creates any key (:meth:`ClientPolicy.check`): nothing secret leaves the client.

Default floors (each a field of :class:`ClientPolicy`):

* threshold ``t > min_threshold_fraction * (k + 1)``, i.e. with 0.5 a strict majority of
  each neighbourhood, the client itself included -- the threshold fedkit's server derives
  from its default ``secagg_threshold = 0.5``
  (``t = floor(threshold * (k + 1)) + 1``), so honest default rounds pass; and ``t >= 2``;
* neighbourhood ``k >= min(min_neighbours, n - 1)`` with ``min_neighbours = 2``: a cohort too
  small for the floor uses the complete graph, which is accepted;
* ring bits in ``{32, 64}``; no bound on the clipping range;
* a committed graph (``SecAggConfig.committed_graph``) only if ``require_committed_graph``:
  off by default; on, the client refuses a SecAgg+ instance whose graph the server and
  colluding clients could grind (a complete graph has nothing to grind and passes);
* the consistency round (``SecAggConfig.consistency_check``) only if
  ``require_consistency_check``: off by default; on, the client refuses any instance without
  signed keys and the consistency check, which an active server could otherwise attack with
  split views of who dropped.

Order: the check runs on the opening request, before key generation; the later stages
already refuse any change of the parameters (``docs/secagg.md``, "Client-side policy").

References:
    K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
    Learning", CCS 2017, §4 (t > n/2 against an active server's split views of the survivors).
    J. Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS
    2020, §3-4: security against a fraction of colluders holds w.h.p. only when every
    neighbourhood has ``k = O(log n)`` members and ``t`` a fixed fraction of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.secagg._config import SecAggConfig, SecAggConfigError, SecAggProtocolError

__all__ = ["ClientPolicy", "SecAggPolicyError"]


class SecAggPolicyError(SecAggProtocolError):
    """The server's parameters are below the client's own floor; the client refuses."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class ClientPolicy:
    """The floor a client holds the server's protocol parameters to.

    Args:
        min_threshold_fraction: The threshold must exceed this fraction of the
            neighbourhood (the client included): ``t > f * (k + 1)``; in ``[0, 1)``.
            0.5 (default) asks for a strict majority.
        min_threshold: Absolute floor on t, at least 2 (default 2).
        min_neighbours: Floor on the graph degree k, applied as ``min(min_neighbours,
            n - 1)`` so that a small complete graph passes; at least 1 (default 2). Bell et
            al. (CCS 2020, Thm. 3.6) need ``k`` of order ``log n`` for their guarantee; a
            deployment that knows its cohort size should set about ``2 * ceil(log2 n)``
            (e.g. 10 for n = 30). The default stays at 2 because the cohort size ``n`` is
            itself the server's claim at this point, and fedkit's own SecAgg+ runs with
            small ``secagg_neighbours`` must keep working.
        allowed_bits: Ring sizes the client accepts (default ``{32, 64}``).
        max_clip: Upper bound on the clipping range; ``None`` (default) = no bound. A wider
            range than the client's updates need costs precision, not privacy, unless the
            server also lowers the threshold.
        require_committed_graph: Refuse a SecAgg+ instance (a graph that is not complete)
            without ``committed_graph``, whose graph colluding clients could choose by
            re-rolling their keys (docs/secagg.md, "Committed graph"). Default False.
        require_consistency_check: Refuse an instance without ``consistency_check`` (signed
            keys and the consistency round against an active server's split views,
            docs/secagg.md, "Consistency round"), on any graph. Default False.

    Raises:
        SecAggConfigError: On an invalid field.

    Example:
        >>> cfg = SecAggConfig(num_clients=10, vector_length=4, threshold=2)
        >>> try:
        ...     ClientPolicy().check(cfg, client_id=3)
        ... except SecAggPolicyError as exc:
        ...     print(str(exc).split(" (")[0])
        client 3 refuses the round: threshold t = 2 is below its floor 6
    """

    min_threshold_fraction: float = 0.5
    min_threshold: int = 2
    min_neighbours: int = 2
    allowed_bits: frozenset[int] = frozenset({32, 64})
    max_clip: float | None = None
    require_committed_graph: bool = False
    require_consistency_check: bool = False

    def __post_init__(self) -> None:
        f = self.min_threshold_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f < 1:
            raise SecAggConfigError(f"min_threshold_fraction = {f!r}, expected a number in "
                                    "[0, 1)")
        if not _is_int(self.min_threshold) or self.min_threshold < 2:
            raise SecAggConfigError(f"min_threshold = {self.min_threshold!r}, expected an "
                                    "integer >= 2")
        if not _is_int(self.min_neighbours) or self.min_neighbours < 1:
            raise SecAggConfigError(f"min_neighbours = {self.min_neighbours!r}, expected an "
                                    "integer >= 1")
        bits = frozenset(self.allowed_bits)
        if not bits or not bits <= {32, 64}:
            raise SecAggConfigError(f"allowed_bits = {sorted(self.allowed_bits)}, expected a "
                                    "non-empty subset of {32, 64}")
        object.__setattr__(self, "allowed_bits", bits)
        c = self.max_clip
        if c is not None and (isinstance(c, bool) or not isinstance(c, int | float)
                              or not math.isfinite(c) or c <= 0):
            raise SecAggConfigError(f"max_clip = {c!r}, expected a positive number or None")
        for name in ("require_committed_graph", "require_consistency_check"):
            if not isinstance(getattr(self, name), bool):
                raise SecAggConfigError(f"{name} = {getattr(self, name)!r}, expected a bool")

    def threshold_floor(self, degree: int) -> int:
        """The least threshold accepted in a neighbourhood of ``degree + 1`` clients."""
        return max(self.min_threshold,
                   math.floor(self.min_threshold_fraction * (degree + 1)) + 1)

    def check(self, config: SecAggConfig, *, client_id: int | None = None) -> None:
        """Accept ``config`` or raise, naming every parameter below this client's floor.

        Args:
            config: The parameters of the opening request.
            client_id: Named in the error.

        Raises:
            SecAggPolicyError: A parameter below the floor (the round goes on without this
                client, or aborts if too few accept).
        """
        degree = neighbourhood_size(config.num_clients, config.num_neighbours)
        problems = []
        floor_t = self.threshold_floor(degree)
        if config.threshold < floor_t:
            size = degree + 1
            by_fraction = math.floor(self.min_threshold_fraction * size) + 1
            if by_fraction < self.min_threshold:
                why = f"its minimum threshold {self.min_threshold}"
            elif self.min_threshold_fraction == 0.5:
                why = f"a strict majority of its neighbourhood of {size}"
            else:
                why = (f"more than {self.min_threshold_fraction:g} of its neighbourhood of "
                       f"{size}")
            problems.append(f"threshold t = {config.threshold} is below its floor {floor_t} "
                            f"({why})")
        floor_k = min(self.min_neighbours, config.num_clients - 1)
        if degree < floor_k:
            problems.append(f"neighbourhood size k = {degree} is below its floor {floor_k} "
                            f"(secagg-min-neighbours = {self.min_neighbours}, cohort of "
                            f"{config.num_clients})")
        if config.bits not in self.allowed_bits:
            problems.append(f"ring bits = {config.bits} is not allowed (allowed: "
                            f"{sorted(self.allowed_bits)})")
        if self.max_clip is not None and config.clip > self.max_clip:
            problems.append(f"clipping range clip = {config.clip:g} exceeds its maximum "
                            f"{self.max_clip:g}")
        if (self.require_committed_graph and not config.committed_graph
                and degree < config.num_clients - 1):
            problems.append(f"the SecAgg+ graph (k = {degree} of a cohort of "
                            f"{config.num_clients}) is not committed (committed_graph off), "
                            "but this client requires it (secagg-require-committed-graph)")
        if self.require_consistency_check and not config.consistency_check:
            problems.append("the consistency check is off (consistency_check), but this "
                            "client requires it (secagg-require-consistency-check)")
        if problems:
            who = "this client" if client_id is None else f"client {client_id}"
            raise SecAggPolicyError(f"{who} refuses the round: " + "; ".join(problems))
