"""Privacy mechanisms for fedkit, free of Flower and torch.

:mod:`fedkit.privacy.secagg` is the safe secure-aggregation layer and
:mod:`fedkit.privacy.submodel` its per-row variant for submodel learning; their building
blocks (:mod:`~fedkit.privacy.quantize`, :mod:`~fedkit.privacy.graph` and the low-level
:mod:`~fedkit.privacy.hazmat`) are importable for tests and benchmarks. Privacy wraps
aggregation in mirrored order: client clip -> quantise -> mask; server unmask -> dequantise
-> (noise). See docs/secagg.md.
"""
