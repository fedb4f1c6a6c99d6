"""Combined queries and filters on a real catalog: the shipped model, real photos, real SQLite."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag import query as query_module
from phototag.catalog import Catalog
from phototag.library import Library
from phototag.query import REWARD, Filters, Query
from tests.conftest import INTERIORS, SKIMAGE_DATA, run_cli

ANIMALS = ("chelsea.png", "horse.png", "coffee.png")


def _stamp(path: Path, year: int) -> None:
    t = time.mktime((year, 6, 15, 12, 0, 0, 0, 0, -1))
    os.utime(path, (t, t))


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2019/: a cat, a horse, coffee (mtime 2019); home/: eight interiors (mtime 2022);
    rocket.jpg at the top, with an EXIF date of 2015 (its mtime says today)."""
    folder = tmp_path_factory.mktemp("library")
    (folder / "2019").mkdir()
    (folder / "home").mkdir()
    for name in ANIMALS:
        shutil.copy(SKIMAGE_DATA / name, folder / "2019" / name)
        _stamp(folder / "2019" / name, 2019)
    for src in sorted(INTERIORS.glob("*.jpg"))[:8]:
        shutil.copy(src, folder / "home" / src.name)
        _stamp(folder / "home" / src.name, 2022)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2015:08:01 09:00:00"
    Image.open(SKIMAGE_DATA / "rocket.jpg").save(folder / "rocket.jpg", exif=exif, quality=92)
    catalog = tmp_path_factory.mktemp("cat") / "catalog.db"
    code, out, err = run_cli("index", "--no-write", "--json", str(folder), catalog=catalog)
    assert code == 0, err
    assert json.loads(out)["new"] == 12
    return folder, catalog


def find(catalog: Path, *args: str) -> list[dict]:
    code, out, err = run_cli("find", *args, "--json", "--limit", "50", catalog=catalog)
    assert code == 0, err
    return json.loads(out)


def names(hits: list[dict]) -> list[str]:
    return [Path(h["path"]).name for h in hits]


def test_two_words_both_count_and_why_explains_the_score(lib: tuple[Path, Path]) -> None:
    _folder, catalog = lib
    both = find(catalog, "--word", "cat", "--word", "horse")
    cat_only = find(catalog, "--word", "cat")
    assert set(names(both[:2])) == {"chelsea.png", "horse.png"}
    for hit in both:
        terms = hit["why"]["terms"]
        assert [t["word"] for t in terms] == ["cat", "horse"]
        parts = [(t["vector"] + REWARD * t["tag_score"]) / (1 + REWARD) for t in terms]
        assert hit["score"] == pytest.approx(np.mean(parts), abs=1e-5)
        # each figure is rounded to 6 decimals: an absolute tolerance, not a relative one
        vector = np.mean([t["vector"] for t in terms])
        assert hit["why"]["vector"] == pytest.approx(vector, rel=0, abs=1.5e-6)
    # the cat's own tags are what matched the word "cat" (hyponyms included)
    chelsea = next(h for h in cat_only if names([h]) == ["chelsea.png"])
    assert "cat" in chelsea["why"]["tags"] and set(chelsea["why"]["tags"]) <= set(chelsea["tags"])
    assert chelsea["why"]["terms"][0]["tag_score"] > 0.5
    # the horse gains on the cat when "horse" is asked for too
    rank = {n: i for i, n in enumerate(names(cat_only))}
    assert names(both).index("horse.png") <= rank["horse.png"]


def test_not_drops_tagged_photos_and_sinks_close_ones(lib: tuple[Path, Path]) -> None:
    _folder, catalog = lib
    plain = find(catalog, "--word", "animal")
    without = find(catalog, "--word", "animal", "--not", "cat")
    assert "chelsea.png" in names(plain) and "chelsea.png" not in names(without)
    before = {n: h["score"] for n, h in zip(names(plain), plain, strict=True)}
    after = {n: h["score"] for n, h in zip(names(without), without, strict=True)}
    horse = next(h for h in without if names([h]) == ["horse.png"])
    not_cos = horse["why"]["terms"][-1]
    assert not_cos["not"] == "cat" and not_cos["vector"] > query_module.NOT_FLOOR
    assert after["horse.png"] < before["horse.png"]  # close to "cat": it sinks
    far = [n for n, h in zip(names(without), without, strict=True)
           if h["why"]["terms"][-1]["vector"] <= query_module.NOT_FLOOR]  # fmt: skip
    assert far and all(after[n] == pytest.approx(before[n]) for n in far)


def test_like_alone_is_similar_and_combines_with_words(
    lib: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, catalog = lib
    crop = tmp_path / "crop.jpg"
    img = Image.open(folder / "2019" / "chelsea.png").convert("RGB")
    img.crop((30, 20, img.width - 20, img.height - 30)).save(crop, quality=85)
    code, out, err = run_cli("similar", str(crop), "--json", "--limit", "50", catalog=catalog)
    assert code == 0, err
    assert json.loads(out) == find(catalog, "--like", str(crop))
    assert names(json.loads(out))[0] == "chelsea.png"
    # a catalogued example is not its own result; words then pull towards them
    interior = sorted((folder / "home").iterdir())[0]
    hits = find(catalog, "--like", str(interior), "--word", "cat")
    assert interior.name not in names(hits)
    terms = hits[0]["why"]["terms"]
    assert [list(t)[0] for t in terms] == ["word", "like"]
    assert hits[0]["score"] == pytest.approx(
        np.mean([(terms[0]["vector"] + REWARD * terms[0]["tag_score"]) / (1 + REWARD),
                 terms[1]["vector"]]), abs=1e-5,
    )  # fmt: skip


def test_folder_date_tag_and_score_filters(lib: tuple[Path, Path]) -> None:
    folder, catalog = lib
    assert sorted(names(find(catalog, "--word", "cat", "--in", str(folder / "2019")))) == sorted(
        ANIMALS
    )
    assert len(find(catalog, "--word", "cat", "--in", str(folder))) == 12
    assert find(catalog, "--word", "cat", "--in", str(folder / "nowhere")) == []
    # dates: EXIF first (rocket 2015, though its mtime is today), else mtime
    assert names(find(catalog, "--word", "cat", "--before", "2016")) == ["rocket.jpg"]
    in_2019 = find(catalog, "--word", "cat", "--after", "2019", "--before", "2020")
    assert sorted(names(in_2019)) == sorted(ANIMALS)
    june = find(catalog, "--word", "cat", "--after", "2019-06-15", "--before", "2019-06-16")
    assert len(june) == 3
    assert find(catalog, "--word", "cat", "--after", "2019-06-16", "--before", "2019-07") == []
    assert len(find(catalog, "--word", "sofa", "--after", "2022")) == 8
    # tags: hyponyms count ("animal" takes in the cat), and several must all hold
    tagged = find(catalog, "--word", "sofa", "--tag", "animal")
    assert "chelsea.png" in names(tagged) and all(h["path"].find("/home/") < 0 for h in tagged)
    assert find(catalog, "--word", "sofa", "--tag", "animal", "--tag", "furniture") == []
    # minimum score: a threshold on the very scores printed
    all_hits = find(catalog, "--word", "cat")
    cut = all_hits[3]["score"]
    # (printed scores are rounded to 6 places: the cut sits just under the printed one)
    assert find(catalog, "--word", "cat", "--min-score", str(cut - 1e-6)) == all_hits[:4]


def test_usage_errors_are_one_line_exit_2(lib: tuple[Path, Path]) -> None:
    _folder, catalog = lib
    for args, message in [
        (["--word", "cat", "--after", "2019-13"], "error: --after '2019-13' is not a date"),
        (["--word", "cat", "--before", "last summer"], "error: --before 'last summer' is not"),
        (["--word", "cat", "--after", "2020", "--before", "2019"], "error: --after 2020-01-01"),
        (["--not", "cat"], "error: say what to look for"),
    ]:
        code, out, err = run_cli("find", *args, catalog=catalog)
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, (args, err)
        assert err == err.lower()


def test_query_commands_do_not_import_the_runtime(lib: tuple[Path, Path]) -> None:
    import subprocess
    import sys

    from tests.conftest import env_for_subprocess

    folder, catalog = lib
    probe = (
        "import sys\nfrom phototag.cli import main\n"
        "args = ['--catalog', sys.argv[1], 'find', '--word', 'cat', '--word', 'sofa',"
        " '--not', 'dog', '--after', '2019', '--tag', 'animal', '--like', sys.argv[2],"
        " '--in', sys.argv[3]]\n"
        "try:\n    main(args)\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('HEAVY', [m for m in ('onnxruntime', 'tensorflow') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(catalog), str(folder / "2019" / "horse.png"),
         str(folder)], capture_output=True, text=True, env=env_for_subprocess(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("HEAVY []")


def test_cold_find_and_similar_of_a_catalogued_photo_do_not_import_numpy(
    lib: tuple[Path, Path],
) -> None:
    """Importing numpy costs a cold query ~0.17 s (issue 12: find <= 0.3 s over 10,000 photos)."""
    import subprocess
    import sys

    from tests.conftest import env_for_subprocess

    folder, catalog = lib
    probe = (
        "import sys\nfrom phototag.cli import main\n"
        "for args in (['find', '--word', 'cat', '--word', 'sofa', '--not', 'dog', '--after',"
        " '2019', '--before', '2023'], ['similar', sys.argv[2]], ['find', '--word', 'cat']):\n"
        "    try:\n        main(['--catalog', sys.argv[1], *args, '--json'])\n"
        "    except SystemExit as e:\n        assert not e.code, e.code\n"
        "print('LOADED', sorted(m for m in ('numpy', 'PIL', 'sqlite_utils') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(catalog), str(folder / "2019" / "horse.png")],
        capture_output=True, text=True, env=env_for_subprocess(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "LOADED []"
    similar = json.loads(lines[1])
    assert similar and "horse.png" not in similar[0]["path"]  # itself is left out
    assert json.loads(lines[0]) and json.loads(lines[2])


# -- filters never lose results: a catalog large enough for the Annoy path to matter -----------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 catalogued photos: 2,900 under near/ whose semantic vectors lie close to "dog",
    100 under far/ close to "chair", so the Annoy neighbours of "dog" are all under near/."""
    from phototag.models import load_model
    from phototag.search import refresh
    from phototag.words import WordVectors

    path = tmp_path_factory.mktemp("big") / "catalog.db"
    model = load_model()
    words = WordVectors()
    rng = np.random.default_rng(3)
    cat = Catalog(path)
    root_id, _, _ = cat.root_for(Path("/photos"))
    with cat.batch():
        for i in range(3000):
            near = i < 2900
            base = words.vector("dog" if near else "chair")
            semantic = base + 0.25 * rng.standard_normal(50).astype(np.float32) / np.sqrt(50)
            semantic /= np.linalg.norm(semantic)
            pid = cat.upsert_photo(
                root_id, f"{'near' if near else 'far'}/{i:05d}.jpg", size=i, mtime_ns=i,
                content_hash=f"{i:032x}",
            )  # fmt: skip
            cat.set_vectors(pid, model.name, rng.standard_normal(8), semantic)
    refresh(cat, model.name)
    cat.close()
    return path


def test_a_filter_excluding_everything_the_index_returns_loses_nothing(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = Library(big)
    unfiltered = library.find(Query(words=("dog",), limit=250))
    assert all("/near/" in str(h.path) for h in unfiltered)  # the index has only near/ to say
    cat = library.catalog
    ids = sorted(cat.select_ids(places=[(1, "far")]))
    _, semantic = cat.vectors_of(ids, library.model.name, "semantic")
    from phototag.words import WordVectors

    exact = semantic @ WordVectors().vector("dog")
    expected = [f"/photos/far/{i - 1:05d}.jpg" for i in np.array(ids)[np.argsort(-exact)][:20]]
    query = Query(words=("dog",), limit=20, filters=Filters(folders=(Path("/photos/far"),)))
    assert [str(h.path) for h in library.find(query)] == expected  # exact over the 100
    # and through the Annoy path (as for a filter keeping more than EXACT_LIMIT photos)
    monkeypatch.setattr(query_module, "EXACT_LIMIT", {"semantic": 0, "visual": 0})
    assert [str(h.path) for h in library.find(query)] == expected
    library.close()
