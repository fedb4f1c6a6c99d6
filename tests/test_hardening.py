"""The breaks of issue 10, each reproduced through the real CLI, real exiftool and real files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from phototag.catalog import Catalog
from phototag.files import TEMP_PREFIX
from phototag.writers import open_writer
from tests.conftest import SKIMAGE_DATA, env_for_subprocess, run_cli
from tests.test_permissions import NO_OVERRIDE

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
ROOT = Path(__file__).parents[1]
DRIVER = (
    "import sys; from phototag.plugins import pm; from tests.fakes import FakePlugin; "
    "pm.register(FakePlugin(), name='fake-backend'); from phototag.cli import main; "
    "main(sys.argv[1:])"
)


def small_photos(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")[:n]):
        with Image.open(SKIMAGE_DATA / name) as im:
            path = folder / f"p{i}.jpg"
            im.convert("RGB").resize((96, 72)).save(path, quality=85)
            out.append(path)
    return out


def index(catalog: Path, *args: str | Path) -> tuple[dict, str]:
    code, out, err = run_cli("--backend", "fake", "index", "--json", *map(str, args),
                             catalog=catalog)  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads(out), err


def status(catalog: Path) -> dict:
    code, out, err = run_cli("--backend", "fake", "status", "--json", catalog=catalog)
    assert code == 0, err
    return json.loads(out)


def subject(path: Path) -> list[str]:
    out = subprocess.run(["exiftool", "-j", "-XMP-dc:Subject", str(path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    value = json.loads(out)[0].get("Subject", [])
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def phototag(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-c", DRIVER, *args], cwd=ROOT,
                          capture_output=True, text=True, env=env_for_subprocess())  # fmt: skip


# -- 1. a write that did not happen is retried -------------------------------------------------


def test_no_write_then_index_writes_and_status_counts_unwritten(
    tmp_path: Path, catalog_path: Path
) -> None:
    photos = small_photos(tmp_path / "lib")
    index(catalog_path, "--no-write", tmp_path / "lib")
    assert status(catalog_path)["unwritten"] == len(photos)
    summary, _ = index(catalog_path, tmp_path / "lib")
    assert summary["written"] == len(photos) and summary["embedded"] == 0
    assert status(catalog_path)["unwritten"] == 0
    assert all(subject(p) for p in photos)
    again, _ = index(catalog_path, tmp_path / "lib")
    assert again["written"] == 0 and again["unchanged"] == len(photos)


def test_a_deleted_sidecar_is_written_again(tmp_path: Path, catalog_path: Path) -> None:
    photos = small_photos(tmp_path / "lib")
    index(catalog_path, "--sidecar", tmp_path / "lib")
    sidecar = Path(f"{photos[0]}.xmp")
    sidecar.unlink()
    summary, _ = index(catalog_path, "--sidecar", tmp_path / "lib")
    assert summary["written"] == 1 and sidecar.exists() and subject(sidecar)


def test_a_read_only_photo_is_written_once_it_is_writable(
    tmp_path: Path, catalog_path: Path
) -> None:
    photos = small_photos(tmp_path / "lib")
    photos[0].chmod(0o444)
    _, err = index(catalog_path, tmp_path / "lib")
    assert "read-only" in err and status(catalog_path)["unwritten"] == 1
    photos[0].chmod(0o644)
    summary, _ = index(catalog_path, tmp_path / "lib")
    assert summary["written"] == 1 and subject(photos[0])
    assert status(catalog_path)["unwritten"] == 0


# -- 2. symlinks out of the library ------------------------------------------------------------


def test_writes_never_follow_links_out_of_the_library(tmp_path: Path, catalog_path: Path) -> None:
    lib, other, elsewhere = tmp_path / "lib", tmp_path / "other", tmp_path / "elsewhere"
    small_photos(lib, 1)
    outside = small_photos(other, 2)
    target = small_photos(elsewhere, 1)[0]
    (lib / "up").symlink_to("../other", target_is_directory=True)
    (lib / "x.jpg").symlink_to(target)
    before = {p: digest(p) for p in [*outside, target]}
    _, err = index(catalog_path, lib)
    assert {p: digest(p) for p in before} == before
    assert f"skipping {lib / 'up'}: link to a folder outside the library" in err
    assert f"skipping {lib / 'x.jpg'}: tags kept in the catalog only: a link" in err
    catalog = Catalog(catalog_path)
    assert catalog.photo_at(lib / "x.jpg") is not None  # indexed read-only
    assert catalog.photo_at(lib / "up" / "p0.jpg") is None


# -- 3. odd names ------------------------------------------------------------------------------


def test_odd_names_are_skipped_or_handled_and_the_run_goes_on(
    tmp_path: Path, catalog_path: Path
) -> None:
    lib = tmp_path / "lib"
    photos = small_photos(lib, 2)
    bad = Path(os.fsdecode(bytes(lib) + b"/bad\xff.jpg"))
    shutil.copy(photos[0], bad)
    long = lib / ("l" * 248 + ".jpg")  # 252 bytes: its sidecar name would not fit
    shutil.copy(photos[1], long)
    summary, err = index(catalog_path, lib)
    assert "file name is not valid utf-8" in err and summary["new"] == 3
    assert subject(long)  # embedded; probing for a sidecar did not abort the run
    summary, err = index(catalog_path, "--sidecar", lib)
    assert "file name too long for a sidecar" in err
    assert Path(f"{photos[0]}.xmp").exists()


# -- 4. a sidecar shared by two photos ---------------------------------------------------------


def test_a_shared_sidecar_never_mixes_two_photos(tmp_path: Path, catalog_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB").save(lib / "IMG.jpg")
    Image.open(SKIMAGE_DATA / "coffee.png").convert("RGB").save(lib / "IMG.png")
    shared = lib / "IMG.xmp"
    subprocess.run(["exiftool", "-q", "-o", str(shared), "-XMP-dc:Subject=holiday",
                    str(lib / "IMG.jpg")], check=True)  # fmt: skip
    before = digest(shared)
    index(catalog_path, "--sidecar", lib)
    assert digest(shared) == before
    jpg, png = subject(lib / "IMG.jpg.xmp"), subject(lib / "IMG.png.xmp")
    assert jpg and png and jpg != png


# -- 5. stale errors ---------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0, reason="needs setpriv")
def test_an_error_is_retried_once_the_file_is_fixed(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    photos = small_photos(lib, 2)
    photos[0].chmod(0o000)
    catalog = tmp_path / "c.db"
    args = ("--catalog", str(catalog), "--backend", "fake", "index", "--no-write", "--json")
    first = phototag(*args, str(lib), prefix=NO_OVERRIDE)
    assert "permission denied" in first.stderr, first.stderr
    photos[0].chmod(0o644)  # size and mtime stay the same
    second = phototag(*args, str(lib), prefix=NO_OVERRIDE)
    assert second.returncode == 0 and "permission denied" not in second.stderr
    result = json.loads(second.stdout)
    assert result["changed"] == 1 and result["skipped"] == 0


# -- 6. keywords ExifTool normalises -----------------------------------------------------------


def test_a_user_keyword_with_a_leading_space_does_not_block_the_photo(
    tmp_path: Path, catalog_path: Path
) -> None:
    photo = small_photos(tmp_path / "lib", 1)[0]
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject= beach",
                    "-IPTC:Keywords= beach", str(photo)], check=True)  # fmt: skip
    summary, err = index(catalog_path, tmp_path / "lib")
    assert "did not verify" not in err and summary["written"] == 1
    again, _ = index(catalog_path, tmp_path / "lib")
    assert again["written"] == 0 and status(catalog_path)["unwritten"] == 0


# -- 7. tracebacks -----------------------------------------------------------------------------


def test_a_huge_limit_is_a_usage_error(catalog_path: Path) -> None:
    code, _, err = run_cli("--backend", "fake", "find", "--word", "cat", "--limit", "1000000000",
                           catalog=catalog_path)  # fmt: skip
    assert code == 2 and "Traceback" not in err and "limit" in err


def test_relocate_onto_a_root_or_into_itself_is_refused(tmp_path: Path, catalog_path: Path) -> None:
    small_photos(tmp_path / "a", 1)
    small_photos(tmp_path / "b", 1)
    (tmp_path / "a" / "sub").mkdir()
    index(catalog_path, "--no-write", tmp_path / "a", tmp_path / "b")
    for new in (tmp_path / "b", tmp_path / "a" / "sub"):
        code, _, err = run_cli("relocate", str(tmp_path / "a"), str(new), catalog=catalog_path)
        assert code == 1 and err.startswith("error: cannot relocate") and err[-1:] == "\n", err
    assert sorted(status(catalog_path)["roots"]) == [str(tmp_path / "a"), str(tmp_path / "b")]


@pytest.mark.skipif(shutil.which("setpriv") is None and os.geteuid() == 0, reason="needs setpriv")
def test_a_read_only_catalog_is_one_clean_line(tmp_path: Path) -> None:
    small_photos(tmp_path / "lib", 1)
    catalog = tmp_path / "c.db"
    args = ("--catalog", str(catalog), "--backend", "fake", "index", "--no-write")
    assert phototag(*args, str(tmp_path / "lib")).returncode == 0
    small_photos(tmp_path / "lib2", 1)
    catalog.chmod(0o444)
    done = phototag(*args, str(tmp_path / "lib2"), prefix=NO_OVERRIDE)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "read-only" in done.stderr


def test_a_full_disk_under_the_catalog_is_one_clean_line(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here")
    try:
        small_photos(tmp_path / "lib", 4)
        args = ("--catalog", str(disk / "c.db"), "--backend", "fake", "index", "--no-write")
        small_photos(tmp_path / "first", 1)
        assert phototag(*args, str(tmp_path / "first")).returncode == 0
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # the rest of the disk
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        done = phototag(*args, str(tmp_path / "lib"))
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr and "disk is full" in done.stderr
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_failed_begin_leaves_no_batch_flag(catalog_path: Path) -> None:
    catalog = Catalog(catalog_path)
    other = sqlite3.connect(catalog_path, isolation_level=None)
    other.execute("begin immediate")
    catalog.conn.execute("pragma busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError), catalog.batch():
        pass
    other.execute("rollback")
    with catalog.batch():
        assert catalog.conn.in_transaction  # a real transaction again


# -- 8. temp files left by a killed run --------------------------------------------------------


def test_stale_temps_of_phototag_are_removed_and_only_those(
    tmp_path: Path, catalog_path: Path
) -> None:
    lib = tmp_path / "lib"
    small_photos(lib, 1)
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    stale = lib / f"{TEMP_PREFIX}{dead.pid}-00ff.tmp"
    live = lib / f"{TEMP_PREFIX}{os.getppid()}-00ee.xmp"  # a live process owns it
    foreign = lib / ".other-app-tmp-1.tmp"
    for path in (stale, live, foreign):
        path.write_bytes(b"x" * 100)
    index(catalog_path, "--no-write", lib)
    assert not stale.exists() and live.exists() and foreign.exists()


# -- 9. poor behaviour -------------------------------------------------------------------------


def test_index_of_a_missing_path_fails_and_adds_no_root(tmp_path: Path, catalog_path: Path) -> None:
    code, _, err = run_cli("--backend", "fake", "index", str(tmp_path / "nonexistent"),
                           catalog=catalog_path)  # fmt: skip
    assert code == 1 and "no such file or folder" in err
    assert status(catalog_path)["roots"] == []


def test_a_non_photo_file_does_not_re_root_the_library(tmp_path: Path, catalog_path: Path) -> None:
    small_photos(tmp_path / "home" / "Pictures", 1)
    index(catalog_path, "--no-write", tmp_path / "home" / "Pictures")
    (tmp_path / "home" / "notes.txt").write_text("hello")
    _, err = index(catalog_path, "--no-write", tmp_path / "home" / "notes.txt")
    assert "not a photo file" in err
    assert status(catalog_path)["roots"] == [str(tmp_path / "home" / "Pictures")]


def test_a_catalog_from_a_newer_phototag_is_refused_untouched(catalog_path: Path) -> None:
    Catalog(catalog_path).close()
    conn = sqlite3.connect(catalog_path)
    conn.execute("pragma user_version = 999")
    conn.commit()
    conn.close()
    before = digest(catalog_path)
    code, _, err = run_cli("--backend", "fake", "status", catalog=catalog_path)
    assert code == 1 and "newer phototag" in err and digest(catalog_path) == before
    conn = sqlite3.connect(catalog_path)
    conn.execute("pragma user_version = 0")
    conn.execute("insert into _sqlite_migrations (migration_set, name, applied_at) "
                 "values ('phototag', 'm999_future', '2030-01-01')")  # fmt: skip
    conn.commit()
    conn.close()
    code, _, err = run_cli("--backend", "fake", "status", catalog=catalog_path)
    assert code == 1 and "unknown migration m999_future" in err


def test_exiftool_dying_costs_no_photo_and_prints_no_warning(tmp_path: Path, recwarn) -> None:  # type: ignore[no-untyped-def]
    from phototag.types import Tag

    photos = small_photos(tmp_path / "lib", 2)
    with open_writer("embed") as writer:
        writer.read_keywords(photos[0])
        os.kill(writer.process.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert writer.write(photos[0], [Tag("cat", 0.9)], model="m").changed  # a fresh one
        os.kill(writer.process.pid, signal.SIGKILL)
        time.sleep(0.2)
    # closing a writer whose exiftool died: pyexiftool's UserWarning stays out of sight
    assert not [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)]
    assert "cat" in subject(photos[0])


def test_two_index_runs_on_one_catalog_take_turns(tmp_path: Path) -> None:
    photos = small_photos(tmp_path / "lib", 4)
    catalog = tmp_path / "c.db"
    args = [sys.executable, "-c", DRIVER, "--catalog", str(catalog), "--backend", "fake",
            "index", "--json", str(tmp_path / "lib")]  # fmt: skip
    runs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env_for_subprocess()) for _ in range(2)]  # fmt: skip
    results = [proc.communicate(timeout=120) for proc in runs]
    assert all(proc.returncode == 0 for proc in runs), results
    embedded = sum(json.loads(out)["embedded"] for out, _ in results)
    written = sum(json.loads(out)["written"] for out, _ in results)
    assert embedded == len(photos) and written == len(photos)
    assert not any("try again" in err for _, err in results)


# -- 10. from reading the code -----------------------------------------------------------------


def test_hard_links_are_not_split_and_xattrs_are_kept(tmp_path: Path, catalog_path: Path) -> None:
    photos = small_photos(tmp_path / "lib", 2)
    os.link(photos[0], tmp_path / "elsewhere.jpg")
    try:
        os.setxattr(photos[1], "user.note", b"kept")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    _, err = index(catalog_path, tmp_path / "lib")
    assert "hard link" in err and os.stat(photos[0]).st_nlink == 2
    assert subject(photos[1]) and os.getxattr(photos[1], "user.note") == b"kept"


def test_old_tombstones_are_purged(tmp_path: Path, catalog_path: Path) -> None:
    photos = small_photos(tmp_path / "lib", 2)
    index(catalog_path, "--no-write", tmp_path / "lib")
    photos[0].unlink()
    index(catalog_path, "--no-write", tmp_path / "lib")
    assert status(catalog_path)["missing"] == 1
    conn = sqlite3.connect(catalog_path)
    conn.execute("update photos set missing_at = missing_at - 31 * 86400")
    conn.commit()
    conn.close()
    index(catalog_path, "--no-write", tmp_path / "lib")
    assert status(catalog_path)["missing"] == 0


def test_an_index_file_from_another_build_is_not_trusted(
    tmp_path: Path, catalog_path: Path
) -> None:
    from phototag.search import VectorIndex

    small_photos(tmp_path / "lib", 4)
    index(catalog_path, "--no-write", tmp_path / "lib")
    catalog = Catalog(catalog_path)
    ix = VectorIndex(catalog, "devise-lite0", "visual")
    assert ix.is_current()
    ann = ix.ann_path.read_bytes()
    ix.ann_path.unlink()
    ix.ann_path.write_bytes(ann)  # another process's file (a new inode) beside this .json
    assert not ix.is_current()
    code, out, err = run_cli("--backend", "fake", "similar", str(tmp_path / "lib" / "p0.jpg"),
                             "--json", catalog=catalog_path)  # fmt: skip
    assert code == 0 and len(json.loads(out)) == 3, err
