"""Secure federated submodel learning: the pure-numpy building blocks.

* :mod:`~fedkit.submodel.murmur` -- MurmurHash3_x86_32 of 8-byte keys, vectorised;
* :mod:`~fedkit.submodel.bloom` -- Bloom-filter sizing, double hashing, random-valued
  filters and index vectors for the private set union, and its decoding;
* :mod:`~fedkit.submodel.rr` -- double randomized response over the union (permanent
  answer memoised per client, instantaneous answer per round);
* :mod:`~fedkit.submodel.ledger` -- per-round and long-term epsilon, presets, and a
  per-client privacy ledger;
* :mod:`~fedkit.submodel.negatives` -- the server's union frequencies and the loss weights
  that correct the sampling bias of negatives drawn among the downloaded rows.

Order within a round (reference/submodel.md §2): client encodes its real set
(``random_valued_filter``) -> secure sum mod 2^32 -> server ``decode_union`` -> clients
``perturb`` over the union -> download S'' -> train on ``succinct_set``. No Flower or torch
here; the protocol and the Flower workflow build on these functions (``docs/submodel.md``).
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
