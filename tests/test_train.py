"""``phototag train`` and ``phototag models``: a DeViSE head trained on folders of real photos.

The labelled folders are augmented copies of real sample photos (``tests.labelled``);
``room`` is held out on interior photos the training never saw.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from phototag.models import user_models_dir
from tests.conftest import SKIMAGE_DATA, env_for_subprocess, run_cli
from tests.labelled import LabelledSet, build_labelled_set

HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = pytest.mark.skipif(not HAS_TF, reason="tensorflow is not installed")
LABELS = ("astronaut", "galaxy", "cat", "room")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> LabelledSet:
    root = tmp_path_factory.mktemp("labelled")
    return build_labelled_set(root, LABELS, train_per_label=10, held_out_per_label=4, seed=1)


def _folders(root: Path, counts: dict[str, int]) -> Path:
    """Label folders holding copies of one sample photo (enough for the checks before
    any decoding happens)."""
    for label, n in counts.items():
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(n):
            shutil.copy(SKIMAGE_DATA / "chelsea.png", folder / f"{i}.png")
    return root


# ------------------------------------------------------------------ errors (no tensorflow needed)


def test_unknown_labels_are_listed(tmp_path: Path) -> None:
    data = _folders(tmp_path / "data", {"cat": 5, "qzxvbn": 5, "blorptang": 5})
    code, _out, err = run_cli("train", str(data), "--name", "x")
    assert code == 2
    assert "labels unknown to the word vectors: blorptang, qzxvbn" in err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_one_label_is_refused(tmp_path: Path) -> None:
    data = _folders(tmp_path / "data", {"cat": 6})
    code, _out, err = run_cli("train", str(data), "--name", "x")
    assert code == 2
    assert "need at least two labels" in err and "cat" in err


def test_too_few_photos_is_refused(tmp_path: Path) -> None:
    data = _folders(tmp_path / "data", {"cat": 6, "dog": 2})
    code, _out, err = run_cli("train", str(data), "--name", "x")
    assert code == 2
    assert "too few photos for label(s) dog (2)" in err


def test_usage_errors(tmp_path: Path) -> None:
    data = _folders(tmp_path / "data", {"cat": 5, "dog": 5})
    assert run_cli("train", "--name", "x")[0] == 2  # neither DATA_DIR nor --from-catalog
    code, _out, err = run_cli("train", str(data), "--name", "devise-lite0")
    assert code == 2 and "shipped model" in err
    code, _out, err = run_cli("train", str(tmp_path / "nope"), "--name", "x")
    assert code == 2 and "not a folder" in err


def test_without_tensorflow_train_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import phototag_tensorflow.commands as commands

    monkeypatch.setattr(commands, "tensorflow_installed", lambda: False)
    data = _folders(tmp_path / "data", {"cat": 5, "dog": 5})
    code, _out, err = run_cli("train", str(data), "--name", "x")
    assert code == 1
    assert "pip install 'phototag[tensorflow]'" in err


def test_without_tensorflow_the_backend_is_not_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    import phototag_tensorflow

    from phototag.errors import UnknownBackend
    from phototag.plugins import get_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    found: dict[str, object] = {}
    phototag_tensorflow.register_backends(register=found.__setitem__)
    assert found == {}
    if not HAS_TF:
        with pytest.raises(UnknownBackend, match=r"pip install 'phototag\[tensorflow\]'"):
            get_backend("tensorflow")


def test_cli_start_does_not_import_tensorflow(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from phototag.cli import main
        main(["models", "--json"])
        main(["train", "--help"])
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "tf imported"
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env_for_subprocess(),
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert any(m["name"] == "devise-lite0" for m in json.loads(proc.stdout.splitlines()[0]))


# ------------------------------------------------------------------ training


def _top_tags(model: str, photos: list[Path]) -> list[str]:
    """The first tag of each photo, as `phototag --model MODEL tags` gives it."""
    from phototag.library import Library

    library = Library(backend="onnx", model=model)
    tops = []
    for path in photos:
        tags = library.tags(path).tags
        tops.append(tags[0].tag if tags else "")
    return tops


@needs_tf
def test_train_beats_the_stock_model_on_held_out_photos(labelled: LabelledSet) -> None:
    broken = labelled.train / "cat" / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    try:
        code, out, err = run_cli(
            "train", str(labelled.train), "--name", "mine", "--epochs", "40", "--json"
        )
    finally:
        broken.unlink()
    assert code == 0, err
    assert "skipping" in err and "broken.jpg" in err
    report = json.loads(out)
    assert report["labels"] == {label: 10 for label in sorted(LABELS)}
    assert report["validation"]["hit1"] >= 0.75
    folder = user_models_dir() / "mine"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["semantic_head"]["kind"] == "graph"
    assert manifest["semantic_head"]["labels"] == sorted(LABELS)
    assert manifest["outputs"]["semantic"] == "semantic"
    vocabulary = (folder / "vocabulary.txt").read_text().splitlines()
    assert {"astronaut", "galaxy", "room"} <= set(vocabulary)

    photos = [p for label in LABELS for p in labelled.held_out[label]]
    truth = [label for label in LABELS for _ in labelled.held_out[label]]
    trained = np.mean([a == b for a, b in zip(_top_tags("mine", photos), truth, strict=True)])
    stock = np.mean([a == b for a, b in zip(_top_tags("devise-lite0", photos), truth, strict=True)])
    assert trained >= 0.9
    assert trained > stock

    code, out, _err = run_cli("models", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["mine"]["kind"] == "trained" and rows["mine"]["labels"] == sorted(LABELS)
    assert rows["devise-lite0"]["kind"] == "shipped"

    # the same name again needs --force
    code, _out, err = run_cli("train", str(labelled.train), "--name", "mine")
    assert code == 2 and "--force" in err


@needs_tf
def test_trained_model_runs_on_onnx_without_tensorflow(labelled: LabelledSet) -> None:
    if not (user_models_dir() / "mine").exists():
        assert run_cli("train", str(labelled.train), "--name", "mine", "--epochs", "20")[0] == 0
    photo = labelled.held_out["galaxy"][0]
    script = textwrap.dedent(
        f"""
        import json, sys
        from phototag.library import Library
        library = Library(backend="onnx", model="mine")
        out = library.backend.run_batch(
            __import__("phototag.imaging", fromlist=["x"]).decode(
                {str(photo)!r}, open({str(photo)!r}, "rb").read(), library.model
            ).views
        )
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "tf imported"
        print(json.dumps(sorted(out)))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env_for_subprocess(),
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["features", "logits", "semantic"]
    assert _top_tags("mine", [photo]) == ["galaxy"]


@needs_tf
def test_train_from_catalog_user_keywords(labelled: LabelledSet, tmp_path: Path) -> None:
    from phototag.catalog import USER
    from phototag.library import Library
    from phototag.types import Tag

    library = Library(tmp_path / "catalog.db", backend="onnx")
    library.index([labelled.train], write="none")
    for label in ("cat", "galaxy"):
        for path in sorted((labelled.train / label).iterdir())[:6]:
            row = library.catalog.photo_at(path)
            keywords = [Tag(label, 1.0), Tag("qzxvbn", 1.0)]  # an unknown keyword is ignored
            library.catalog.set_tags(row.id, keywords, source=USER)
    library.close()
    code, out, err = run_cli(
        "--catalog", str(tmp_path / "catalog.db"), "train", "--from-catalog", "--name", "fromcat",
        "--epochs", "5", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["labels"] == {"cat": 6, "galaxy": 6}
    assert "ignoring labels unknown to the word vectors: qzxvbn" in err
