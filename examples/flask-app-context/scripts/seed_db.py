"""Seed the database: `python scripts/seed_db.py [--database-url URL]`."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a plain script from anywhere: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.seed import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
