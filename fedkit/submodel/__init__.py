"""Secure federated submodel learning: the pure-numpy building blocks (no Flower, no torch).

Order within a round, as in Niu et al., MobiCom 2020 (arXiv:1911.02254) and the authors' code
(``secure/SFSL/``): client ``random_valued_filter`` -> secure sum mod 2^32 -> server
``decode_union`` = U -> client ``perturb`` over U = S'' -> download the rows of S'' -> train on
``succinct_set``. Modules: :mod:`~fedkit.submodel.murmur` (hashing), :mod:`~fedkit.submodel.bloom`
(union encodings), :mod:`~fedkit.submodel.rr` (double randomized response),
:mod:`~fedkit.submodel.ledger` (epsilons), :mod:`~fedkit.submodel.negatives` (negative
weights), :mod:`~fedkit.submodel.aggregate` (plaintext rules). See docs/submodel.md.
"""

from __future__ import annotations

from fedkit.submodel.bloom import (
    bloom_filter,
    bloom_positions,
    bloom_size,
    contains,
    decode_index_vector,
    decode_union,
    expected_fpr,
    index_vector,
    random_valued_filter,
)
from fedkit.submodel.ledger import (
    PRESETS,
    ClientPrivacy,
    PrivacyLedger,
    epsilon_after,
    epsilon_long_term,
    epsilon_round,
    expected_perturbed_size,
    params_for_round_epsilon,
    rr_epsilon,
)
from fedkit.submodel.murmur import as_keys, murmur3_32
from fedkit.submodel.negatives import UnionFrequency
from fedkit.submodel.rr import (
    DoubleRRParams,
    PermanentMemo,
    instantaneous_answer,
    permanent_answer,
    perturb,
    succinct_set,
)

__all__ = [
    "PRESETS",
    "ClientPrivacy",
    "DoubleRRParams",
    "PermanentMemo",
    "PrivacyLedger",
    "UnionFrequency",
    "as_keys",
    "bloom_filter",
    "bloom_positions",
    "bloom_size",
    "contains",
    "decode_index_vector",
    "decode_union",
    "epsilon_after",
    "epsilon_long_term",
    "epsilon_round",
    "expected_fpr",
    "expected_perturbed_size",
    "index_vector",
    "instantaneous_answer",
    "murmur3_32",
    "params_for_round_epsilon",
    "permanent_answer",
    "perturb",
    "random_valued_filter",
    "rr_epsilon",
    "succinct_set",
]
