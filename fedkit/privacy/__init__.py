"""Privacy mechanisms for fedkit, free of Flower and torch.

Secure aggregation lives in :mod:`fedkit.privacy.secagg` (the safe layer: config, client and
server state machines, versioned wire format, an in-process driver). Its building blocks --
quantisation (:mod:`fedkit.privacy.quantize`), the SecAgg+ communication graph
(:mod:`fedkit.privacy.graph`) and the hazardous-materials layer (:mod:`fedkit.privacy.hazmat`:
key agreement, PRG masks, Shamir sharing, AEAD) -- are importable for tests and benchmarks.
Submodel-aware secure aggregation (per-row layout and masks, for secure federated submodel
learning) lives in :mod:`fedkit.privacy.submodel`, on the same protocol.

Order of operations (STYLE.md rule 9): client clip -> quantise -> mask; server unmask ->
dequantise -> (noise).
"""
