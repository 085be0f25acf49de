"""Start-up cost: ``import unirun``, its first API use, ``unirun --help`` and ``unirun backends``.

    python -m bench.startup [--quick]

Every sample is a fresh interpreter; the candidates alternate in rounds. Import times are
measured inside the child around the import statement (interpreter start excluded); command
times are the wall time of the whole process, as a user waits for it. ``python -X importtime``
then names the modules that cost the most.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bench._table import Section, Table
from bench._timing import Stats, child_env, interleave, process_seconds, run_json

IMPORT_TARGET = "`import unirun` ≤ `import numpy, pydantic` + 100 ms (issue 15)."
HELP_TARGET = "`unirun --help` ≤ 0.3 s wall time (issue 15)."

#: What a program pays before its first call: the statement, timed inside a fresh interpreter.
IMPORTS = {
    "import numpy, pydantic": "import numpy, pydantic",
    "import unirun": "import unirun",
    "import unirun; unirun.load": "import unirun; unirun.load",
    "import unirun.cli": "import unirun.cli",
}
_CHILD = (
    "import json, time\nt, c = time.perf_counter(), time.process_time()\n{stmt}\n"
    "print(json.dumps([time.perf_counter() - t, time.process_time() - c]))"
)


def cli() -> list[str]:
    script = Path(sys.executable).with_name("unirun")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "unirun"]


def _import_section(rounds: int) -> Section:
    env = child_env()
    samples = interleave(
        {
            label: (lambda stmt=stmt: run_json(_CHILD.format(stmt=stmt), env))
            for label, stmt in IMPORTS.items()
        },
        rounds,
    )
    wall = {label: Stats.of([v[0] for v in values]) for label, values in samples.items()}
    cpu = {label: Stats.of([v[1] for v in values]) for label, values in samples.items()}
    base = "import numpy, pydantic"
    table = Table(
        ["statement", "wall ms (IQR)", "CPU ms (IQR)", "over numpy + pydantic: wall / CPU ms"]
    )
    for label in samples:
        over = (wall[label].median - wall[base].median, cpu[label].median - cpu[base].median)
        table.add(
            f"`{label}`",
            wall[label].ms(),
            cpu[label].ms(),
            f"{over[0] * 1e3:+.1f} / {over[1] * 1e3:+.1f}",
        )
    section = Section(
        "import",
        "Import time",
        f"Each statement runs in a fresh interpreter, timed around the statement alone, "
        f"{rounds} times, the statements alternating. `unirun.load` touches the public API, so "
        "its row includes whatever `import unirun` defers until first use. The CPU time "
        "(`time.process_time`) leaves out waiting for a core, so it is the steadier figure on "
        "a busy machine; the wall time is what a user waits.",
        [table],
        target=IMPORT_TARGET,
    )
    for stmt in ("import unirun", "import unirun; unirun.load"):
        section.tables.append(offenders(stmt, max(1, min(rounds, 5))))
    return section


def offenders(stmt: str, repeats: int, top: int = 12) -> Table:
    """The modules with the largest self time under ``python -X importtime``, medians over
    ``repeats`` runs, with their cumulative time (what importing them and their imports took)."""
    self_us: dict[str, list[int]] = defaultdict(list)
    cumulative_us: dict[str, list[int]] = defaultdict(list)
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", stmt],
            capture_output=True,
            text=True,
            env=child_env(),
            check=True,
        )
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, total, name = (part.strip() for part in line[len("import time:") :].split("|"))
            self_us[name.strip()].append(int(own))
            cumulative_us[name.strip()].append(int(total))
    ranked = sorted(self_us, key=lambda m: statistics.median(self_us[m]), reverse=True)[:top]
    table = Table(
        ["module", "self ms", "cumulative ms"],
        caption=f"Top {top} modules by self time under `python -X importtime -c "
        f'"{stmt}"` (medians of {repeats} runs):',
    )
    for name in ranked:
        table.add(
            f"`{name}`",
            f"{statistics.median(self_us[name]) / 1e3:.1f}",
            f"{statistics.median(cumulative_us[name]) / 1e3:.1f}",
        )
    return table


def _command_section(rounds: int) -> Section:
    env = child_env()
    commands = {
        "`python -c pass` (interpreter start)": [sys.executable, "-c", "pass"],
        '`python -c "import unirun"`': [sys.executable, "-c", "import unirun"],
        "`unirun --help`": [*cli(), "--help"],
        "`unirun backends`": [*cli(), "backends"],
    }
    samples = interleave(
        {label: (lambda argv=argv: process_seconds(argv, env)) for label, argv in commands.items()},
        rounds,
    )
    table = Table(["command", "wall ms (IQR)", "CPU ms (IQR)"])
    for label, values in samples.items():
        table.add(
            label, Stats.of([v[0] for v in values]).ms(), Stats.of([v[1] for v in values]).ms()
        )
    return Section(
        "cli",
        "Command-line start",
        f"Wall time of the whole process, as a user waits for it, and its CPU time (user + "
        f"system), {rounds} runs each, the commands alternating. `unirun backends` asks every "
        "installed engine what it offers, so it imports them all.",
        [table],
        target=HELP_TARGET,
    )


def run(quick: bool = False, which: tuple[str, ...] = ("import", "cli")) -> list[Section]:
    sections = []
    if "import" in which:
        sections.append(_import_section(1 if quick else 21))
    if "cli" in which:
        sections.append(_command_section(1 if quick else 11))
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    for section in run(parser.parse_args().quick):
        print(section.markdown())


if __name__ == "__main__":
    main()
