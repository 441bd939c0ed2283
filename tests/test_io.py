"""Artifacts: same arrays give the same bytes; a failed write leaves nothing behind."""

import numpy as np
import pytest

from mer.io import atomic_path, load_npz, save_npz


def test_npz_is_byte_deterministic_and_round_trips(tmp_path):
    arrays = {"frames": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "x": np.float32([1.5])}
    a, b = save_npz(tmp_path / "a.npz", **arrays), save_npz(tmp_path / "b.npz", **arrays)
    assert a.read_bytes() == b.read_bytes()
    back = load_npz(a)
    assert back.keys() == arrays.keys()
    assert all(np.array_equal(back[k], arrays[k]) and back[k].dtype == arrays[k].dtype for k in arrays)


def test_failed_directory_write_leaves_old_content_and_no_temp(tmp_path):
    out = tmp_path / "crop"
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out, is_dir=True) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("worker died")
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop"]
