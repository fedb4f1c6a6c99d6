"""The tensorflow backend gives the onnx backend's tags and vectors for the same model.

Skipped only when TensorFlow is not importable (CI installs the ``tensorflow`` extra).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from phototag.library import Library  # noqa: E402
from phototag.models import load_model, user_models_dir  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def tf_model():
    """One Keras model for the module (building it costs a few seconds)."""
    from phototag_tensorflow.keras_model import build_keras_model

    return build_keras_model(load_model().onnx_path)


def test_keras_graph_matches_onnx_outputs(tf_model) -> None:
    import onnxruntime as ort

    pixels = np.random.default_rng(0).uniform(-1, 1, (3, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(load_model().onnx_path), providers=["CPUExecutionProvider"])
    features, logits = session.run(["features", "logits"], {"pixels": pixels})
    out = tf_model(pixels, training=False)
    assert np.abs(out["features"].numpy() - features).max() < 1e-4
    assert np.abs(out["logits"].numpy() - logits).max() < 1e-4


def test_tags_match_onnx_backend_on_real_photos(photos: Path) -> None:
    onnx_lib = Library(backend="onnx")
    tf_lib = Library(backend="tensorflow")
    files = sorted(photos.iterdir())
    assert len(files) >= 8  # chelsea, coffee, astronaut, rocket, motorcycle + interiors
    worst = 0.0
    for path in files:
        expected = onnx_lib.tags(path)
        got = tf_lib.tags(path)
        assert [t.tag for t in got.tags] == [t.tag for t in expected.tags], path.name
        for a, b in zip(got.tags, expected.tags, strict=True):
            worst = max(worst, abs(a.score - b.score))
        e_onnx, _ = onnx_lib.embed_file(path)
        e_tf, _ = tf_lib.embed_file(path)
        assert np.abs(e_onnx.semantic - e_tf.semantic).max() < TOLERANCE
        assert np.abs(e_onnx.visual - e_tf.visual).max() < TOLERANCE
        assert np.abs(e_onnx.probs - e_tf.probs).max() < TOLERANCE
    assert worst < TOLERANCE
    chelsea = tf_lib.tags(photos / "chelsea.png")
    assert "cat" in [t.tag for t in chelsea.tags[:3]]


def test_cli_backend_tensorflow_prints_the_same_json(photos: Path) -> None:
    code, out_tf, err = run_cli(
        "--backend", "tensorflow", "tags", str(photos / "coffee.png"), "--json"
    )
    assert code == 0, err
    code, out_onnx, _ = run_cli("--backend", "onnx", "tags", str(photos / "coffee.png"), "--json")
    tf_tags, onnx_tags = json.loads(out_tf)["tags"], json.loads(out_onnx)["tags"]
    assert [t["tag"] for t in tf_tags] == [t["tag"] for t in onnx_tags]
    pairs = zip(tf_tags, onnx_tags, strict=True)
    assert all(abs(a["score"] - b["score"]) < TOLERANCE for a, b in pairs)


def test_trained_head_runs_the_same_under_both_backends(photos: Path) -> None:
    """A graph with an appended semantic head: the tensorflow backend reads the head from
    the same ONNX file and gives the onnx backend's semantic vectors."""
    from phototag_tensorflow.heads import append_semantic_head

    base = load_model()
    folder = user_models_dir() / "headed"
    shutil.copytree(base.path, folder)
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((1280, 50)).astype(np.float32) * 0.05
    bias = rng.standard_normal(50).astype(np.float32) * 0.1
    append_semantic_head(base.onnx_path, folder / "model.onnx", weight, bias)
    (folder / "backbone.onnx").unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    files = manifest["files"]
    del files["backbone.onnx"]
    import hashlib

    files["model.onnx"] = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    manifest.update(name="headed", onnx="model.onnx", semantic_head={"kind": "graph"})
    (folder / "manifest.json").write_text(json.dumps(manifest))

    onnx_lib = Library(backend="onnx", model="headed")
    tf_lib = Library(backend="tensorflow", model="headed")
    for name in ("chelsea.png", "astronaut.png"):
        a, _ = onnx_lib.embed_file(photos / name)
        b, _ = tf_lib.embed_file(photos / name)
        assert np.abs(a.semantic - b.semantic).max() < TOLERANCE
        assert np.abs(a.probs - b.probs).max() < TOLERANCE
