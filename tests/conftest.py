"""Shared test set-up: where the real third-party fixtures are.

They live outside the repository (never committed): ``../shared/fixtures`` beside the checkout,
or wherever ``MER_FIXTURES`` points.  Tests that need one skip with the path they looked at.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("MER_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest, and on a loaded machine two threads that wait
    on each other make a training step ~7x slower (measured 50 vs 370 ms).  Network test modules
    use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
