"""phototag watch with real watchdog events on temp folders.

The watcher runs in a thread (or, for signals, as a subprocess); the test thread reads the
catalog through its own connection, the way a query runs beside a watcher. Waits poll the
catalog with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag import plugins
from phototag import watcher as watcher_module
from phototag.catalog import Catalog, Photo
from phototag.indexer import Event
from phototag.library import Library
from phototag.models import load_model
from phototag.watcher import Watcher
from tests.conftest import SKIMAGE_DATA, FakeBackend, env_for_subprocess, run_cli

SETTLE = 0.3
MODEL = "devise-lite0"
REPO = Path(__file__).resolve().parent.parent


def embedded() -> int:
    """Photos the fake backend has embedded (it counts views; the model takes several)."""
    return FakeBackend.photos // len(load_model(MODEL).manifest["input"]["views"])


@dataclass
class Running:
    watcher: Watcher
    catalog: Catalog  # the test's own connection
    events: list[Event] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def row(self, path: Path) -> Photo | None:
        return self.catalog.photo_at(path)

    def indexed(self, path: Path) -> bool:
        row = self.row(path)
        return row is not None and row.status == "ok" and self.catalog.has_vectors(row.id, MODEL)

    def kinds(self, kind: str) -> Counter[str]:
        return Counter(str(e.path) for e in list(self.events) if e.kind == kind)


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


@contextmanager
def watching(
    folder: Path, catalog_path: Path, *, backend: str = "fake", write: str = "none",
    poll: bool = False,
) -> Iterator[Running]:  # fmt: skip
    library = Library(catalog_path, backend=backend)
    events: list[Event] = []
    messages: list[str] = []
    watcher = Watcher(
        library, [folder], write=write, settle=SETTLE, poll=poll, poll_interval=0.2,
        on_event=events.append, on_message=messages.append,
    )  # fmt: skip
    failures: list[BaseException] = []

    def target() -> None:
        try:
            watcher.run()
        except BaseException as exc:  # surfaced in the test thread
            failures.append(exc)
            watcher.started.set()

    thread = threading.Thread(target=target, name="watcher", daemon=True)
    thread.start()
    assert watcher.started.wait(60)
    assert not failures, failures
    running = Running(watcher, Catalog(catalog_path), events, messages)
    try:
        yield running
    finally:
        watcher.stop()
        thread.join(10)
        running.catalog.close()
        library.close()
    assert not thread.is_alive(), "the watcher did not stop"
    assert not failures, failures


def slow_copy(src: Path, dest: Path, chunks: int = 6, pause: float = 0.12) -> None:
    """Like a copy from a camera card: the file grows for longer than the settle time."""
    data = src.read_bytes()
    step = len(data) // chunks + 1
    with open(dest, "wb") as out:
        for start in range(0, len(data), step):
            out.write(data[start : start + step])
            out.flush()
            time.sleep(pause)


def test_watch_follows_copies_moves_deletions_and_renames(
    photos: Path, tmp_path: Path, catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeBackend, "photos", 0)
    watched = tmp_path / "watched"
    watched.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(photos / name, watched / name)
    with watching(watched, catalog_path) as run:
        wait_for(lambda: run.indexed(watched / "coffee.png"), what="reconcile on start")
        assert run.indexed(watched / "chelsea.png")
        for name in ("astronaut.png", "rocket.jpg", "motorcycle_left.png"):
            shutil.copy(photos / name, watched / name)
        slow = next(p for p in sorted(photos.glob("*.jpg")) if p.name != "rocket.jpg")
        slow_copy(slow, watched / "slow.jpg")
        # never photos for the watcher: temp files, hidden files, sidecars, other files
        ignored = [".phototag-tmp-0123.jpg", ".hidden.jpg", "coffee.png.xmp", "notes.txt"]
        for name in ignored:
            shutil.copy(photos / "rocket.jpg", watched / name)
        (watched / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

        present = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg",
                   "motorcycle_left.png", "slow.jpg"]  # fmt: skip
        wait_for(lambda: all(run.indexed(watched / n) for n in present), what="new photos")
        wait_for(lambda: run.kinds("skipped")[str(watched / "broken.jpg")], what="bad file")
        slow_row = run.row(watched / "slow.jpg")
        assert slow_row is not None and slow_row.size == slow.stat().st_size
        assert embedded() == 6, "each photo embedded once, the slow one complete"
        assert all(run.row(watched / n) is None for n in ignored)

        # a move keeps the row, its vectors and tags: nothing is embedded again
        cat_row = run.row(watched / "chelsea.png")
        assert cat_row is not None
        vector = run.catalog.vector_of(cat_row.id, MODEL, "semantic")
        tags = run.catalog.tags_of([cat_row.id])[cat_row.id]
        (watched / "sub").mkdir()
        os.rename(watched / "chelsea.png", watched / "sub" / "chelsea.png")
        wait_for(lambda: run.indexed(watched / "sub" / "chelsea.png"), what="moved photo")
        moved = run.row(watched / "sub" / "chelsea.png")
        assert moved is not None and moved.id == cat_row.id
        assert run.row(watched / "chelsea.png") is None
        assert np.array_equal(run.catalog.vector_of(moved.id, MODEL, "semantic"), vector)
        assert run.catalog.tags_of([moved.id])[moved.id] == tags

        # a deleted photo leaves the results
        (watched / "rocket.jpg").unlink()
        wait_for(lambda: run.row(watched / "rocket.jpg").status == "missing", what="deletion")

        # a renamed folder takes its photos along
        os.rename(watched / "sub", watched / "renamed")
        wait_for(lambda: run.indexed(watched / "renamed" / "chelsea.png"), what="folder rename")
        renamed = run.row(watched / "renamed" / "chelsea.png")
        assert renamed is not None and renamed.id == cat_row.id

        time.sleep(SETTLE * 4)  # room for any loop to show itself
        assert embedded() == 6, "nothing was embedded twice"
        assert max(run.kinds("new").values()) == 1
        assert run.kinds("moved")[str(watched / "renamed" / "chelsea.png")] == 1

    reader = Library(catalog_path, backend="fake")
    try:
        found = {str(hit.path) for hit in reader.find("cat", limit=50)}
    finally:
        reader.close()
    assert str(watched / "renamed" / "chelsea.png") in found
    assert str(watched / "coffee.png") in found
    assert str(watched / "rocket.jpg") not in found
    assert str(watched / "chelsea.png") not in found
    assert str(watched / "sub" / "chelsea.png") not in found


def _variants(count: int, folder: Path) -> list[Path]:
    """Distinct small photos (different bytes and pixels)."""
    rng = np.random.default_rng(7)
    base = np.asarray(Image.open(SKIMAGE_DATA / "coffee.png").convert("RGB").resize((160, 120)))
    paths = []
    for i in range(count):
        noise = rng.integers(-12, 12, base.shape, dtype=np.int16)
        pixels = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        path = folder / f"burst-{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=85)
        paths.append(path)
    return paths


def test_a_burst_is_embedded_in_batches(
    tmp_path: Path, catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeBackend, "photos", 0)
    monkeypatch.setattr(FakeBackend, "calls", 0)
    staging, watched = tmp_path / "staging", tmp_path / "watched"
    staging.mkdir()
    watched.mkdir()
    burst = _variants(48, staging)
    with watching(watched, catalog_path) as run:
        for path in burst:
            os.rename(path, watched / path.name)
        wait_for(lambda: all(run.indexed(watched / p.name) for p in burst), what="the burst")
    assert embedded() == len(burst)
    assert FakeBackend.calls <= 6, "photos are embedded in batches, not one call each"


def test_a_folder_that_disappears_is_reported_once_and_picked_up_again(
    photos: Path, tmp_path: Path, catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "ROOT_CHECK_SECONDS", 0.1)
    drive = tmp_path / "drive"
    drive.mkdir()
    for name in ("coffee.png", "rocket.jpg"):
        shutil.copy(photos / name, drive / name)
    with watching(drive, catalog_path) as run:
        wait_for(lambda: run.indexed(drive / "rocket.jpg"), what="reconcile")
        os.rename(drive, tmp_path / "unplugged")  # the drive goes away
        wait_for(lambda: any("not available" in m for m in run.messages), what="report")
        time.sleep(0.5)
        assert sum("not available" in m for m in run.messages) == 1
        assert run.indexed(drive / "rocket.jpg"), "an unplugged drive's photos stay"
        (tmp_path / "unplugged" / "rocket.jpg").unlink()  # changed while away
        shutil.copy(photos / "chelsea.png", tmp_path / "unplugged" / "chelsea.png")
        os.rename(tmp_path / "unplugged", drive)  # and comes back
        wait_for(lambda: run.indexed(drive / "chelsea.png"), what="catching up")
        wait_for(lambda: run.row(drive / "rocket.jpg").status == "missing", what="sweep")
        assert any("is back" in m for m in run.messages)
        shutil.copy(photos / "astronaut.png", drive / "astronaut.png")  # watched again
        wait_for(lambda: run.indexed(drive / "astronaut.png"), what="events after return")


def test_falls_back_to_polling_when_inotify_is_exhausted(
    photos: Path, tmp_path: Path, catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watchdog.observers

    def exhausted() -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", exhausted)
    monkeypatch.setattr(FakeBackend, "photos", 0)
    watched = tmp_path / "watched"
    watched.mkdir()
    with watching(watched, catalog_path) as run:
        assert any("polling every" in m and "max_user_watches" in m for m in run.messages)
        shutil.copy(photos / "coffee.png", watched / "coffee.png")
        wait_for(lambda: run.indexed(watched / "coffee.png"), what="polled photo")
        (watched / "sub").mkdir()
        os.rename(watched / "coffee.png", watched / "sub" / "coffee.png")
        wait_for(lambda: run.indexed(watched / "sub" / "coffee.png"), what="polled move")
    assert embedded() == 1


def _exiftool_writer() -> bool:
    return "exiftool" in plugins.writers() and shutil.which("exiftool") is not None


@pytest.mark.skipif(not _exiftool_writer(), reason="the exiftool writer is not available")
def test_end_to_end_real_model_and_writer_never_writes_twice(
    photos: Path, tmp_path: Path, catalog_path: Path
) -> None:
    """Default backend and model, tags written into the files: each photo written once."""
    watched = tmp_path / "watched"
    watched.mkdir()
    names = ["chelsea.png", "rocket.jpg", "coffee.png"]  # photos the model tags with confidence
    with watching(watched, catalog_path, backend="onnx", write="embed") as run:
        for name in names[:2]:
            shutil.copy(photos / name, watched / name)
        slow_copy(photos / names[2], watched / names[2])
        wait_for(lambda: all(run.indexed(watched / n) for n in names), 60, "tagged photos")
        time.sleep(SETTLE * 5)  # the writer's renames must not bring them back
        written = [e for e in run.events if e.written is not None]
        assert Counter(str(e.path) for e in written) == {str(watched / n): 1 for n in names}
        assert max(run.kinds("new").values()) == 1 and not run.kinds("changed")
        for name in names:
            row = run.row(watched / name)
            st = (watched / name).stat()
            assert row is not None and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)
        # files hold the confident words of the catalog's machine tags (the default)
        writable = run.watcher.library.tagger.writable
        machine = {n: [t.tag for t in writable([t for t, src in run.catalog.tags_of(
            [run.row(watched / n).id])[run.row(watched / n).id] if src == "machine"])]
            for n in names}  # fmt: skip
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-dc:Subject", *(str(watched / n) for n in names)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for item in json.loads(out):
        subject = item.get("Subject", [])
        keywords = {str(k).lower() for k in (subject if isinstance(subject, list) else [subject])}
        name = Path(item["SourceFile"]).name
        assert machine[name] and {t.lower() for t in machine[name]} <= keywords


def _fake_plugin_dist(folder: Path) -> Path:
    """The test's fake backend as an installed plugin (entry point), for a subprocess."""
    folder.mkdir()
    (folder / "phototag_fake_watch.py").write_text(
        "from phototag.hookspecs import hookimpl\n"
        "from tests.conftest import FakeBackend\n\n\n"
        "@hookimpl\n"
        "def register_backends(register):\n"
        "    register('fake', FakeBackend)\n"
    )
    info = folder / "phototag_fake_watch-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: phototag-fake-watch\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[phototag]\nfake = phototag_fake_watch\n")
    return folder


def test_subprocess_prints_json_lines_exits_0_on_sigterm_and_catches_up_on_restart(
    photos: Path, tmp_path: Path, catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched, staging = tmp_path / "watched", tmp_path / "staging"
    watched.mkdir()
    staging.mkdir()
    burst = _variants(40, staging)
    plugin = _fake_plugin_dist(tmp_path / "plugin")
    path = os.pathsep.join([str(plugin), str(REPO), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "phototag", "--catalog", str(catalog_path), "--backend", "fake",
         "watch", str(watched), "--no-write", "--json", "--settle", str(SETTLE)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env_for_subprocess(PYTHONPATH=path),
    )  # fmt: skip
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, ""))),
        threading.Thread(target=lambda: errors.extend(iter(proc.stderr.readline, ""))),
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: any("watching" in e for e in errors), 30, f"start: {errors}")
        shutil.copy(photos / "coffee.png", watched / "coffee.png")
        wait_for(lambda: any('"new"' in line for line in lines), 20, "a JSON line")
        for path in burst:
            os.rename(path, watched / path.name)
        wait_for(lambda: sum('"new"' in line for line in lines) > 1, 20, "a busy watcher")
        proc.send_signal(signal.SIGTERM)  # while it works through the burst
        started = time.monotonic()
        code = proc.wait(timeout=10)
        assert code == 0 and time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        for reader in readers:
            reader.join(5)
    err = "".join(errors)
    assert "Traceback" not in err and "stopped:" in err
    records = [json.loads(line) for line in lines]
    assert records[0]["path"] == str(watched / "coffee.png") and records[0]["tags"]
    done = {r["path"] for r in records if r["event"] == "new"}
    monkeypatch.setattr(FakeBackend, "photos", 0)
    with watching(watched, catalog_path) as run:  # the next start reconciles the rest
        wait_for(lambda: all(run.indexed(watched / p.name) for p in burst), what="catch-up")
    assert embedded() == len(burst) + 1 - len(done), "nothing lost, nothing embedded twice"


def test_watch_rejects_conflicting_write_modes(tmp_path: Path) -> None:
    code, _out, err = run_cli("watch", str(tmp_path), "--no-write", "--sidecar")
    assert code == 2 and "exclude" in err


def test_handler_keeps_only_visible_photo_names(tmp_path: Path) -> None:
    inbox = watcher_module._Inbox()
    handler = watcher_module._Handler(str(tmp_path), inbox)

    @dataclass
    class Ev:
        event_type: str
        src_path: str
        dest_path: str = ""
        is_directory: bool = False

    root = str(tmp_path)
    for name in (".phototag-tmp-1.jpg", ".x.jpg", "a.jpg.xmp", "a.txt", ".hidden/a.jpg"):
        handler.dispatch(Ev("created", f"{root}/{name}"))
    handler.dispatch(Ev("opened", f"{root}/a.jpg"))
    for _ in range(3):
        handler.dispatch(Ev("modified", f"{root}/a.jpg"))  # collapsed into one
    handler.dispatch(Ev("moved", f"{root}/.phototag-tmp-2.jpg", f"{root}/b.jpg"))
    handler.dispatch(Ev("moved", f"{root}/c.jpg", f"{root}/.Trash/c.jpg"))
    handler.dispatch(Ev("moved", f"{root}/d", f"{root}/e", is_directory=True))
    assert [(c.kind, os.path.relpath(c.path, root), c.dest and os.path.relpath(c.dest, root))
            for c in inbox.take()] == [  # fmt: skip
        ("sidecar", "a.jpg.xmp", None),  # another app's keyword edit: its photo is looked at
        ("touch", "a.jpg", None), ("touch", "b.jpg", None), ("deleted", "c.jpg", None),
        ("moved", "d", "e"),
    ]  # fmt: skip
