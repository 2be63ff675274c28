"""The shell every fedkit strategy shares: a Flower Message-API strategy around pure rules.

A fedkit strategy is one subclass of :class:`FedkitStrategy` that fills in four hooks:

* :meth:`~FedkitStrategy.select_clients` -- which online clients train this round (default:
  uniformly at random, seeded by round, over stable client ids);
* :meth:`~FedkitStrategy.client_instructions` -- extra per-client config and records;
* :meth:`~FedkitStrategy.aggregate` -- fold the validated replies into the algorithm's state
  (pure functions in :mod:`fedkit.algorithms.rules`) and return the new global arrays;
* :meth:`~FedkitStrategy.state_dict` / :meth:`~FedkitStrategy.load_state_dict` -- checkpoints.

Everything else -- the node-id to client-id directory, how many clients take part
(:mod:`fedkit.algorithms.participation`), message construction, reply validation
(:mod:`fedkit.algorithms.replies`), the message contract (:mod:`fedkit.algorithms.contract`),
metrics (:mod:`fedkit.algorithms.metrics`) and federated evaluation -- lives here once, so a
strategy is one level of subclassing that holds only the algorithm's glue, and validation
happens once, at the boundary.

A fedkit strategy is a Flower strategy: Flower's ``Strategy.start`` and fedkit's
:func:`~fedkit.flower.apps.loop.run_rounds` run it alike, and its constructor takes the
keyword arguments of Flower's ``FedAvg`` with their defaults and meanings (``fraction_train``,
``min_train_nodes``, ``min_available_nodes``, ``fraction_evaluate``, ``min_evaluate_nodes``,
``weighted_by_key``, ``arrayrecord_key``, ``configrecord_key``, ``train_metrics_aggr_fn``,
``evaluate_metrics_aggr_fn``), or fedkit's ``clients_per_round``. The message contract with
the ClientApp is in docs/flower.md, "Strategies".

Strategies that can work from the sum of the clients' updates alone set
``supports_secure_aggregation`` and fill in :meth:`~FedkitStrategy.secure_vector_spec` and
:meth:`~FedkitStrategy.fold_secure_sum`; :mod:`fedkit.flower.secagg.workflow` then runs the
round's training under secure aggregation and hands the unmasked sum to
:meth:`~FedkitStrategy.aggregate_secure`.
Replies of kind ``model`` carry the client's local model; ``gradient-delta`` carries FedLaAvg's
ΔG_i (client-delta mode).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedkit.algorithms.contract import contract_error
from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.evaluation import FederatedEvaluation, MetricsAggrFn, sent_by_id
from fedkit.algorithms.metrics import weighted_metrics
from fedkit.algorithms.participation import Participation, wait_for_nodes
from fedkit.algorithms.replies import (
    ARRAYS_KEY,
    WEIGHT_KEY,
    Rejection,
    TrainReply,
    validate_train_replies,
)
from fedkit.algorithms.sampling import sample_uniform
from fedkit.algorithms.secure_sum import SecureSum, VectorSpec, read_secure_sum

__all__ = ["FedkitStrategy", "MetricsAggrFn", "REPLY_MODEL", "REPLY_GRADIENT_DELTA"]

logger = logging.getLogger(__name__)

REPLY_MODEL = "model"
REPLY_GRADIENT_DELTA = "gradient-delta"

_BOOKKEEPING = ("num-replies", "num-rejected", "clients", "rejected-clients")


class FedkitStrategy(Strategy):
    """Base of fedkit's strategies (see the module docstring for the hooks).

    Every argument is keyword-only. Either ``clients_per_round`` (fedkit) or
    ``fraction_train``/``min_train_nodes`` (Flower) sets how many clients train; see
    :mod:`fedkit.algorithms.participation` and docs/flower.md, "Strategies".

    Args:
        clients_per_round: K; all online clients train when fewer are online. None: Flower's
            ``fraction_train``/``min_train_nodes`` decide.
        num_clients: N, the size of the federation (client ids 0..N-1). None: learned from
            the grid, as the number of distinct client ids seen so far (only for strategies
            whose rule does not divide by N: FedAvg).
        seed: Root seed of the selection streams.
        directory: Node-id to client-id map (shared with an availability grid, if any).
        fraction_train: Flower's: the fraction of online nodes that train (default 1.0).
        fraction_evaluate: Flower's: the fraction of online nodes that evaluate (default
            1.0; 0.0 switches federated evaluation off).
        min_train_nodes: Flower's: at least this many nodes train (default 2).
        min_evaluate_nodes: Flower's: at least this many nodes evaluate (default 2).
        min_available_nodes: Flower's: wait until this many nodes are online before sampling
            (default 2; 0 with ``clients_per_round``: nobody is waited for).
        weighted_by_key: The reply metric that weights replies and metrics (an integer > 0,
            default ``num-examples``).
        arrayrecord_key: Name of the ArrayRecord in messages and replies (default ``arrays``).
        configrecord_key: Name of the ConfigRecord in messages (default ``config``).
        train_metrics_aggr_fn: ``(contents, weighted_by_key) -> MetricRecord`` over the
            accepted train replies (default :func:`~fedkit.algorithms.metrics.weighted_metrics`:
            the weighted mean of every numeric metric).
        evaluate_metrics_aggr_fn: The same over the accepted evaluate replies.

    Raises:
        ValueError: On arguments out of range, both conventions mixed, or ``num_clients=None``
            for a strategy that needs N.
    """

    name = "base"
    reply_kind = REPLY_MODEL
    supports_secure_aggregation = False
    fixed_num_clients: str | None = None
    """Why the rule needs a fixed N (then ``num_clients=None`` is refused), or None."""
    needs_lr = False
    """True when the server's arithmetic needs the round's ``lr`` from the train config."""

    def __init__(self, *, clients_per_round: int | None = None, num_clients: int | None = None,
                 seed: int = 0, directory: ClientDirectory | None = None,
                 fraction_train: float | None = None, fraction_evaluate: float = 1.0,
                 min_train_nodes: int | None = None, min_evaluate_nodes: int = 2,
                 min_available_nodes: int | None = None,
                 weighted_by_key: str = WEIGHT_KEY, arrayrecord_key: str = ARRAYS_KEY,
                 configrecord_key: str = "config",
                 train_metrics_aggr_fn: MetricsAggrFn | None = None,
                 evaluate_metrics_aggr_fn: MetricsAggrFn | None = None) -> None:
        if num_clients is None and self.fixed_num_clients is not None:
            raise ValueError(
                f"{type(self).__name__} needs num_clients, the size N of the federation: "
                f"{self.fixed_num_clients}, so N must be fixed before round 1 -- a number "
                "learned from the grid would change the weight of every stored update "
                "whenever a new client appears. Pass num_clients=N (client ids 0..N-1)."
            )
        self.participation = Participation.from_arguments(
            clients_per_round=clients_per_round, num_clients=num_clients,
            fraction_train=fraction_train, min_train_nodes=min_train_nodes,
            fraction_evaluate=fraction_evaluate, min_evaluate_nodes=min_evaluate_nodes,
            min_available_nodes=min_available_nodes)
        self.clients_per_round = clients_per_round
        self.num_clients = num_clients
        self.seed = seed
        self.directory = directory or ClientDirectory(num_clients)
        self.weighted_by_key = weighted_by_key
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key
        self.train_metrics_aggr_fn = train_metrics_aggr_fn or weighted_metrics
        self.evaluation = FederatedEvaluation(
            self.participation, self.directory, seed=seed,
            aggregate_fn=evaluate_metrics_aggr_fn or weighted_metrics,
            weighted_by_key=weighted_by_key, arrayrecord_key=arrayrecord_key,
            configrecord_key=configrecord_key)
        self._pending: list[tuple[Message, int]] = []
        self._reference: ArrayRecord | None = None
        self._round_config: dict[str, Any] = {}
        self.secure_clip: float | None = None

    # -- hooks ------------------------------------------------------------------------------
    def select_clients(self, server_round: int, online: Iterable[int],
                       sample_size: int) -> list[int]:
        """The ``sample_size`` (>= 1) clients that train this round: uniformly at random
        among the online ones."""
        return sample_uniform(online, sample_size, seed=self.seed, server_round=server_round)

    def client_instructions(
        self, server_round: int, client_id: int
    ) -> tuple[dict[str, Any], dict[str, ArrayRecord]]:
        """Extra config entries and extra ArrayRecords for one client (none by default)."""
        return {}, {}

    def begin_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        """Called first in :meth:`configure_train`; returns the arrays to send."""
        return arrays

    def reply_reference(self, arrays: ArrayRecord) -> ArrayRecord:
        """Names, shapes and dtypes a valid reply must have (default: those of the model)."""
        return arrays

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        """Fold this round's accepted replies; return the new global arrays (None: keep)."""
        raise NotImplementedError

    def secure_vector_spec(self, server_round: int) -> VectorSpec:
        """Under secure aggregation: how clients form the vector they mask."""
        raise NotImplementedError(f"{self.name} does not support secure aggregation")

    def fold_secure_sum(self, server_round: int, outcome: SecureSum) -> ArrayRecord | None:
        """Under secure aggregation: fold the unmasked sum; return the new global arrays."""
        raise NotImplementedError(f"{self.name} does not support secure aggregation")

    def state_dict(self) -> dict[str, Any]:
        """The strategy's state for a checkpoint (numpy arrays and scalars)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""

    # -- secure aggregation -----------------------------------------------------------------
    def enable_secure_aggregation(self, clip: float) -> None:
        """Declare that rounds run under secure aggregation with clipping range ``clip``.

        Raises:
            ValueError: If this strategy needs individual client updates.
        """
        if not self.supports_secure_aggregation:
            raise ValueError(
                f"algorithm {self.name!r} cannot run under secure aggregation: its server "
                "needs each client's update, not only their sum (use fedavg, or fedlaavg "
                "with fedlaavg_mode = 'client-delta')"
            )
        self.secure_clip = float(clip)

    def sent_messages(self) -> list[tuple[Message, int]]:
        """This round's train messages, each with its client id."""
        return list(self._pending)

    @property
    def vector_length(self) -> int:
        """Number of values in one client's update this round."""
        if self._reference is None:
            raise RuntimeError("vector_length read before configure_train")
        return sum(int(np.prod(a.shape)) for a in self._reference.values())

    def aggregate_secure(self, server_round: int, outcome: SecureSum
                         ) -> tuple[ArrayRecord | None, MetricRecord]:
        """Fold a securely aggregated round and report what happened."""
        metrics = MetricRecord({
            "num-replies": len(outcome.contributors),
            "num-rejected": len(outcome.failed),
            "clients": list(outcome.contributors),
            "rejected-clients": sorted(outcome.failed),
            "secagg-aborted": int(outcome.aborted is not None),
            "secagg-seconds": float(sum(outcome.stage_seconds.values())),
            "secagg-bytes-up": int(sum(outcome.bytes_up.values())),
            "secagg-bytes-down": int(sum(outcome.bytes_down.values())),
        })
        if outcome.clipped_fraction is not None:
            metrics["secagg-clipped-fraction"] = float(outcome.clipped_fraction)
        new_arrays = self.fold_secure_sum(server_round, outcome)
        if new_arrays is None:
            level = logging.WARNING if outcome.weighted_sum is None else logging.INFO
            logger.log(level, "round %s: the global model is unchanged (%s)", server_round,
                       outcome.aborted or f"{len(outcome.contributors)} inputs summed")
        return new_arrays, metrics

    # -- Flower Strategy ------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Select clients among the online ones and send each the model and its config.

        Raises:
            ValueError: If the strategy needs ``lr`` and ``config`` has none.
            ContractError: If no node reports a valid client id (see :mod:`.contract`).
        """
        if self.needs_lr and "lr" not in config:
            raise ValueError(
                f"{type(self).__name__} needs the round's learning rate as 'lr' in the train "
                f"config (got keys {sorted(config)}): pass train_config=ConfigRecord({{'lr': "
                "...}) to Strategy.start (in fedkit's run_rounds: train_config_fn)"
            )
        arrays = self.begin_round(server_round, arrays)
        self._round_config = dict(config)
        self._reference = self.reply_reference(arrays)
        self._pending = []
        if not self.participation.trains:
            return []
        wait_for_nodes(grid, self.participation.nodes_to_wait_for("train"))
        online = self.directory.online(grid, server_round=server_round)
        size = self.participation.train_sample_size(len(online))
        chosen = self.select_clients(server_round, online, size) if size else []
        base = {**config, "server-round": server_round, "reply": self.reply_kind}
        messages = []
        for client_id in chosen:
            extra_config, extra_records = self.client_instructions(server_round, client_id)
            content = RecordDict({
                self.arrayrecord_key: arrays,
                self.configrecord_key: ConfigRecord({**base, **extra_config}),
                **extra_records,
            })
            messages.append(Message(content, online[client_id], "train",
                                    group_id=str(server_round)))
        self._pending = list(zip(messages, chosen, strict=True))
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Validate the replies, fold the accepted ones, and report what happened.

        The metrics are ``train_metrics_aggr_fn`` over the accepted replies (by default the
        weighted mean of every numeric metric) plus ``num-replies``, ``num-rejected``,
        ``clients`` and ``rejected-clients``.

        Under secure aggregation the grid answers with the round's unmasked sum instead of the
        clients' replies (:class:`fedkit.flower.secagg.grid.SecureAggregationGrid`); it is
        folded by :meth:`aggregate_secure`.

        Raises:
            ContractError: If every reply was rejected for breaking the message contract.
        """
        if self._reference is None:
            raise RuntimeError("aggregate_train called before configure_train")
        if not self.participation.trains:
            return None, None
        replies = list(replies)
        outcome = read_secure_sum(replies)
        if outcome is not None:
            return self.aggregate_secure(server_round, outcome)
        accepted, rejected = validate_train_replies(
            replies, sent=sent_by_id(self._pending), reference=self._reference,
            arrayrecord_key=self.arrayrecord_key, weighted_by_key=self.weighted_by_key,
        )
        self._check_contract(server_round, accepted, rejected)
        metrics = self.train_metrics_aggr_fn(
            [r.content for r in accepted if r.content is not None], self.weighted_by_key
        ) if accepted else MetricRecord()
        metrics = MetricRecord({k: v for k, v in metrics.items() if k not in _BOOKKEEPING})
        metrics.update({
            "num-replies": len(accepted),
            "num-rejected": len(rejected),
            "clients": [r.client_id for r in accepted],
            "rejected-clients": [r.client_id for r in rejected if r.client_id is not None],
        })
        new_arrays = self.aggregate(server_round, accepted, rejected)
        if new_arrays is None:
            # Without valid replies that is news; with them it is the algorithm's choice
            # (a warm-up round, MIFA waiting for every client).
            level = logging.WARNING if not accepted else logging.INFO
            logger.log(level, "round %s: the global model is unchanged (%s valid replies)",
                       server_round, len(accepted))
        return new_arrays, metrics

    def _check_contract(self, server_round: int, accepted: list[TrainReply],
                        rejected: list[Rejection]) -> None:
        """Raise :class:`~fedkit.algorithms.contract.ContractError` when no reply was
        accepted and every rejection broke the message contract."""
        if accepted or not rejected or any(r.mismatch is None for r in rejected):
            return
        first = rejected[0]
        who = f"client {first.client_id}" if first.client_id is not None else \
            f"node {first.node_id}"
        raise contract_error(
            type(self).__name__, server_round, [r.mismatch for r in rejected],
            f"{who}: {first.reason}", delta_expected=self.reply_kind == REPLY_GRADIENT_DELTA,
            weighted_by_key=self.weighted_by_key, arrayrecord_key=self.arrayrecord_key,
            num_clients=self.num_clients,
        )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the global model to ``fraction_evaluate`` of the online clients (at least
        ``min_evaluate_nodes``), seeded by round (:mod:`fedkit.algorithms.evaluation`)."""
        return self.evaluation.configure(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """``evaluate_metrics_aggr_fn`` over the valid evaluate replies (None: none valid)."""
        return self.evaluation.aggregate(server_round, replies)

    def summary(self) -> None:
        """Log the strategy's settings."""
        p = self.participation
        clients = (f"K={p.clients_per_round}" if p.clients_per_round is not None else
                   f"fraction_train={p.fraction_train} (min {p.min_train_nodes})")
        size = (self.num_clients if self.num_clients is not None
                else f"learned ({self.directory.num_seen} seen)")
        logger.info("%s: %s of N=%s clients per round, fraction_evaluate=%s (min %s), "
                    "min_available_nodes=%s, weighted by %r, seed=%s", self.name, clients, size,
                    p.fraction_evaluate, p.min_evaluate_nodes, p.min_available_nodes,
                    self.weighted_by_key, self.seed)
