"""Unreadable files and folders, and a missing ExifTool, through the real CLI process.

Tests run as root in CI, where permission bits do not apply, so the run under test first
drops the two capabilities that let root ignore them (util-linux ``setpriv``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import SKIMAGE_DATA, env_for_subprocess

#: run as if unprivileged: root without the capabilities that bypass permission bits
NO_OVERRIDE = (
    ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
     "--bounding-set=-dac_override,-dac_read_search"]
    if os.geteuid() == 0 else []
)  # fmt: skip


def test_unreadable_files_and_folders_are_named_and_skipped(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    locked = photos / "locked"
    locked.mkdir(parents=True)
    for src, dest in (("chelsea.png", photos / "cat.png"), ("coffee.png", photos / "secret.png"),
                      ("rocket.jpg", locked / "rocket.jpg")):  # fmt: skip
        shutil.copy(SKIMAGE_DATA / src, dest)
    (photos / "secret.png").chmod(0o000)
    locked.chmod(0o000)
    photos.chmod(0o755)
    catalog = tmp_path / "cat.db"
    done = subprocess.run(
        [*NO_OVERRIDE, sys.executable, "-m", "phototag", "--catalog", str(catalog), "index",
         "--no-write", "--json", str(photos)],
        capture_output=True, text=True, env=env_for_subprocess(),
    )  # fmt: skip
    locked.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert f"skipping {photos / 'secret.png'}: permission denied" in lines
    assert any(line.startswith(f"skipping {locked}: cannot read folder") for line in lines)
    summary = json.loads(done.stdout)
    assert summary["new"] == 1 and summary["skipped"] == 2


def test_missing_exiftool_is_explained_and_no_write_still_works(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SKIMAGE_DATA / "chelsea.png", photos / "cat.png")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = env_for_subprocess(PATH=str(bin_dir))  # no exiftool anywhere on PATH
    cmd = [sys.executable, "-m", "phototag", "--catalog", str(tmp_path / "c.db"), "index"]
    failed = subprocess.run([*cmd, str(photos)], capture_output=True, text=True, env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: exiftool is not installed")
    assert "apt-get install libimage-exiftool-perl" in failed.stderr
    works = subprocess.run([*cmd, "--no-write", str(photos)], capture_output=True, text=True,
                           env=env)  # fmt: skip
    assert works.returncode == 0, works.stderr
