"""Secure aggregation (SecAgg / SecAgg+): the safe layer.

The server learns the weighted sum of the clients' vectors and nothing else about any one
input, even if some clients drop out at any stage. Four stages through the server (Bonawitz
et al. 2017, Fig. 4; on a k-regular graph, Bell et al. 2020): advertise keys
(:class:`KeysBroadcast`), share keys (:class:`ShareKeys`, :class:`SharesBroadcast`), masked
input (:class:`MaskedInput`, :class:`UnmaskRequest`) and unmask (:class:`UnmaskResponse`);
with ``committed_graph``, a reveal-nonce stage after advertise keys
(:class:`RosterCommitment`, :class:`RevealNonce`) fixes the SecAgg+ graph by commit-reveal;
with ``consistency_check``, keys are signed with long-term keys
(:mod:`fedkit.privacy.secagg.signing`) and a consistency stage before unmask
(:class:`ConsistencyRequest`, :class:`ConsistencySignature`) makes every revealing client
agree on who dropped.
Order: client clip -> weight -> quantise -> mask; server unmask -> dequantise -> divide.
Primitives live in :mod:`fedkit.privacy.hazmat`. See docs/secagg.md for the messages, checks
and parameters.

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
    ConsistencyRequest,
    ConsistencySignature,
    KeysBroadcast,
    MaskedInput,
    RevealNonce,
    RosterCommitment,
    ShareKeys,
    SharesBroadcast,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)
from fedkit.privacy.secagg._policy import ClientPolicy, SecAggPolicyError
from fedkit.privacy.secagg._server import SecAggResult, SecAggServer
from fedkit.privacy.secagg._stages import StageRun, StageTransport, run_stages
from fedkit.privacy.secagg.signing import KeyList, SigningIdentity, SigningKey

__all__ = [
    "WIRE_VERSION",
    "AdvertiseKeys",
    "ClientPolicy",
    "ConsistencyRequest",
    "ConsistencySignature",
    "HeadroomError",
    "KeyList",
    "KeysBroadcast",
    "MaskedInput",
    "RevealNonce",
    "RosterCommitment",
    "SecAggAbort",
    "SecAggClient",
    "SecAggConfig",
    "SecAggConfigError",
    "SecAggError",
    "SecAggPolicyError",
    "SecAggProtocolError",
    "SecAggReport",
    "SecAggResult",
    "SecAggServer",
    "SecAggStateError",
    "ShareKeys",
    "SharesBroadcast",
    "SigningIdentity",
    "SigningKey",
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
