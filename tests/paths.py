"""Where the tests find what lives outside the repository (no Django here: plain tests use it)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# ../shared/seeds from the repository root: CI clones the repository next to shared/.
SEEDS = REPO.parent / "shared" / "seeds"
