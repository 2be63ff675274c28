"""What a variant of the protocol builds on: wire-format pieces, the round driver, checks.

Using secure aggregation needs only :mod:`fedkit.privacy.secagg`. A protocol *variant* that
subclasses :class:`~fedkit.privacy.secagg.SecAggClient` and
:class:`~fedkit.privacy.secagg.SecAggServer` and adds message types -- as the submodel-aware
protocol (:mod:`fedkit.privacy.submodel`) does -- builds on the names here instead of
reaching into private modules:

* :class:`WireMessage`, :class:`Reader`, :data:`HEADER`, :func:`encode_blobs`,
  :func:`check_disjoint_roster` -- the versioned wire format (``docs/secagg.md``, "Stages,
  messages and checks"): a message subclasses :class:`WireMessage` with its own ``TYPE``;
* :func:`drive_round` and :data:`TamperFn` -- the in-process driver, for a variant's own
  ``run_*`` function;
* :func:`divide_by_weight` and :func:`check_int` -- the result and config checks.
"""

from __future__ import annotations

from fedkit.privacy.secagg._config import _check_int as check_int
from fedkit.privacy.secagg._driver import TamperFn, drive_round
from fedkit.privacy.secagg._messages import _HEADER as HEADER
from fedkit.privacy.secagg._messages import _blobs as encode_blobs
from fedkit.privacy.secagg._messages import _Message as WireMessage
from fedkit.privacy.secagg._messages import _Reader as Reader
from fedkit.privacy.secagg._messages import check_disjoint_roster
from fedkit.privacy.secagg._server import divide_by_weight

__all__ = [
    "HEADER",
    "Reader",
    "TamperFn",
    "WireMessage",
    "check_disjoint_roster",
    "check_int",
    "divide_by_weight",
    "drive_round",
    "encode_blobs",
]
