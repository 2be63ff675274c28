"""Test helpers for secure aggregation on Flower: a toy vector ClientApp and fault injectors."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedkit.algorithms.secure_sum import VectorSpec
from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid, run_inprocess
from fedkit.flower.apps.checkpoint import load_checkpoint
from fedkit.flower.secagg.mod import is_secure_stage, secagg_mod
from fedkit.flower.secagg.records import EXCHANGE_RECORD
from fedkit.flower.secagg.workflow import SecureAggregation, SecureAggregationSettings
from fedkit.privacy.secagg import Stage

DIM = 6
N = 8  # nodes of a round in node_round and the checks below
CLIENTS = list(range(N))
PLUS = dict(num_neighbours=4, threshold=0.5)  # k = 4, t = 3 of each 5: SecAgg+
RNG = np.random.default_rng(7)
VECTORS = {pid: RNG.uniform(-0.5, 0.5, DIM) for pid in range(16)}
WEIGHTS = {pid: float(10 + 3 * pid) for pid in range(16)}

toy_app = ClientApp()


@toy_app.train(mods=[secagg_mod])
def _toy_train(msg: Message, context) -> Message:
    """Return the received vector plus this node's fixed update, weighted by its examples."""
    pid = context.node_config["partition-id"]
    sent = msg.content["arrays"]["w"].numpy()
    local = (sent + VECTORS[pid]).astype(np.float64)
    return Message(RecordDict({
        "arrays": ArrayRecord({"w": Array(local)}),
        "metrics": MetricRecord({"num-examples": WEIGHTS[pid]}),
    }), reply_to=msg)


def toy_messages(grid, client_ids) -> list[tuple[Message, int]]:
    """A strategy's train messages to the nodes with these partition ids (client id = pid)."""
    node_of = {ctx.node_config["partition-id"]: node for node, ctx in grid.contexts.items()}
    out = []
    for cid in client_ids:
        content = RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(DIM))}),
                              "config": ConfigRecord({"server-round": 1})})
        out.append((Message(content, node_of[cid], "train", group_id="1"), cid))
    return out


def node_round(app, settings, node_config=None, *, num_nodes: int = N):
    """One secure round of ``app`` with every node's client (client id = partition id);
    ``node_config`` adds keys to some nodes' config (``{partition id: {key: value}}``)."""
    grid = InProcessGrid(app, num_nodes=num_nodes, run_config={})
    for context in grid.contexts.values():
        context.node_config.update((node_config or {}).get(
            context.node_config["partition-id"], {}))
    return SecureAggregation(settings).run(grid, toy_messages(grid, range(num_nodes)),
                                           spec=VectorSpec(), vector_length=DIM, server_round=3)


def rounding_step(contributors, *, num_nodes: int = N) -> float:
    """Stochastic rounding's bound on a sum: one quantum (max_weight / scale) per client."""
    config = SecureAggregationSettings().protocol_config(num_nodes, DIM, round_id=3, run_id=1)
    return config.max_weight / config.resolved_scale * len(contributors)


def assert_exact_sum(outcome, contributors, *, num_nodes: int = N):
    """The round summed exactly the weighted vectors of ``contributors``, up to stochastic
    rounding (:func:`rounding_step`)."""
    assert outcome.aborted is None, outcome.aborted
    assert outcome.contributors == tuple(sorted(contributors))
    total = sum(WEIGHTS[c] * VECTORS[c] for c in contributors)
    np.testing.assert_allclose(outcome.weighted_sum, total, rtol=0,
                               atol=rounding_step(contributors, num_nodes=num_nodes))


def final_model(tmp_path, base: dict, name: str, engine: str, **changes):
    """Run fedkit in process with the run config ``base`` and ``changes``; return the
    checkpoint's final model (one flat vector) and the results file."""
    cfg = RunConfig(name=name, output_dir=str(tmp_path / name), **{**base, **changes})
    run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed, engine=engine)
    arrays = load_checkpoint(cfg.results_dir)["arrays"]
    return np.concatenate([a.numpy().ravel() for a in arrays.values()]), read_results(
        cfg.results_dir)


def dropping(app, plan: dict[Stage, set[int]], *, after_training: bool = False):
    """``app``, but node ``pid`` raises at every stage ``s`` with ``pid in plan[s]``.

    With ``after_training`` a masked-input drop happens after the ClientApp ran (the client
    trained and updated its state; its reply is lost).
    """

    def client(msg: Message, context) -> Message:
        pid = context.node_config["partition-id"]
        for stage, ids in plan.items():
            if pid in ids and is_secure_stage(msg, stage):
                if after_training and stage is Stage.MASKED_INPUT:
                    app(msg, context)
                raise ConnectionError(f"node {pid} went offline at {stage.value}")
        return app(msg, context)

    return client


def rewrite_request(app, pid: int, stage: Stage, **fields):
    """``app``, but node ``pid`` sees ``fields`` changed in its ``stage`` request record."""

    def client(msg: Message, context) -> Message:
        if context.node_config["partition-id"] == pid and is_secure_stage(msg, stage):
            record = dict(msg.content.config_records[EXCHANGE_RECORD])
            record.update(fields)
            msg.content[EXCHANGE_RECORD] = ConfigRecord(record)
        return app(msg, context)

    return client


def replay_previous_reply(app, pid: int):
    """``app``, but node ``pid`` answers the share-keys stage with its advertise-keys reply."""
    saved: dict[str, RecordDict] = {}

    def client(msg: Message, context) -> Message:
        if context.node_config["partition-id"] != pid:
            return app(msg, context)
        if is_secure_stage(msg, Stage.SHARE_KEYS):
            return Message(saved["advertise"], reply_to=msg)
        reply = app(msg, context)
        if is_secure_stage(msg, Stage.ADVERTISE_KEYS):
            saved["advertise"] = reply.content
        return reply

    return client


def corrupt_payload(app, pid: int, stage: Stage):
    """``app``, but node ``pid`` flips a byte in the middle of its ``stage`` reply payload."""

    def client(msg: Message, context) -> Message:
        reply = app(msg, context)
        if context.node_config["partition-id"] == pid and is_secure_stage(msg, stage):
            payload = bytearray(reply.content.config_records[EXCHANGE_RECORD]["payload"])
            payload[len(payload) // 2] ^= 0xFF
            reply.content[EXCHANGE_RECORD] = ConfigRecord({"phase": stage.value,
                                                         "payload": bytes(payload)})
        return reply

    return client
