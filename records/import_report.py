"""What an import created (or would create), skipped and rejected, and the warnings it raised."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from records.keeper import KeeperError


@dataclass
class Item:
    """One record named in a report: its kind, title and (for skips and rejections) why."""

    kind: str
    title: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.title!r}" + (f": {self.reason}" if self.reason else "")


@dataclass
class ImportReport:
    """What an import created (or would create), skipped and rejected, and the warnings it raised."""

    created: list[Item] = field(default_factory=list)
    skipped: list[Item] = field(default_factory=list)
    rejected: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def created_heading(self) -> str:
        """Return what the created list is: done, to be done, or what a rejected file would have done."""
        if not self.ok:
            return "Would have created"
        return "Would create" if self.dry_run else "Created"

    def hide(self, passwords: set[str]) -> None:
        """Replace each password (of 4 characters or more) a title, reason or warning echoes."""
        hidden = sorted((p for p in passwords if len(p) >= 4), key=len, reverse=True)
        if not hidden:
            return
        # One alternation: the regex engine scans each text once, however many passwords the file holds.
        pattern = re.compile("|".join(map(re.escape, hidden)))
        for entry in [*self.created, *self.skipped, *self.rejected]:
            entry.title = pattern.sub("(password hidden)", entry.title)
            entry.reason = pattern.sub("(password hidden)", entry.reason)
        self.warnings = [pattern.sub("(password hidden)", warning) for warning in self.warnings]

    def lines(self) -> list[str]:
        """Return the report as plain text lines."""
        out = []
        for heading, entries in (
            (self.created_heading, self.created),
            ("Skipped", self.skipped),
            ("Rejected", self.rejected),
        ):
            out.append(f"{heading}: {len(entries)}")
            out.extend(f"  {entry}" for entry in entries)
        if self.warnings:
            out.append(f"Warnings: {len(self.warnings)}")
            out.extend(f"  {warning}" for warning in self.warnings)
        return out


class ImportRejected(KeeperError):
    """The file was rejected whole; nothing was written. Carries the report."""

    def __init__(self, report: ImportReport):
        self.report = report
        count = len(report.rejected)
        super().__init__(
            f"{count} error{'s' if count != 1 else ''}: the file was rejected and nothing was written"
        )
