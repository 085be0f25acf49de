"""docs/reliability.md names a test for every hostile case; each named test must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"


def test_every_test_the_page_names_exists() -> None:
    named = re.findall(r"`([\w/]+\.py)::(\w+)`", PAGE.read_text(encoding="utf-8"))
    assert len(named) > 40
    missing = [
        f"{file}::{name}"
        for file, name in named
        if not (ROOT / file).is_file()
        or f"def {name}(" not in (ROOT / file).read_text(encoding="utf-8")
    ]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
