"""CIFAR-10, read from the standard "python version" batches into one uint8 tensor.

The loader reads ``<data_dir>/cifar-10-batches-py/`` -- the pickles ``data_batch_1`` ..
``data_batch_5`` and ``test_batch``, each a dict with ``data`` (``uint8`` ``N x 3072``, channel
planes R, G, B of 32 x 32 pixels, row-major) and ``labels`` (``N`` ints in ``0..9``) -- into
``uint8`` images ``[N, 3, 32, 32]`` and ``int64`` labels (augmentation and normalisation are
batched tensor ops later). The md5 sums of the files are not checked, so the offline
JPEG-derived copy that ``make test-data`` builds loads the same way as the original.

Where the data lives: ``data_dir`` if given, else ``$FEDKIT_DATA``, else
``$XDG_CACHE_HOME/fedkit`` (or ``~/.cache/fedkit``). When the folder is missing and
``download=True``, torchvision downloads the original archive there (needs network); when that
fails, :class:`DatasetNotFoundError` says where fedkit looked and how to provide the data.

Each folder is read once per process (cached by its resolved path); the returned tensors are
shared between callers and must be treated as read-only.

References:
    A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from fedkit.data._split import Split

__all__ = [
    "CIFAR10_CLASSES",
    "DatasetNotFoundError",
    "default_data_dir",
    "load_cifar10",
]

logger = logging.getLogger(__name__)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
"""Class names, indexed by label."""

_FOLDER = "cifar-10-batches-py"
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"
_IMAGE_SHAPE = (3, 32, 32)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder is missing (or incomplete) and could not be downloaded."""


def default_data_dir() -> Path:
    """Return the folder that holds (or will hold) ``cifar-10-batches-py/``.

    ``$FEDKIT_DATA`` if set and non-empty, else ``$XDG_CACHE_HOME/fedkit``, else
    ``~/.cache/fedkit``.
    """
    explicit = os.environ.get("FEDKIT_DATA", "")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "fedkit"


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> tuple[Split, Split]:
    """Load CIFAR-10 as ``(train, test)`` splits of uint8 images.

    Args:
        data_dir: Folder holding ``cifar-10-batches-py/``; ``None`` means
            :func:`default_data_dir`.
        download: If the folder is missing, download the original CIFAR-10 there with
            torchvision (needs network access).

    Returns:
        ``(train, test)``: 50,000 and 10,000 images ``[N, 3, 32, 32]`` (``uint8``) with
        ``int64`` labels in ``0..9``, ``num_classes = 10``.

    Raises:
        DatasetNotFoundError: If the folder or one of its six batch files is missing and
            could not be downloaded (or ``download`` is False).
        ValueError: If a batch file does not hold ``uint8`` ``N x 3072`` data with ``N``
            labels in ``0..9``.

    Example:
        >>> train, test = load_cifar10("/data", download=False)  # doctest: +SKIP
        >>> train.x.shape, test.x.shape  # doctest: +SKIP
        (torch.Size([50000, 3, 32, 32]), torch.Size([10000, 3, 32, 32]))

    References:
        A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    root = root.resolve()
    folder = root / _FOLDER
    if not _is_complete(folder):
        reason = "download=False"
        if download:
            reason = _try_download(root)
        if not _is_complete(folder):
            raise DatasetNotFoundError(_not_found_message(folder, reason))
    return _load_folder(folder)


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*_TRAIN_FILES, _TEST_FILE))


def _try_download(root: Path) -> str:
    """Download with torchvision; return why it failed (empty string on success)."""
    try:
        import torchvision

        logger.info("CIFAR-10 not found under %s; downloading with torchvision", root)
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            torchvision.datasets.CIFAR10(root=str(root), train=train, download=True)
    except Exception as exc:  # offline, proxy, disk full, ...: all mean "not available"
        return f"download failed: {type(exc).__name__}: {exc}"
    return ""


def _not_found_message(folder: Path, reason: str) -> str:
    missing = [name for name in (*_TRAIN_FILES, _TEST_FILE) if not (folder / name).is_file()]
    what = "is missing" if not folder.is_dir() else f"lacks {', '.join(missing)}"
    return (
        f"CIFAR-10 not found: {folder} {what} ({reason}). Expected the standard 'python "
        f"version' layout <data_dir>/{_FOLDER}/{{data_batch_1..data_batch_5, test_batch}}. "
        "Point fedkit at the folder holding it with the FEDKIT_DATA environment variable or "
        "the --data-dir flag (config key data_dir), or allow the download on a machine with "
        "network access. Offline, `make test` builds a copy from ../shared/data/cifar10; by "
        "hand: `python ../shared/data/cifar10/build.py OUT_ROOT` then FEDKIT_DATA=OUT_ROOT."
    )


@functools.lru_cache(maxsize=4)
def _load_folder(folder: Path) -> tuple[Split, Split]:
    logger.info("reading CIFAR-10 from %s", folder)
    train_x, train_y = _read_batches(folder, _TRAIN_FILES)
    test_x, test_y = _read_batches(folder, (_TEST_FILE,))
    num_classes = len(CIFAR10_CLASSES)
    return Split(train_x, train_y, num_classes), Split(test_x, test_y, num_classes)


def _read_batches(folder: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        path = folder / name
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        data = np.asarray(batch["data"]) if isinstance(batch, dict) and "data" in batch else None
        raw_labels = batch.get("labels") if isinstance(batch, dict) else None
        if data is None or raw_labels is None:
            raise ValueError(f"CIFAR-10 batch {path} lacks the keys 'data' and 'labels'")
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != int(np.prod(_IMAGE_SHAPE)):
            raise ValueError(
                f"CIFAR-10 batch {path}: 'data' has dtype {data.dtype} and shape {data.shape}, "
                "expected uint8 N x 3072"
            )
        label_array = np.asarray(raw_labels, dtype=np.int64)
        if label_array.shape != (data.shape[0],) or (
            label_array.size and (label_array.min() < 0 or label_array.max() > 9)
        ):
            raise ValueError(
                f"CIFAR-10 batch {path}: 'labels' has shape {label_array.shape}, expected "
                f"({data.shape[0]},) labels in 0..9"
            )
        images.append(data.reshape(-1, *_IMAGE_SHAPE))
        labels.append(label_array)
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate(images)))
    y = torch.from_numpy(np.concatenate(labels))
    return x, y
