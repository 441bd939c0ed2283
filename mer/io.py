"""Atomic, deterministic artifact I/O.

Why hand-written: ``numpy.savez_compressed`` stamps the current time into its zip entries, so two
runs of a stage on the same inputs would give different bytes and DVC would see a change.  Here
every zip entry carries a fixed timestamp, and every write goes to a temporary sibling that is
renamed into place only when complete, so an interrupted stage never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            if path.exists():
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            os.replace(tmp, path)
            os.chmod(path, 0o755)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if is_dir else tmp.unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = True) -> bytes:
    """Serialise ``arrays`` as an ``.npz`` whose bytes depend only on the arrays."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            # np.require keeps a 0-d scalar 0-d (np.ascontiguousarray would make it (1,))
            np.lib.format.write_array(member, np.require(arrays[name], requirements='C'),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=6 if compress else None)
    return buf.getvalue()


def save_npz(path: str | Path, compress: bool = True, **arrays: np.ndarray) -> Path:
    """Write ``arrays`` to ``path`` atomically and deterministically (see module docstring).

    ``compress=False`` for video frames: zlib gains ~15% on face crops (sensor noise) at a cost of
    ~100 ms per MB, which made compression, not computation, the slowest part of the crop stage.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(npz_bytes(arrays, compress))
    return path


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into memory (the file is closed on return)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
