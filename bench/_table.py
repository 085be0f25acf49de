"""What each benchmark returns: titled sections of Markdown tables, printed on the console and
written into ``docs/performance.md`` by ``bench.report``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = []
        if self.caption:
            lines += [self.caption, ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append(
            "|" + "|".join("---" if i == 0 else "--:" for i in range(len(self.headers))) + "|"
        )
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Section:
    """One figure of the performance page: ``key`` is its anchor, ``target`` the goal it is
    measured against (shown next to the numbers, never asserted)."""

    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    target: str = ""

    def markdown(self) -> str:
        parts = [f"## {self.title} {{#{self.key}}}", "", self.intro.strip()]
        if self.target:
            parts += ["", f"**Target:** {self.target}"]
        for table in self.tables:
            parts += ["", table.markdown()]
        if self.notes:
            parts += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts) + "\n"
