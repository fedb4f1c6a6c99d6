from __future__ import annotations

from pathlib import Path

from phototag.scanner import FileEntry, ScanError, display, walk
from tests.badfiles import make_bad_folder


def test_walk_names_every_problem_and_never_loops(tmp_path: Path) -> None:
    folder = make_bad_folder(tmp_path / "bad")
    items = list(walk(folder))
    files = {i.path.relative_to(folder).as_posix() for i in items if isinstance(i, FileEntry)}
    errors = {i.path.name: i.reason for i in items if isinstance(i, ScanError)}
    assert "folder.jpg/inside.png" in files
    assert "caf\u00e9\nnew line.jpg" in files
    assert errors["fifo.jpg"] == "not a regular file"
    assert errors["loop"] == "symlink loop, skipped"
    assert not any(p.startswith("loop/") for p in files)


def test_missing_top_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (item,) = list(walk(tmp_path / "unplugged"))
    assert isinstance(item, ScanError) and item.is_dir and "no such" in item.reason


def test_display_keeps_a_message_on_one_line() -> None:
    assert "\n" not in display(Path("a\nb.jpg"))
    assert display(Path("caf\u00e9.jpg")) == "caf\u00e9.jpg"
