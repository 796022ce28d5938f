"""Where the tests find the project and their data, wherever the test file sits in tests/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The project's checkout."""
DATA = ROOT / "tests" / "data"
"""Data the tests read: chart key lists, chart defaults, the URNs of an earlier version."""
