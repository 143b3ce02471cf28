"""Where the real upstream artifacts are: ``../shared/upstream`` beside the checkout (see its README).

They are not part of the collection: tests that need them skip, with ``MISSING`` as the reason, where
the folder is absent (a user's clone).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = REPO_ROOT.parent / "shared" / "upstream"
CHARTS = UPSTREAM / "charts"
MISSING = f"the real upstream artifacts are not at {UPSTREAM} (a checkout beside shared/upstream has them)"


def real_charts() -> list[Path]:
    """The real chart packages of ``../shared/upstream/charts``, sorted ([] where it is absent)."""
    return sorted(CHARTS.glob("*.tgz")) if CHARTS.is_dir() else []
