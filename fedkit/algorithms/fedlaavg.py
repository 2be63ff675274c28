"""FedLaAvg (Yan et al., "Distributed Non-Convex Optimization with Sublinear Speedup under
Intermittent Client Availability", arXiv 2002.07399; INFORMS JoC 2023) as a Flower strategy.

Each round: among the available clients pick the K that waited longest (never-seen first,
ties seeded); each runs C local SGD steps at lr_r and forms G_i = (x - x_local)/lr_r; the
server keeps g_bar = (1/N) sum_i G_i^latest (stale G_i of unavailable clients keep full
weight, never-seen clients count as zero) and steps x <- x - lr_r g_bar. The arithmetic is
:mod:`fedkit.algorithms.rules.fedlaavg`; this module is the shell.

Storage modes (identical trajectories):

* ``client-delta`` (the paper's): clients keep G_i in their Flower context state and upload
  ΔG_i; the server holds O(d) plus O(N) scalars, and the models it sent in the rounds that
  are some client's latest (at most ceil(N/K)E of them when every client is available once
  every E rounds), which it uses to let a client that lost its state recompute its G_i
  exactly (:mod:`fedkit.flower.apps.client_delta`).
* ``server-table``: clients return their local model; the server stores every G_i (O(N d)).

``warmup_rounds`` (``--num_non_update_rounds`` in the authors' code): in those rounds updates
are folded but the model is not stepped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

from fedkit.algorithms._model_state import ServerModel
from fedkit.algorithms.arrays import flatten, float64_like, stack_rows
from fedkit.algorithms.base import REPLY_GRADIENT_DELTA, REPLY_MODEL, FedkitStrategy
from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.replies import Rejection, TrainReply
from fedkit.algorithms.rules import (
    FedLaAvgState,
    apply_update,
    fedlaavg_init,
    fold_delta_sum,
    fold_deltas,
    fold_latest,
    gradient_sum,
    longest_waiting,
)
from fedkit.algorithms.secure_sum import SecureSum, VectorSpec

__all__ = ["FedLaAvg", "MODES"]

logger = logging.getLogger(__name__)

MODES = ("client-delta", "server-table")


class FedLaAvg(FedkitStrategy):
    """FedLaAvg: average the latest update of every client, stale or not.

    Args:
        clients_per_round: K (None: Flower's ``fraction_train``/``min_train_nodes``).
        num_clients: N, required (g_bar divides by it).
        seed: Root seed (tie-breaking in the longest-waiting selection).
        mode: ``"client-delta"`` or ``"server-table"``.
        warmup_rounds: Rounds that fold updates without stepping the model.
        directory: Node-id to client-id map.
        **options: Flower's ``FedAvg`` arguments; see
            :class:`~fedkit.algorithms.base.FedkitStrategy`.

    The train config must hold the round's ``lr`` (Flower: ``train_config``).
    """

    name = "fedlaavg"
    needs_lr = True
    fixed_num_clients = ("its update steps along g_bar = (1/N) sum_i G_i, the mean of the "
                         "latest update of all N clients, never-seen ones counting as zero")

    def __init__(self, *, clients_per_round: int | None = None, num_clients: int | None = None,
                 seed: int = 0, mode: str = "client-delta", warmup_rounds: int = 0,
                 directory: ClientDirectory | None = None, **options: Any) -> None:
        if mode not in MODES:
            raise ValueError(f"mode = {mode!r}, expected one of {list(MODES)}")
        if warmup_rounds < 0:
            raise ValueError(f"warmup_rounds = {warmup_rounds}, expected >= 0")
        super().__init__(clients_per_round=clients_per_round, num_clients=num_clients,
                         seed=seed, directory=directory, **options)
        self.mode = mode
        self.reply_kind = REPLY_GRADIENT_DELTA if mode == "client-delta" else REPLY_MODEL
        self.warmup_rounds = warmup_rounds
        self.model = ServerModel()
        self.state: FedLaAvgState | None = None
        # client-delta mode: round -> (model sent that round, its lr), for recovery.
        self.history: dict[int, tuple[ArrayRecord, float]] = {}
        self.needs_recovery: set[int] = set()

    # -- hooks ------------------------------------------------------------------------------
    def begin_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        sent = self.model.begin_round(arrays)
        if self.state is None:
            self.state = fedlaavg_init(self.num_clients, self.model.x.size,
                                       server_table=self.mode == "server-table")
        return sent

    def select_clients(self, server_round: int, online: Iterable[int],
                       sample_size: int) -> list[int]:
        """The ``sample_size`` available clients that waited longest (never-seen first)."""
        return longest_waiting(self.state.last_round, online, sample_size,
                               seed=self.seed, server_round=server_round)

    @property
    def supports_secure_aggregation(self) -> bool:
        """Client-delta mode: the server needs only the sum of the clients' ΔG_i."""
        return self.mode == "client-delta"

    def client_instructions(self, server_round: int, client_id: int
                            ) -> tuple[dict[str, Any], dict[str, ArrayRecord]]:
        if self.mode != "client-delta":
            return {}, {}
        config: dict[str, Any] = {"expected-version": int(self.state.versions[client_id])}
        if self.secure_clip is not None:
            # The client stores exactly the (clipped) ΔG_i the server folds.
            config["delta-bound"] = self.secure_clip / float(self._round_config["lr"])
        records: dict[str, ArrayRecord] = {}
        last = int(self.state.last_round[client_id])
        if client_id in self.needs_recovery and last in self.history:
            arrays, lr = self.history[last]
            config.update({"recovery-round": last, "recovery-lr": lr})
            records["recovery-arrays"] = arrays
        return config, records

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        lr = float(self._round_config["lr"])
        for rejection in rejected:
            if rejection.state_lost and rejection.client_id is not None:
                self.needs_recovery.add(rejection.client_id)
        ids = [r.client_id for r in accepted]
        if self.mode == "client-delta":
            rows = stack_rows([flatten(r.arrays) for r in accepted], self.model.x.size)
            self.state = fold_deltas(self.state, ids, rows, server_round)
            if accepted:
                self.history[server_round] = (self.model.sent, lr)
            self.needs_recovery.difference_update(ids)
            self._prune_history()
        else:
            rows = stack_rows([gradient_sum(self.model.sent_vector, flatten(r.arrays), lr)
                               for r in accepted], self.model.x.size)
            self.state = fold_latest(self.state, ids, rows, server_round)
        if server_round <= self.warmup_rounds:
            return None
        return self.model.set(apply_update(self.model.x, self.state, lr))

    def secure_vector_spec(self, server_round: int) -> VectorSpec:
        """Clients mask lr_r * ΔG_i (model-update scale); the server divides by lr_r."""
        return VectorSpec(offset=False, prescale=float(self._round_config["lr"]),
                          weighting="uniform")

    def fold_secure_sum(self, server_round: int, outcome: SecureSum) -> ArrayRecord | None:
        """Fold sum_i ΔG_i of the contributors; clients that may have trained without
        their ΔG_i arriving recompute their G_i at their next selection."""
        lr = float(self._round_config["lr"])
        contributors = set(outcome.contributors)
        self.needs_recovery.update(set(outcome.trained) - contributors)
        self.needs_recovery.update(outcome.state_lost)
        if outcome.weighted_sum is None:
            return None
        self.state = fold_delta_sum(self.state, sorted(contributors), outcome.weighted_sum,
                                    server_round)
        if contributors:
            self.history[server_round] = (self.model.sent, lr)
        self.needs_recovery.difference_update(contributors)
        self._prune_history()
        if server_round <= self.warmup_rounds:
            return None
        return self.model.set(apply_update(self.model.x, self.state, lr))

    def reply_reference(self, arrays: ArrayRecord) -> ArrayRecord:
        """ΔG_i replies are float64 arrays with the model's names and shapes."""
        return float64_like(arrays) if self.mode == "client-delta" else arrays

    def _prune_history(self) -> None:
        referenced = set(int(r) for r in self.state.last_round if r >= 0)
        for old in [r for r in self.history if r not in referenced]:
            del self.history[old]

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model.state_dict(),
                               "needs_recovery": sorted(self.needs_recovery)}
        if self.state is not None:
            out["rule"] = self.state.state_dict()
        out["history"] = {
            str(r): ({k: a.numpy() for k, a in arrays.items()}, lr)
            for r, (arrays, lr) in self.history.items()
        }
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state.get("model", {}))
        if "rule" in state:
            self.state = FedLaAvgState.from_state_dict(state["rule"])
        # After a restart the clients' stored G_i may be behind (lost) or ahead (they trained
        # after the checkpoint) of this state: every seen client gets the recovery model at
        # its next selection and uses it only if its own state does not match.
        self.needs_recovery = set(int(c) for c in state.get("needs_recovery", []))
        if self.state is not None and self.mode == "client-delta":
            self.needs_recovery.update(int(c) for c in np.flatnonzero(self.state.last_round >= 0))
        self.history = {
            int(r): (ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}), lr)
            for r, (arrays, lr) in state.get("history", {}).items()
        }
