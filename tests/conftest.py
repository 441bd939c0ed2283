"""Shared test set-up: where the real third-party fixtures are.

They live outside the repository (never committed): ``../shared/fixtures`` beside the checkout,
or wherever ``MER_FIXTURES`` points.  Tests that need one skip with the path they looked at.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("MER_FIXTURES", ROOT.parent / "shared" / "fixtures"))
