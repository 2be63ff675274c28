"""Secure aggregation (SecAgg / SecAgg+): the safe layer.

The server learns the weighted sum of the clients' vectors and nothing else about any one
input, even if some clients drop out at any stage. Clients talk only through the server, in
four stages (Bonawitz et al. 2017; on a k-regular graph, Bell et al. 2020):

1. **advertise keys** -- each client sends two fresh X25519 public keys;
   the server broadcasts the roster (:class:`KeysBroadcast`).
2. **share keys** -- each client checks the roster (its own keys echoed, all keys distinct,
   threshold met), derives the communication graph from a hash of all keys, Shamir-shares a
   fresh self-mask seed ``b_u`` and its masking private key among its neighbours, and
   AES-GCM-encrypts each neighbour's share pair (:class:`ShareKeys`); the server routes them
   (:class:`SharesBroadcast`).
3. **masked input** -- each client clips, weights, quantises and masks its vector:
   ``y_u = q(w_u x_u, w_u) + PRG(b_u) + sum_v +-PRG(s_uv)`` in Z_{2^bits}
   (:class:`MaskedInput`); the server lists who is alive and who dropped
   (:class:`UnmaskRequest`).
4. **unmask** -- each client checks the lists are disjoint and reveals self-mask shares of
   alive neighbours and key shares of dropped ones, never both (:class:`UnmaskResponse`); the
   server reconstructs, removes every mask, dequantises and divides by the total weight.

Order (STYLE.md rule 9): client clip -> weight -> quantise -> mask; server unmask ->
dequantise -> divide. Primitives live in :mod:`fedkit.privacy.hazmat`; the protocol is
documented in ``docs/secagg.md``.

Example:
    >>> import numpy as np
    >>> cfg = SecAggConfig(num_clients=4, vector_length=3, threshold=3, max_weight=10.0)
    >>> total, report = run_secagg([np.full(3, 0.5)] * 4, [1.0, 2.0, 3.0, 4.0], cfg)
    >>> round(report.result.total_weight, 4), np.round(report.result.mean, 4).tolist()
    (10.0, [0.5, 0.5, 0.5])

References:
    K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
    Learning", CCS 2017 (eprint 2017/281).
    J. Bell, K. Bonawitz, A. Gascon, T. Lepoint, M. Raykova, "Secure Single-Server Aggregation
    with (Poly)Logarithmic Overhead", CCS 2020.
"""

from __future__ import annotations

from fedkit.privacy.quantize import HeadroomError
from fedkit.privacy.secagg._client import SecAggClient
from fedkit.privacy.secagg._config import (
    SecAggAbort,
    SecAggConfig,
    SecAggConfigError,
    SecAggError,
    SecAggProtocolError,
    SecAggStateError,
    Stage,
)
from fedkit.privacy.secagg._driver import SecAggReport, run_secagg, run_secagg_ring
from fedkit.privacy.secagg._messages import (
    WIRE_VERSION,
    AdvertiseKeys,
    KeysBroadcast,
    MaskedInput,
    ShareKeys,
    SharesBroadcast,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)
from fedkit.privacy.secagg._server import SecAggResult, SecAggServer
from fedkit.privacy.secagg._stages import StageRun, StageTransport, run_stages

__all__ = [
    "WIRE_VERSION",
    "AdvertiseKeys",
    "HeadroomError",
    "KeysBroadcast",
    "MaskedInput",
    "SecAggAbort",
    "SecAggClient",
    "SecAggConfig",
    "SecAggConfigError",
    "SecAggError",
    "SecAggProtocolError",
    "SecAggReport",
    "SecAggResult",
    "SecAggServer",
    "SecAggStateError",
    "ShareKeys",
    "SharesBroadcast",
    "Stage",
    "StageRun",
    "StageTransport",
    "UnmaskRequest",
    "UnmaskResponse",
    "decode_message",
    "run_secagg",
    "run_secagg_ring",
    "run_stages",
]
