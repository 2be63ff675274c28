"""Explicit, derived randomness.

fedkit has one root seed per run. Every consumer of randomness (client sampling, partitioning,
local minibatch order, model initialisation, ...) gets its own stream derived from
``(root_seed, purpose, *keys)`` -- typically ``keys = (round, client_id)`` -- so that adding a
consumer or changing the order of calls never shifts another consumer's numbers, and a run is
reproducible on the same machine from its seed alone (docs/design.md, "Sampling and
randomness").

The global ``random`` / ``np.random`` state is never used. Cryptographic randomness does not
come from here (it comes from ``secrets``/the OS).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "numpy_rng", "torch_generator"]

_MASK63 = (1 << 63) - 1


def derive_seed(root_seed: int, purpose: str, *keys: int) -> int:
    """Return a 63-bit seed for the stream ``(root_seed, purpose, *keys)``.

    The derivation is BLAKE2b over a canonical encoding, so it is stable across Python
    processes and platforms (unlike ``hash()``).

    Args:
        root_seed: The run's root seed (any integer).
        purpose: A short name for the consumer, e.g. ``"sample-clients"``.
        *keys: Integers that identify the stream within the purpose, e.g. round and client id.

    Returns:
        A non-negative integer below 2**63.

    Raises:
        TypeError: If ``root_seed`` or a key is not an integer.

    Example:
        >>> derive_seed(0, "local-sgd", 3, 17) == derive_seed(0, "local-sgd", 3, 17)
        True
    """
    parts = [root_seed, *keys]
    for value in parts:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(
                f"seed parts must be integers, got {type(value).__name__} {value!r} "
                f"for purpose {purpose!r}"
            )
    text = purpose + "|" + "|".join(str(int(v)) for v in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK63


def numpy_rng(root_seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """Return a fresh ``numpy.random.Generator`` (PCG64) for the derived stream."""
    return np.random.default_rng(derive_seed(root_seed, purpose, *keys))


def torch_generator(root_seed: int, purpose: str, *keys: int):  # -> torch.Generator
    """Return a fresh CPU ``torch.Generator`` seeded from the derived stream."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(root_seed, purpose, *keys))
    return gen
