"""The README's op list is generated from supported_ops(); keep them in sync."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import unirun_coreml as uc

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_the_supported_ops() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- supported-ops:start[^>]*-->\n(.*?)\n<!-- supported-ops:end -->", text, re.S
    )
    assert block is not None, "README.md lost its supported-ops markers"
    listed = [op for op in re.split(r"[,\s]+", block.group(1)) if op]
    builtin = [op for op in uc.supported_ops() if "::" not in op]
    expected = "\n".join(textwrap.wrap(", ".join(builtin), 96))
    assert listed == builtin, f"replace the README block with:\n{expected}"
