"""What a malicious server does once it holds a victim's secrets: strip its masked vector.

Shared by the attack tests (committed graph, consistency round); written on fedkit's own
primitives, nothing mocked.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fedkit.privacy.hazmat.keys import derive_key
from fedkit.privacy.hazmat.prg import MaskExpander
from fedkit.privacy.quantize import dequantize
from fedkit.privacy.secagg import SecAggConfig


def strip_masks(config: SecAggConfig, masked: np.ndarray, owner: int, self_seed: bytes,
                pair_secrets: Iterable[tuple[int, bytes]]) -> np.ndarray:
    """The plaintext of ``owner``'s masked vector (dequantised, weight last).

    Args:
        config: The instance.
        masked: The owner's masked ring vector (not modified).
        owner: Its id.
        self_seed: Its rebuilt self-mask seed b.
        pair_secrets: ``(peer, X25519 secret of the owner's and the peer's masking keys)``
            for every peer the owner masked against.
    """
    c = config
    clean = np.array(masked, copy=True)
    expander = MaskExpander(clean.size, bits=c.bits)
    expander.add_into(clean, derive_key(self_seed, purpose="self-mask", run_id=c.run_id,
                                        round_id=c.round_id, u=owner, v=owner), sign=-1)
    for peer, secret in pair_secrets:
        seed = derive_key(secret, purpose="mask", run_id=c.run_id, round_id=c.round_id,
                          u=owner, v=peer)
        expander.add_into(clean, seed, sign=-1 if owner < peer else +1)
    return dequantize(clean, scale=c.resolved_scale, bits=c.bits) * c.max_weight
