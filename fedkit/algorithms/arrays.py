"""Conversion between Flower ``ArrayRecord``/``Array`` objects and numpy arrays.

The rules every fedkit component relies on when it turns a model into the flat vector the
pure rules (:mod:`fedkit.algorithms.rules`) and secure aggregation work on:

- **Order.** A flat vector is the concatenation of the arrays in the ``ArrayRecord``'s
  key (insertion) order, each raveled in C order. :func:`unflatten` splits in the same
  order, so ``unflatten(flatten(record), record)`` gives ``record`` back. Two records flatten
  compatibly only if their keys come in the same order with the same shapes.
- **Dtypes.** :func:`flatten` always returns ``float64`` (exact for float16/float32 and
  for integers below 2**53). :func:`unflatten` casts each array back to its reference's
  dtype, or to the one ``dtype`` given (float64 deltas shaped like a float32 model);
  :func:`float64_like` is the zero float64 template of a record.
- **Copies.** :func:`from_flower_array` is zero-copy: a read-only view of the ``Array``'s
  bytes whenever the header is the one ``np.save`` writes for the declared dtype and shape,
  otherwise (another order, ``.npy`` version or layout) Flower's own ``Array.numpy()``.
  :func:`to_flower_array` copies the data once (``tobytes``). :func:`flatten`,
  :func:`unflatten` and :func:`stack_rows` always copy; none mutates its input.

:func:`to_flower_array` and :func:`from_flower_array` are byte- and value-identical to
``Array(ndarray)`` and ``Array.numpy()`` but skip ``np.save``/``np.load``, whose header
writing and parsing (``ast.literal_eval``) cost about 0.6 ms per ten-array model each way
(~0.1 s per round of 100 clients); the header is cached per (dtype, shape).

Example:
    >>> import numpy as np
    >>> from flwr.app import ArrayRecord
    >>> record = ArrayRecord({"w": to_flower_array(np.ones((2, 2), np.float32)),
    ...                       "b": to_flower_array(np.arange(2, dtype=np.float32))})
    >>> flatten(record)
    array([1., 1., 1., 1., 0., 1.])
    >>> back = unflatten(flatten(record) * 2, record)
    >>> list(back), from_flower_array(back["b"]).dtype.name
    (['w', 'b'], 'float32')
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

import numpy as np
from flwr.app import Array, ArrayRecord

__all__ = [
    "flatten",
    "float64_like",
    "from_flower_array",
    "stack_rows",
    "to_flower_array",
    "unflatten",
]

_NUMPY = "numpy.ndarray"


@functools.lru_cache(maxsize=4096)
def _header(descr: str, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` header ``np.save`` writes for a C-order array of this dtype and shape."""
    dtype = np.dtype(descr)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, dtype=dtype), allow_pickle=False)
    data = buffer.getvalue()
    return data[: len(data) - math.prod(shape) * dtype.itemsize]


def to_flower_array(x: np.ndarray) -> Array:
    """``Array(x)``, byte for byte as ``np.save`` of the C-order array, without ``np.save``.

    Args:
        x: Any array (or array-like); a Fortran-order array is written in C order, as
            Flower does.

    Returns:
        A Flower ``Array`` of stype ``numpy.ndarray``; the data is copied once.

    Raises:
        ValueError: For object arrays, which Flower itself refuses (from ``np.save``).
    """
    x = np.asarray(x)
    if x.dtype.hasobject:
        return Array(x)  # Flower refuses it, with its own error
    x = np.asarray(x, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    shape = tuple(int(s) for s in x.shape)
    return Array(dtype=str(x.dtype), shape=shape, stype=_NUMPY,
                 data=_header(x.dtype.str, shape) + x.tobytes())


def from_flower_array(array: Array) -> np.ndarray:
    """``array.numpy()``, as a read-only zero-copy view when the header is the standard one.

    Args:
        array: A Flower ``Array``.

    Returns:
        The array ``np.load`` would return. It is a read-only view of ``array.data`` when the
        bytes are exactly the ``np.save`` header for the declared dtype and shape followed
        by the data; otherwise the result of ``array.numpy()``.

    Raises:
        ValueError: From ``array.numpy()`` when the bytes are not a valid ``.npy`` file.
    """
    if array.stype == _NUMPY:
        try:
            dtype = np.dtype(array.dtype)
            shape = tuple(int(s) for s in array.shape)
        except (TypeError, ValueError):
            return array.numpy()
        if not dtype.hasobject:
            header = _header(dtype.str, shape)
            data = array.data
            if len(data) == len(header) + math.prod(shape) * dtype.itemsize and (
                    data.startswith(header)):
                return np.frombuffer(data, dtype=dtype, offset=len(header)).reshape(shape)
    return array.numpy()


def flatten(arrays: Sequence[np.ndarray] | ArrayRecord) -> np.ndarray:
    """Concatenate the arrays, in order, into one new float64 vector.

    Args:
        arrays: numpy arrays, or an ``ArrayRecord`` (taken in its key order).

    Returns:
        A float64 vector of the arrays' total size (``(0,)`` for no arrays).
    """
    if isinstance(arrays, ArrayRecord):
        arrays = [from_flower_array(a) for a in arrays.values()]
    if not arrays:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector: np.ndarray, reference: ArrayRecord,
              dtype: np.dtype | type | None = None) -> ArrayRecord:
    """Split ``vector`` into arrays with the names, order and shapes of ``reference``.

    Args:
        vector: A 1-d vector of ``reference``'s total size.
        reference: The record whose keys and shapes to follow.
        dtype: The dtype of every output array; by default each takes its reference's.

    Returns:
        A new ``ArrayRecord``.

    Raises:
        ValueError: If the vector's shape is not ``(total size of reference,)``.
    """
    total = sum(int(np.prod(a.shape)) for a in reference.values())
    if vector.shape != (total,):
        raise ValueError(f"vector has shape {vector.shape}, expected ({total},)")
    out: dict[str, Array] = {}
    offset = 0
    for name, ref in reference.items():
        size = int(np.prod(ref.shape))
        target = np.dtype(ref.dtype if dtype is None else dtype)
        out[name] = to_flower_array(vector[offset:offset + size].reshape(ref.shape).astype(target))
        offset += size
    return ArrayRecord(out)


def float64_like(reference: ArrayRecord) -> ArrayRecord:
    """Zero float64 arrays with the names, order and shapes of ``reference``.

    Args:
        reference: The record to take keys and shapes from (its dtypes are ignored).

    Returns:
        A new ``ArrayRecord`` of float64 zeros.
    """
    return ArrayRecord({name: to_flower_array(np.zeros(tuple(a.shape), dtype=np.float64))
                        for name, a in reference.items()})


def stack_rows(rows: list[np.ndarray], dim: int) -> np.ndarray:
    """Stack per-client vectors into one new ``(len(rows), dim)`` array.

    Args:
        rows: Vectors of length ``dim``, one per client.
        dim: The vector length, used for the empty case.

    Returns:
        The stacked rows, or a float64 ``(0, dim)`` array when ``rows`` is empty.
    """
    return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float64)
