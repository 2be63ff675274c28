"""The run configuration: one flat set of keys shared by every runtime.

A run is described by a flat mapping of scalar values -- the shape Flower's run config has
(``[tool.flwr.app.config]``, ``flwr run --run-config``) -- so the same keys mean the same thing
in a ``simulations/*.toml`` file, on the ``fedkit simulate --set key=value`` command line, in
the in-process grid and under Flower's engines: one config key, one meaning.

:class:`RunConfig` is the single validator of that mapping: unknown keys, wrong types and
out-of-range values are rejected with an error that names the key, the value and what was
expected. See docs/design.md, "Run configuration".
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "KeyInfo",
    "RunConfig",
    "apply_overrides",
    "check_keys",
    "config_keys",
    "load_config_file",
    "parse_override",
]


class ConfigError(ValueError):
    """A run configuration key, value or file is invalid.

    The ``fedkit`` command reports every configuration error the same way: the one line
    :meth:`line` (``fedkit: configuration error: <message>``) on stderr and the exit status
    :attr:`EXIT_STATUS`; nothing has run.
    """

    EXIT_STATUS = 2

    def line(self) -> str:
        """How the ``fedkit`` command prints this error."""
        return f"fedkit: configuration error: {self}"


# The values RunConfig accepts: validation reads these tables, and so does config_keys(), which
# describes them (`fedkit simulate --list-keys`).
_CHOICES: dict[str, tuple[Any, ...]] = {
    "task": ("classification", "submodel"),
    "dataset": ("synthetic", "cifar10", "movielens", "synthetic-rec"),
    "partition": ("natural", "iid", "dirichlet", "shards", "one-class"),
    "model": ("logreg", "lenet5", "fedavg-cnn"),
    "algorithm": ("fedavg", "fedlaavg", "mifa", "fedau", "fedvarp"),
    "fedlaavg_mode": ("client-delta", "server-table"),
    "loss_scaling": ("none", "data-weighted"),
    "availability_enforce": ("server", "client"),
    "weighting": ("num-examples", "uniform"),
    "submodel_mode": ("full", "plain", "secure"),
    "submodel_psu": ("auto", "index", "bloom"),
    "submodel_negatives": ("fixed", "downloaded"),
    "secagg_bits": (32, 64),
}


def _choices(key: str) -> tuple[Any, ...] | None:
    if key == "submodel_preset":  # the presets of the ledger, imported on use
        from fedkit.submodel.ledger import PRESETS

        return tuple(sorted(PRESETS))
    return _CHOICES.get(key)


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _fraction(value: float) -> bool:
    return 0 < value < 1


def _weight_cap(value: float) -> bool:
    return value == 0 or 1 <= value <= 1000


# Numeric keys: key -> (what is expected, in words; the test).
_BOUNDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{key: ("> 0", _positive) for key in (
        "num_clients", "clients_per_round", "rounds", "batch_size", "lr", "lr_decay",
        "round_timeout", "dirichlet_alpha", "server_lr", "fedau_cutoff", "secagg_clip",
        "secagg_max_weight", "embedding_dim", "num_items", "submodel_min_row_holders")},
    **{key: (">= 0", _non_negative) for key in (
        "seed", "warmup_rounds", "checkpoint_every", "local_steps", "local_epochs",
        "eval_every", "momentum", "weight_decay", "secagg_neighbours",
        "negatives_per_positive", "submodel_union_bound")},
    "secagg_threshold": ("a fraction in (0, 1)", _fraction),
    "submodel_bloom_fpr": ("a fraction in (0, 1)", _fraction),
    "submodel_negative_weight_cap": ("0 (no correction) or a cap in [1, 1000]", _weight_cap),
}

# Datasets of each task.
_TASK_DATASETS = {"classification": ("synthetic", "cifar10"),
                  "submodel": ("movielens", "synthetic-rec")}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Every key a fedkit run understands, with its default.

    Attributes:
        name: Run name; results go to ``runs/<name>/`` unless ``output_dir`` is set.
        seed: Root seed; every random stream of the run derives from it.
        task: ``classification`` (the algorithms below on an image/feature dataset) or
            ``submodel`` (federated submodel learning of a recommender,
            ``docs/submodel.md``; its server is ``fedkit.flower.submodel.server``).
        dataset: ``synthetic`` (embedded, generated in-process) or ``cifar10`` for
            classification; ``movielens`` (MovieLens-100k, one client per user) or
            ``synthetic-rec`` (generated implicit feedback, ``num_items`` items) for submodel.
        data_dir: Folder holding ``cifar-10-batches-py/`` (or MovieLens' ``u.data``); empty
            means ``$FEDKIT_DATA`` or the per-user cache folder.
        partition: How the training set is split over clients (``natural`` is the synthetic
            generator's own split).
        dirichlet_alpha: Concentration of the ``dirichlet`` partition.
        classes_per_client: Classes per client of the ``shards`` partition.
        synthetic_alpha, synthetic_beta: Heterogeneity of Synthetic(alpha, beta).
        num_clients: N, the number of clients in the federation.
        clients_per_round: K, clients sampled per round (among the available ones).
        rounds: Number of server rounds.
        model: ``logreg``, ``lenet5`` (FedLaAvg's CNN) or ``fedavg-cnn`` (McMahan et al.).
        algorithm: Server algorithm (a Flower strategy): fedavg, fedlaavg, mifa, fedau,
            fedvarp.
        fedlaavg_mode: FedLaAvg's storage: ``client-delta`` (clients keep G_i, the paper's) or
            ``server-table`` (the server stores every G_i).
        warmup_rounds: FedLaAvg rounds that collect updates without stepping the model.
        server_lr: Server learning rate of FedAU and FedVARP.
        fedau_cutoff: FedAU's interval cutoff K.
        mifa_wait_for_all: MIFA makes no update before every client has responded once.
        loss_scaling: ``data-weighted`` scales client i's loss by N n_i / n (FedLaAvg's code).
        availability: Availability scenario: a name of a scenario shipped in the package
            (``fedkit/scenarios/``) or a path to a scenario TOML file.
        availability_enforce: ``server``: the grid exposes only the online clients
            (simulation); ``client``: each client declines work while its scenario says it
            is offline (deployment).
        checkpoint_every: Save the server state every this many rounds (0: never); a run
            started again with ``resume = true`` continues from the last checkpoint.
        resume: Continue from the checkpoint in the results folder, if there is one.
        weighting: FedAvg weights: by each client's ``num-examples`` or uniform (the FedLaAvg
            paper's FedAvg baseline averages uniformly).
        local_steps: Local SGD steps per round; 0 means use ``local_epochs`` instead.
        local_epochs: Local passes over the client's data (used when ``local_steps`` is 0).
        batch_size: Local minibatch size.
        lr: Client learning rate of round 1.
        lr_decay: Per-round decay: round r uses ``lr * lr_decay ** (r - 1)``.
        momentum, weight_decay: Local SGD options.
        eval_every: Central evaluation on the test set every this many rounds (and after the
            last round); 0 disables all but the final evaluation.
        round_timeout: Seconds the server waits for the replies of one round.
        output_dir: Results folder; empty means ``runs/<name>``.
        progress: Print a progress line per round.
        secure_aggregation: Train under secure aggregation (SecAgg/SecAgg+, see
            ``docs/secagg.md``): the server learns only the sum of the clients' updates.
            Works with ``fedavg`` and with ``fedlaavg`` in ``client-delta`` mode.
        secagg_neighbours: SecAgg+ graph degree k; 0 = complete graph (SecAgg).
        secagg_threshold: Shamir threshold as a fraction of each neighbourhood, in (0, 1).
        secagg_clip: Each element of a client's (pre-scaled) update is clipped to
            ``[-secagg_clip, secagg_clip]`` before quantisation.
        secagg_bits: Ring Z_{2^bits} of the masked vectors: 32 or 64.
        secagg_max_weight: Upper bound of a client's weight (its example count under
            ``num-examples`` weighting).
        secagg_committed_graph: Fix the SecAgg+ graph by commit-reveal (one more round
            trip per round), so that a server with colluding clients cannot choose an honest
            client's neighbours (``docs/secagg.md``, "Committed graph"). Classification task
            only for now (the submodel task's secure mode refuses it).
        secagg_consistency_check: Signed keys and a consistency round (one more round trip
            per round) against a server that shows clients different views of who dropped
            (``docs/secagg.md``, "Consistency round"). Each node signs with its own key and
            key list (node config ``secagg-signing-key``, ``secagg-key-list``); a simulated
            node without them derives simulation keys from ``seed``. Classification task
            only for now.
        secagg_key_list: Path of the operator's key list file (the nodes' ``key-list.json``)
            on the server machine; empty: none. With ``secagg_consistency_check`` the server
            then drops, in advertise keys, a node whose id is not in the list or whose key
            signature does not verify, instead of relaying the entry and every honest node
            refusing the roster (``docs/secagg.md``, "Consistency round"). Robustness only:
            nodes still check every entry against their own list. Read when the ServerApp
            starts; set only with ``secagg_consistency_check = true``.
        submodel_mode: Submodel task only: ``full`` (full-model FedAvg), ``plain`` (clients
            report their real index sets in clear; rows averaged over their users) or
            ``secure`` (private set union, double randomized response, submodel-aware
            secure aggregation; the ``secagg_*`` keys apply).
        submodel_preset: Double randomized response parameters (p1, p2, p3, p4) of the
            ``secure`` mode: a name of ``fedkit.submodel.ledger.PRESETS`` (``eps1``,
            ``eps2``, ``eps2.7``, ``cpp1`` .. ``cpp5``).
        submodel_psu: Encoding of the private set union: ``index`` (a vector of one ring
            element per item), ``bloom`` (a random-valued Bloom filter sized for
            ``submodel_union_bound`` at ``submodel_bloom_fpr``) or ``auto`` (the shorter).
        submodel_union_bound: Public bound on the union's size used to size the Bloom
            filter; 0 means the vocabulary size.
        submodel_bloom_fpr: Target false-positive rate of the Bloom filter, in (0, 1).
        submodel_negatives: Where a client's training negatives come from. ``fixed``: each
            user draws ``negatives_per_positive`` per positive once, among the items it never
            interacted with, and its private index set S is positives plus negatives.
            ``downloaded``: S is the user's training positives only (its history); each round
            it takes its negatives among the rows it holds anyway that it never interacted
            with -- under ``secure``, the randomized-response fakes S'' \\ S, so negatives
            cost no download; under ``full``, any such item. Not for ``plain`` (it downloads
            only S).
        submodel_negative_weight_cap: ``downloaded`` negatives under ``secure`` only: the
            fakes come from the round's union, so an item serves as a negative in proportion
            to how often it is in a union; each negative's loss is weighted by
            ``min(cap, mean(pi) / pi_j)`` with ``pi`` the server's union frequencies
            (:mod:`fedkit.submodel.negatives`), sent with the rows. 0 turns the correction
            off (every weight 1); otherwise in [1, 1000].
        submodel_min_row_holders: ``secure`` only: the floor F of submodel-aware secure
            aggregation (issue 18, attack 4): a row's sum and count leave the protocol only
            from a crowd of at least F surviving holders that are graph neighbours; the
            clients enforce it with per-row masks. Default 2; 1 turns it off, which a node
            accepts only if its own ``secagg-min-row-holders`` is 1 too. Capped each round at
            the neighbourhood size (``docs/submodel.md``, "Rows released only in crowds").
        embedding_dim: Dimension of the recommender's item and user embeddings.
        negatives_per_positive: Training negatives per training positive (at most; fewer
            when a ``downloaded`` client holds fewer candidate rows).
        num_items: Vocabulary of the ``synthetic-rec`` dataset (MovieLens has its own).
    """

    name: str = "demo"
    seed: int = 0
    task: str = "classification"
    dataset: str = "synthetic"
    data_dir: str = ""
    partition: str = "natural"
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    synthetic_alpha: float = 1.0
    synthetic_beta: float = 1.0
    num_clients: int = 30
    clients_per_round: int = 10
    rounds: int = 30
    model: str = "logreg"
    algorithm: str = "fedavg"
    fedlaavg_mode: str = "client-delta"
    warmup_rounds: int = 0
    server_lr: float = 1.0
    fedau_cutoff: int = 50
    mifa_wait_for_all: bool = True
    loss_scaling: str = "none"
    availability: str = "always"
    availability_enforce: str = "server"
    checkpoint_every: int = 0
    resume: bool = False
    weighting: str = "num-examples"
    local_steps: int = 10
    local_epochs: int = 1
    batch_size: int = 10
    lr: float = 0.05
    lr_decay: float = 1.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    eval_every: int = 1
    round_timeout: float = 3600.0
    output_dir: str = ""
    progress: bool = True
    secure_aggregation: bool = False
    secagg_neighbours: int = 0
    secagg_threshold: float = 0.5
    secagg_clip: float = 1.0
    secagg_bits: int = 32
    secagg_max_weight: float = 1_000.0
    secagg_committed_graph: bool = False
    secagg_consistency_check: bool = False
    secagg_key_list: str = ""
    submodel_mode: str = "secure"
    submodel_preset: str = "eps2"
    submodel_psu: str = "auto"
    submodel_union_bound: int = 0
    submodel_bloom_fpr: float = 0.01
    submodel_negatives: str = "fixed"
    submodel_negative_weight_cap: float = 10.0
    submodel_min_row_holders: int = 2
    embedding_dim: int = 16
    negatives_per_positive: int = 4
    num_items: int = 200

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = _FIELD_TYPES[field.name]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, field.name, float(value))
                continue
            wrong_bool = expected is not bool and isinstance(value, bool)
            if not isinstance(value, expected) or wrong_bool:
                raise ConfigError(
                    f"config key {field.name!r} = {value!r} has type {type(value).__name__}, "
                    f"expected {expected.__name__}"
                )
        for key in (*_CHOICES, "submodel_preset"):
            choices = _choices(key)
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"config key {key!r} = {getattr(self, key)!r} is not one of {list(choices)}"
                )
        for key, (expected, test) in _BOUNDS.items():
            if not test(getattr(self, key)):
                raise ConfigError(f"config key {key!r} = {getattr(self, key)!r}, "
                                  f"expected {expected}")
        if self.local_steps == 0 and self.local_epochs == 0:
            raise ConfigError(
                "config keys 'local_steps' and 'local_epochs' are both 0: set local_steps > 0, "
                "or local_steps = 0 and local_epochs > 0"
            )
        if self.clients_per_round > self.num_clients:
            raise ConfigError(
                f"config key 'clients_per_round' = {self.clients_per_round} exceeds "
                f"'num_clients' = {self.num_clients}"
            )
        self._check_secure_aggregation()
        self._check_submodel()
        if self.task == "classification" and self.partition == "natural" and (
                self.dataset != "synthetic"):
            raise ConfigError(
                f"config key 'partition' = 'natural' needs dataset 'synthetic', got "
                f"{self.dataset!r}; use one of 'iid', 'dirichlet', 'shards', 'one-class'"
            )

    def _check_secure_aggregation(self) -> None:
        if self.secagg_key_list and not self.secagg_consistency_check:
            raise ConfigError(
                f"config key 'secagg_key_list' = {self.secagg_key_list!r} is used only with "
                "secagg_consistency_check = true (the server checks key signatures against "
                "it); set secagg_consistency_check = true or leave secagg_key_list empty")
        if not self.secure_aggregation:
            return
        if self.algorithm not in ("fedavg", "fedlaavg") or (
                self.algorithm == "fedlaavg" and self.fedlaavg_mode != "client-delta"):
            raise ConfigError(
                f"config key 'secure_aggregation' = true needs algorithm 'fedavg' or 'fedlaavg' "
                f"with fedlaavg_mode 'client-delta'; got algorithm {self.algorithm!r}"
                + (f" (mode {self.fedlaavg_mode!r})" if self.algorithm == "fedlaavg" else "")
                + ": its server needs each client's update, not only their sum"
            )
        if self.clients_per_round < 2:
            raise ConfigError("config key 'secure_aggregation' = true needs "
                              f"clients_per_round >= 2, got {self.clients_per_round}")

    def _check_submodel(self) -> None:
        if self.dataset not in _TASK_DATASETS[self.task]:
            raise ConfigError(
                f"config key 'dataset' = {self.dataset!r} does not fit task {self.task!r}, "
                f"expected one of {list(_TASK_DATASETS[self.task])}"
            )
        if self.task != "submodel":
            return
        if self.secure_aggregation:
            raise ConfigError("config key 'secure_aggregation' = true does not apply to task "
                              "'submodel'; choose submodel_mode = 'secure' instead")
        unsupported = {"availability": "always", "checkpoint_every": 0, "resume": False}
        for key, value in unsupported.items():
            if getattr(self, key) != value:
                raise ConfigError(f"config key {key!r} = {getattr(self, key)!r} is not "
                                  f"supported by task 'submodel' yet, expected {value!r}")
        if self.submodel_negatives == "downloaded" and self.submodel_mode == "plain":
            raise ConfigError("config key 'submodel_negatives' = 'downloaded' needs "
                              "submodel_mode 'secure' or 'full': a 'plain' client downloads "
                              "only its real set S, which leaves it no negative to train")
        if self.submodel_mode == "secure" and self.secagg_committed_graph:
            raise ConfigError("config key 'secagg_committed_graph' = true is not supported by "
                              "task 'submodel' yet (its private set union and upload do not "
                              "run the reveal-nonce stage); set it to false")
        if self.submodel_mode == "secure" and self.secagg_consistency_check:
            raise ConfigError("config key 'secagg_consistency_check' = true is not supported "
                              "by task 'submodel' yet (its private set union and upload do "
                              "not run the consistency stage); set it to false")
        if self.submodel_mode == "secure" and self.clients_per_round < 2:
            raise ConfigError("config key 'submodel_mode' = 'secure' needs clients_per_round "
                              f">= 2, got {self.clients_per_round}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunConfig:
        """Validate a flat mapping (a TOML table or Flower's ``context.run_config``).

        Raises:
            ConfigError: On an unknown key (naming the closest valid one), a wrong type or an
                out-of-range value.
        """
        check_keys(values)
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping of every key (what Flower receives as its run config)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        """Return a validated copy with ``changes`` applied."""
        return RunConfig.from_mapping({**self.to_dict(), **changes})

    def lr_at(self, server_round: int) -> float:
        """Client learning rate of round ``server_round`` (1-based): lr * lr_decay**(r - 1)."""
        return self.lr * self.lr_decay ** (server_round - 1)

    @property
    def results_dir(self) -> Path:
        """Where this run writes ``results.json`` and plots."""
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name


_FIELD_TYPES: dict[str, type] = {f.name: f.type for f in dataclasses.fields(RunConfig)}
_FIELD_TYPES = {
    name: {"str": str, "int": int, "float": float, "bool": bool}[str(kind)]
    for name, kind in _FIELD_TYPES.items()
}


def check_keys(keys: Iterable[str], *, where: str = "") -> None:
    """Check that every key is a run-config key.

    Args:
        keys: The keys to check.
        where: Prefix of the message naming where they come from (e.g. ``"--only"``).

    Raises:
        ConfigError: Naming each unknown key with the closest valid one, if any is close.

    Example:
        >>> check_keys(["rounds", "algoritm"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fedkit.config.ConfigError: unknown config key 'algoritm' (did you mean 'algorithm'?); ...
    """
    unknown = [key for key in keys if key not in _FIELD_TYPES]
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), list(_FIELD_TYPES), n=1)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(f"{where}{': ' if where else ''}unknown config "
                      f"key{'s' if len(unknown) > 1 else ''} {', '.join(named)}; "
                      "`fedkit simulate --list-keys` lists every key")


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """One run-config key, as ``fedkit simulate --list-keys`` shows it.

    Attributes:
        name: The key.
        default: Its default value.
        description: The first sentence of its entry in :class:`RunConfig`'s docstring.
        accepted: The values :class:`RunConfig` accepts, in words (``integer > 0``, ``one of
            "fedavg", "fedlaavg", ...``), from the tables its validation uses.
    """

    name: str
    default: Any
    description: str
    accepted: str


_TYPE_WORDS = {str: "string", int: "integer", float: "float", bool: "boolean"}


def _accepted(key: str) -> str:
    kind = _TYPE_WORDS[_FIELD_TYPES[key]]
    choices = _choices(key)
    if choices is not None:
        return "one of " + ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in choices)
    if key in _BOUNDS:
        expected = _BOUNDS[key][0]
        return f"{kind} {expected}" if expected[0] in "<>" else f"{kind}, {expected}"
    return kind


def _descriptions(doc: str | None) -> dict[str, str]:
    """Key -> first sentence of its entry under ``Attributes:`` in ``doc`` (plain text)."""
    if not doc:  # docstrings stripped (python -OO)
        return {}
    entries: dict[str, str] = {}
    names: list[str] = []
    lines = inspect.cleandoc(doc).splitlines()
    for line in lines[lines.index("Attributes:") + 1:]:
        entry = re.match(r"^    (\w+(?:, \w+)*): (.*)$", line)
        if entry:
            names = entry.group(1).split(", ")
            for name in names:
                entries[name] = entry.group(2)
        elif line.startswith("        ") and names:
            for name in names:
                entries[name] += " " + line.strip()
        elif line.strip():
            break
    plain = {name: re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "")
             for name, text in entries.items()}
    # The first sentence: up to a full stop after a word (not "cpp1 .. cpp5").
    return {name: re.split(r"(?<=[^.\s]\.)\s", text, maxsplit=1)[0]
            for name, text in plain.items()}


def config_keys() -> list[KeyInfo]:
    """Every run-config key with its default, description and accepted values, in order."""
    descriptions = _descriptions(RunConfig.__doc__)
    return [KeyInfo(name, value, descriptions.get(name, ""), _accepted(name))
            for name, value in RunConfig().to_dict().items()]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``simulations/*.toml`` experiment file into a flat mapping.

    The file holds run-config keys at top level (optionally under a ``[run]`` table).

    Raises:
        ConfigError: If the file is missing, not valid TOML, or holds nested tables.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    if "run" in data and isinstance(data["run"], dict):
        data = {**{k: v for k, v in data.items() if k != "run"}, **data["run"]}
    nested = [k for k, v in data.items() if isinstance(v, dict | list)]
    if nested:
        raise ConfigError(
            f"config file {str(path)!r}: key(s) {nested} hold tables or arrays; "
            "expected flat scalar keys (string, integer, float, boolean)"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``--set key=value`` override; the value is read as a TOML value.

    Bare words that are not TOML values are taken as strings, so ``--set dataset=cifar10``
    works without quotes.

    Raises:
        ConfigError: If ``text`` has no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(values: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return ``values`` updated with ``key=value`` overrides (input not mutated)."""
    merged = dict(values)
    for text in overrides:
        key, value = parse_override(text)
        merged[key] = value
    return merged
