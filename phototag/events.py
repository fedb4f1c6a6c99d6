"""What happened, and how it is printed: the indexer emits ``Event``s and fills a
``Summary``; the CLI and the watcher print them through the same ``EventPrinter``.

Kept apart from both so neither imports the other (the watcher once borrowed cli helpers
while the cli lazily loaded the watcher).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from phototag.files import display, valid_name
from phototag.types import Tag


@dataclass
class Event:
    """What happened to one photo; the CLI and the watcher turn these into lines."""

    kind: str  # new | changed | moved | copied | deleted | skipped | unchanged | written | ...
    path: Path
    tags: list[Tag] = field(default_factory=list)
    reason: str | None = None
    old_path: Path | None = None
    written: Path | None = None  # file or sidecar that received the tags
    changes: tuple[list[str], list[str]] | None = None  # (added, removed) keywords


@dataclass
class Summary:
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    written: int = 0
    embedded: int = 0
    seconds: float = 0.0

    @property
    def photos_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        keys = ("new", "changed", "moved", "deleted", "unchanged", "skipped", "written", "embedded")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out["seconds"] = round(self.seconds, 3)
        out["photos_per_second"] = round(self.photos_per_second, 1)
        return out

    def add(self, other: Summary) -> None:
        """Count ``other`` in too (the watcher's running totals)."""
        for name in self.as_dict():
            if name not in ("seconds", "photos_per_second"):
                setattr(self, name, getattr(self, name) + getattr(other, name))


def summary_line(summary: Summary, dry_run: bool) -> str:
    d = summary.as_dict()
    counts = ", ".join(
        f"{d[k]} {k}"
        for k in ("new", "changed", "moved", "deleted", "unchanged", "skipped", "written")
    )
    prefix = "dry run, nothing changed: " if dry_run else ""
    return f"{prefix}{counts} in {d['seconds']:.1f} s ({d['photos_per_second']:.1f} photos/s)"


def write_mode(default: str, no_write: bool, sidecar: bool) -> str:
    """The write mode the options ask for (``default``: the configured one)."""
    if no_write and sidecar:
        raise click.UsageError("--no-write and --sidecar exclude each other")
    if no_write:
        return "none"
    return "sidecar" if sidecar else default


class EventPrinter:
    """One line per photo event: skips always (stderr), the rest with -v or for dry runs."""

    def __init__(self, *, verbose: int, json_lines: bool = False, dry_run: bool = False) -> None:
        self.verbose = verbose
        self.json_lines = json_lines
        self.dry_run = dry_run

    def __call__(self, event: Event) -> None:
        if self.json_lines:
            record: dict[str, Any] = {"event": event.kind, "path": _json_path(event.path)}
            if event.tags:
                record["tags"] = [t.tag for t in event.tags]
            if event.reason:
                record["reason"] = event.reason
            if event.old_path:
                record["from"] = _json_path(event.old_path)
            click.echo(json.dumps(record, ensure_ascii=False))
            return
        if event.kind == "skipped":
            click.echo(f"skipping {display(event.path)}: {event.reason}", err=True)
        elif event.kind == "notice":
            click.echo(event.reason or "", err=True)
        elif self.dry_run and event.changes is not None:
            added, removed = event.changes
            if added or removed:
                parts = [f"+{w}" for w in added] + [f"-{w}" for w in removed]
                click.echo(f"would write {display(event.written or event.path)}: {' '.join(parts)}")
        elif self.verbose or self.dry_run:
            detail = ", ".join(t.tag for t in event.tags)
            if event.old_path:
                detail = f"from {display(event.old_path)}"
            if event.reason:
                detail = event.reason
            click.echo(f"{event.kind} {display(event.path)}" + (f": {detail}" if detail else ""))


def _json_path(path: Path) -> str:
    """JSON holds any text, but not a name that is not valid UTF-8: that one is escaped."""
    return str(path) if valid_name(path) is None else display(path)
