"""kill -9 at random moments, in embed and sidecar mode: after one complete run, every
photo's file (or sidecar) holds exactly the machine tags the catalog has, and no temp is left.

The run under test is a real ``phototag index`` process (fake backend, so it is quick);
it is killed either at a random time or just after a random number of photos were written.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from phototag.catalog import Catalog
from phototag.files import TEMP_PREFIX
from tests.conftest import INTERIORS, SKIMAGE_DATA, env_for_subprocess, run_cli

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "exiftool"], capture_output=True).returncode != 0,
    reason="exiftool not installed",
)

ROOT = Path(__file__).parents[1]
#: a phototag process with the tests' fake backend registered (the same hook as real plugins)
DRIVER = (
    "import sys; from phototag.plugins import pm; from tests.fakes import FakePlugin; "
    "pm.register(FakePlugin(), name='fake-backend'); from phototag.cli import main; "
    "main(sys.argv[1:])"
)
PHOTOS = 8
TRIALS = 10


def make_photos(folder: Path) -> None:
    """Small real photos (tags need real content), each its own bytes."""
    folder.mkdir()
    sources = sorted(INTERIORS.glob("*.jpg"))[:PHOTOS - 4] + [
        SKIMAGE_DATA / n for n in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
    ]
    for i, src in enumerate(sources):
        with Image.open(src) as im:
            im.convert("RGB").resize((96, 72)).save(folder / f"p{i:02d}.jpg", quality=85)


def start(catalog: Path, folder: Path, mode: tuple[str, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, "--catalog", str(catalog), "--backend", "fake",
         "index", *mode, str(folder)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env_for_subprocess(PHOTOTAG_DECODE_WORKERS="1"),
    )  # fmt: skip


def kill_at_random(proc: subprocess.Popen[bytes], folder: Path, rng: random.Random) -> None:
    """Half the trials at a random time; the rest in the middle of writing: once the k-th
    temp copy appears (k random), after a random few milliseconds more."""
    if rng.random() < 0.5:
        time.sleep(rng.uniform(0.2, 3.0))
    else:
        wanted, seen = rng.randrange(1, PHOTOS + 1), set()
        deadline = time.monotonic() + 30
        while len(seen) < wanted and proc.poll() is None and time.monotonic() < deadline:
            seen |= {n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)}
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def file_tags(paths: list[Path]) -> dict[Path, tuple[set[str], set[str]]]:
    """(phototag:Tags names, dc:subject) of each file, by the real exiftool."""
    out = subprocess.run(
        ["exiftool", "-j", "-struct", "-config", str(ROOT / "phototag" / "exiftool.config"),
         "-XMP-phototag:Tags", "-XMP-dc:Subject", *map(str, paths)],
        capture_output=True, text=True,
    )  # fmt: skip
    found = {}
    for item in json.loads(out.stdout or "[]"):
        tags = item.get("Tags") or []
        subject = item.get("Subject") or []
        subject = subject if isinstance(subject, list) else [subject]
        names = {str(t["Name"]) for t in (tags if isinstance(tags, list) else [tags])}
        found[Path(item["SourceFile"])] = (names, {str(s) for s in subject})
    return found


def assert_agreement(catalog_path: Path, folder: Path, sidecar: bool) -> None:
    catalog = Catalog(catalog_path)
    rows = catalog.photos_under(catalog.find_root(folder)[0], "")  # type: ignore[index]
    assert len(rows) == PHOTOS
    targets = {
        row.id: (row.path.with_name(row.path.name + ".xmp") if sidecar else row.path)
        for row in rows.values()
    }
    missing = [t for t in targets.values() if not t.exists()]
    assert not missing, f"catalogued photos without their sidecar: {missing}"
    in_files = file_tags(list(targets.values()))
    for row in rows.values():
        machine = {t.tag for t in catalog.machine_tags(row.id)}
        names, subject = in_files[targets[row.id]]
        assert machine and names == machine, row.path
        assert machine <= subject, row.path
        assert row.written_mode == ("sidecar" if sidecar else "embed"), row.path
        if not sidecar:
            st = row.path.stat()
            assert (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns), row.path
    assert catalog.stats("devise-lite0").unwritten == 0
    catalog.close()
    assert not [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("mode", ["embed", "sidecar"])
def test_kill_9_at_random_moments_then_one_run_agrees(tmp_path: Path, mode: str) -> None:
    rng = random.Random(f"phototag-{mode}")
    flags = ("--sidecar",) if mode == "sidecar" else ()
    template = tmp_path / "template"
    make_photos(template)
    for trial in range(TRIALS):
        folder, catalog = tmp_path / f"photos{trial}", tmp_path / f"catalog{trial}.db"
        shutil.copytree(template, folder)
        kill_at_random(start(catalog, folder, flags), folder, rng)
        code, _out, err = run_cli("--backend", "fake", "index", *flags, str(folder),
                                  catalog=catalog)  # fmt: skip
        assert code == 0, err
        assert "Traceback" not in err
        assert_agreement(catalog, folder, mode == "sidecar")
        status = json.loads(run_cli("--backend", "fake", "status", "--json", catalog=catalog)[1])
        assert status["unwritten"] == 0
        shutil.rmtree(folder)
