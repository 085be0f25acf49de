"""Run every benchmark of the performance page and print it, or write it.

    python -m bench.report --write docs/performance.md     # regenerate the page (~15 min)
    python -m bench.report --quick                           # smoke run, numbers meaningless
    python -m bench.report --only hot-path,import            # some sections

Sections: ``hot-path`` (per-call overhead on a tiny model), ``import`` and ``cli`` (start-up),
``cached-load`` (cache hits to the first result). Run it on a quiet machine: every figure is a
median of interleaved samples with its interquartile range, but a busy machine still widens them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from bench import cached_load, hot_path, startup
from bench._table import Section, Table

COMMAND = "python -m bench.report --write docs/performance.md"
SECTIONS = ("hot-path", "import", "cli", "cached-load")
PACKAGES = ("numpy", "pydantic", "typer", "rich", "onnx", "onnxruntime", "openvino")

INTRO = f"""\
# Performance

What unirun costs over calling each engine directly, measured against the engine's native
Python API in the same run: per-call overhead, start-up, and loading a cached model. These are
measurements, not promises: they depend on the machine and its load, which is why the page says
where and when they were taken, and why every figure is a median of interleaved samples with its
interquartile range (in parentheses). Targets are those of the performance work they track.

This page is generated; do not edit it by hand. Regenerate it from a checkout with the
development requirements installed (`pip install -r requirements-dev.txt`), on a quiet machine:

```bash
{COMMAND}
```

`python -m bench.report --quick` runs every benchmark briefly (a smoke test, meaningless
numbers); `--only hot-path,import,cli,cached-load` picks sections. Each section is also a
module of its own (`python -m bench.hot_path`, `bench.startup`, `bench.cached_load`).
"""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return platform.processor() or platform.machine()


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _load() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def environment(started: datetime.datetime, load_before: str) -> Table:
    import unirun

    table = Table(["", ""], caption="Measured on:")
    table.add("date (UTC)", started.strftime("%Y-%m-%d %H:%M"))
    table.add("machine", f"{platform.system()} {platform.release()} {platform.machine()}")
    table.add("CPU", _cpu_model())
    table.add("logical CPUs", os.cpu_count() or "unknown")
    table.add("load average 1/5/15 min, before / after", f"{load_before} · {_load()}")
    table.add("Python", f"{platform.python_implementation()} {platform.python_version()}")
    table.add("unirun", f"{unirun.__version__} at commit {_commit()}")
    for name in PACKAGES:
        try:
            table.add(name, importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            table.add(name, "not installed")
    return table


def build(quick: bool = False, only: tuple[str, ...] = SECTIONS) -> str:
    """The whole page, running the benchmarks of the sections in ``only``."""
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _load()
    sections: list[Section] = []
    if "hot-path" in only:
        print("running hot-path…", file=sys.stderr, flush=True)
        sections.append(hot_path.run(quick))
    if "import" in only or "cli" in only:
        print("running import, cli…", file=sys.stderr, flush=True)
        sections += startup.run(quick, which=tuple(k for k in ("import", "cli") if k in only))
    if "cached-load" in only:
        print("running cached-load…", file=sys.stderr, flush=True)
        sections.append(cached_load.run(quick))
    parts = [INTRO]
    if quick:
        parts.append(
            "!!! warning\n    A `--quick` smoke run: too short for the numbers to mean anything.\n"
        )
    parts.append(environment(started, load_before).markdown() + "\n")
    parts += [section.markdown() for section in sections]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--write", type=Path, help="write the page here instead of printing it")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}"
    )
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    page = build(args.quick, only)
    if args.write:
        args.write.write_text(page)
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
