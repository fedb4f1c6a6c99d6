"""The real thing: the shipped model on onnxruntime, real photos, real processes."""

from __future__ import annotations

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

from tests.conftest import env_for_subprocess, run_cli

SHIPPED = Path(__file__).parents[1] / "models" / "devise-lite0"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Sample photos indexed once with the real default backend (catalog only)."""
    from tests.conftest import INTERIORS, SKIMAGE_DATA

    folder = tmp_path_factory.mktemp("library")
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "horse.png",
                 "motorcycle_left.png"):  # fmt: skip
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    for src in sorted(INTERIORS.glob("*.jpg"))[:12]:
        shutil.copy(src, folder / src.name)
    catalog = tmp_path_factory.mktemp("cat") / "catalog.db"
    code, out, err = run_cli("index", "--no-write", "--json", str(folder), catalog=catalog)
    assert code == 0, err
    assert json.loads(out)["new"] == 18
    return folder, catalog


def cli_json(catalog: Path, *args: str) -> object:
    code, out, err = run_cli(*args, "--json", catalog=catalog)
    assert code == 0, err
    return json.loads(out)


def test_find_word_cat_ranks_chelsea_first(indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    hits = cli_json(catalog, "find", "--word", "cat", "--limit", "5")
    assert isinstance(hits, list) and len(hits) == 5
    assert hits[0]["path"] == str(folder / "chelsea.png")
    assert all(Path(h["path"]).is_absolute() and isinstance(h["score"], float) for h in hits)
    assert "cat" in hits[0]["tags"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_find_phrase_and_unknown_word(indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    hits = cli_json(catalog, "find", "--word", "espresso cup", "--limit", "1")
    assert hits[0]["path"] == str(folder / "coffee.png")
    code, _, err = run_cli("find", "--word", "kitteh", catalog=catalog)
    assert code == 2 and err.startswith("error: unknown word 'kitteh'; did you mean:")


def test_similar_of_a_crop_ranks_the_original_first(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, catalog = indexed
    for name in ("chelsea.png", "rocket.jpg", sorted(folder.glob("pexels*.jpg"))[3].name):
        img = Image.open(folder / name).convert("RGB")
        w, h = img.size
        crop = img.crop((w // 10, h // 10, w - w // 8, h - h // 8))
        query = tmp_path / f"crop-of-{Path(name).stem}.jpg"
        crop.save(query, quality=80)
        hits = cli_json(catalog, "similar", str(query), "--limit", "3")
        assert hits[0]["path"] == str(folder / name), (name, hits)


def test_similar_of_a_catalogued_photo_excludes_itself(indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    hits = cli_json(catalog, "similar", str(folder / "coffee.png"), "--limit", "50")
    assert str(folder / "coffee.png") not in [h["path"] for h in hits]
    assert len(hits) == 17


def test_tags_from_catalog_and_on_the_fly_agree(indexed: tuple[Path, Path], tmp_path: Path):
    folder, catalog = indexed
    stored = cli_json(catalog, "tags", str(folder / "chelsea.png"))
    outside = tmp_path / "chelsea.png"
    shutil.copy(folder / "chelsea.png", outside)
    computed = cli_json(catalog, "tags", str(outside))
    assert [t["tag"] for t in stored["tags"]] == [t["tag"] for t in computed["tags"]]
    assert "cat" in [t["tag"] for t in stored["tags"]][:3]


def test_status_json(indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    st = cli_json(catalog, "status")
    assert (st["photos"], st["errors"], st["pending"]) == (18, 0, 0)
    assert st["tagged"] >= 15 and st["index_current"] is True and st["roots"] == [str(folder)]


def test_queries_do_not_import_the_inference_runtime(indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    probe = (
        "import sys\nfrom phototag.cli import main\n"
        "for args in (['find', '--word', 'dog'], ['similar', sys.argv[2]], "
        "['tags', sys.argv[2]], ['status']):\n"
        "    try:\n        main(['--catalog', sys.argv[1], *args])\n"
        "    except SystemExit as e:\n        assert not e.code, e.code\n"
        "heavy = [m for m in ('onnxruntime', 'tensorflow', 'torch') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(catalog), str(folder / "coffee.png")],
        capture_output=True, text=True, env=env_for_subprocess(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("HEAVY []")


def test_switching_model_re_embeds_lazily(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, catalog = indexed
    copy = tmp_path / "catalog.db"
    shutil.copy(catalog, copy)
    models = Path(os.environ["PHOTOTAG_MODELS_DIR"])
    shutil.copytree(SHIPPED, models / "devise-copy")
    manifest = json.loads((models / "devise-copy" / "manifest.json").read_text())
    manifest["name"] = "devise-copy"
    (models / "devise-copy" / "manifest.json").write_text(json.dumps(manifest))
    st = cli_json(copy, "--model", "devise-copy", "status")
    assert (st["photos"], st["pending"], st["tagged"]) == (18, 18, 0)
    done = cli_json(copy, "--model", "devise-copy", "index", "--no-write", str(folder))
    assert done["embedded"] == 18 and done["new"] == 0
    assert cli_json(copy, "--model", "devise-copy", "status")["pending"] == 0
    assert cli_json(copy, "status")["pending"] == 0  # the first model's vectors are still there


def test_kill_9_leaves_a_sound_catalog_and_the_next_run_finishes(tmp_path: Path) -> None:
    from tests.conftest import INTERIORS

    folder = tmp_path / "many"
    folder.mkdir()
    for i, src in enumerate(sorted(INTERIORS.glob("*.jpg"))):
        shutil.copy(src, folder / f"{i:02d}-{src.name}")
    catalog = tmp_path / "catalog.db"
    cmd = [sys.executable, "-m", "phototag", "--catalog", str(catalog), "index", "--no-write"]
    for delay in (0.8, 1.6):
        proc = subprocess.Popen([*cmd, str(folder)], env=env_for_subprocess(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(catalog)
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        conn.close()
    done = subprocess.run([*cmd, "--json", str(folder)], capture_output=True, text=True,
                          env=env_for_subprocess())  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["new"] + summary["unchanged"] == 39
    st = cli_json(catalog, "status")
    assert (st["photos"], st["pending"], st["errors"]) == (39, 0, 0)
