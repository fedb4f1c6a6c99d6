"""The shipped model: finding it, its manifest and integrity check, the ONNX graph, the
ConSE head and the input views. Real files, real onnxruntime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag.errors import ModelError
from phototag.models import ModelSpec, list_models, load_model, shipped_models_dir
from phototag.preprocess import draft_size, view, views
from tests.conftest import SKIMAGE_DATA

SHIPPED = shipped_models_dir() / "devise-lite0"  # type: ignore[operator]


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dir(SHIPPED)


@pytest.fixture(scope="module")
def session(spec: ModelSpec):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    return ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])


def copy_model(src: Path, dst: Path, name: str | None = None) -> Path:
    """A model folder copy; the 18 MB graph is linked, not copied."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix == ".onnx":
            os.symlink(f, dst / f.name)
        else:
            shutil.copy(f, dst / f.name)
    if name:
        manifest = json.loads((dst / "manifest.json").read_text())
        manifest["name"] = name
        (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_default_model_is_found_and_described() -> None:
    spec = load_model()
    assert spec.name == "devise-lite0"
    assert (spec.input_size, spec.resize, spec.mean, spec.std) == (224, 256, 127.0, 128.0)
    assert 1 <= len(spec.views) <= 3
    assert (spec.visual_dim, spec.semantic_dim) == (1280, 50)
    assert spec.manifest["semantic_head"] == {
        "kind": "devise",
        "head": "devise_head.npz",
        "conse_weight": 0.5,
        "top_t": 10,
        "class_vectors": "class_vectors.npy",
    }
    assert spec.manifest["tagging"]["calibration"] == "calibration.json"
    assert spec.detector is not None and spec.detector.max_side == 256
    assert 0 < spec.tagging["threshold"] < 1 and spec.tagging["max_count"] >= 3
    assert "devise-lite0" in [m.name for m in list_models()]


def test_shipped_files_stay_small() -> None:
    for f in SHIPPED.iterdir():
        assert f.stat().st_size < 40e6, f
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) < 60e6  # the budget


def test_user_models_come_first(tmp_path: Path) -> None:
    user = Path(os.environ["PHOTOTAG_MODELS_DIR"])
    copy_model(SHIPPED, user / "devise-lite0", name="devise-lite0")
    copy_model(SHIPPED, user / "mine", name="mine")
    assert load_model().path == user / "devise-lite0"
    assert load_model("mine").name == "mine"
    names = [m.name for m in list_models()]
    assert names.count("devise-lite0") == 1 and "mine" in names


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ModelError) as err:
        load_model("no-such-model")
    message = str(err.value)
    assert "no-such-model" in message and "devise-lite0" in message
    assert message == message.lower()
    assert "\n" not in message


def test_verify_passes_on_the_shipped_model(spec: ModelSpec) -> None:
    spec.verify()


def test_verify_catches_a_damaged_or_missing_file(tmp_path: Path) -> None:
    copy = copy_model(SHIPPED, tmp_path / "broken")
    vectors = copy / "class_vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged"):
        ModelSpec.from_dir(copy).verify()
    vectors.unlink()
    with pytest.raises(ModelError, match="missing"):
        ModelSpec.from_dir(copy).verify()


def test_bad_manifest_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable manifest"):
        ModelSpec.from_dir(tmp_path)
    with pytest.raises(ModelError, match="no manifest.json"):
        ModelSpec.from_dir(tmp_path / "nowhere")


def test_onnx_graph_contract(session) -> None:  # type: ignore[no-untyped-def]
    (inp,) = session.get_inputs()
    assert inp.name == "pixels" and inp.shape[1:] == [3, 224, 224]
    assert [o.name for o in session.get_outputs()] == ["features", "logits"]
    for n in (1, 3):
        x = np.random.default_rng(n).uniform(-1, 1, (n, 3, 224, 224)).astype(np.float32)
        features, logits = session.run(None, {"pixels": x})
        assert features.shape == (n, 1280) and logits.shape == (n, 1000)
        assert np.isfinite(features).all() and np.isfinite(logits).all()


def test_conse_head(spec: ModelSpec) -> None:
    vectors = np.asarray(spec.class_vectors())
    assert vectors.shape == (1000, 50) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    one_hot = np.zeros((1, 1000), dtype=np.float32)
    one_hot[0, 281] = 1.0
    assert np.allclose(spec.semantic_from_probs(one_hot)[0], vectors[281], atol=1e-6)
    # only the top 10 classes count: mass spread over 20 classes ignores the 10 smallest
    probs = np.zeros((2, 1000), dtype=np.float32)
    probs[0, :20] = np.linspace(1, 0.5, 20)
    probs[1, :10] = probs[0, :10]
    out = spec.semantic_from_probs(probs)
    assert out.shape == (2, 50)
    assert np.allclose(out[0], out[1], atol=1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_views_shapes_and_values(spec: ModelSpec) -> None:
    img = Image.new("RGB", (300, 300), (255, 0, 127))  # square: no view pads it
    stack = views(img, spec)
    assert stack.shape == (len(spec.views), 3, 224, 224) and stack.dtype == np.float32
    assert np.allclose(stack[:, 0], (255 - 127) / 128)
    assert np.allclose(stack[:, 2], 0.0)
    assert draft_size(spec) == 224


def test_centre_view_matches_the_reference_preprocessing(spec: ModelSpec) -> None:
    """One box resize is "short side to 256 (bicubic), centre crop 224" up to resampling."""
    img = Image.open(SKIMAGE_DATA / "astronaut.png").convert("RGB").resize((512, 384))
    w, h = img.size
    short = img.resize((round(w * 256 / h), 256), Image.Resampling.BICUBIC)
    left, top = (short.width - 224) // 2, (short.height - 224) // 2
    reference = np.asarray(short.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    ours = np.asarray(view(img, "center", spec), dtype=np.float32)
    assert np.abs(ours - reference).mean() < 8.0  # resampling once vs twice, not misalignment
    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.98


def test_pad_view_keeps_the_whole_frame(spec: ModelSpec) -> None:
    img = Image.new("RGB", (400, 200), (255, 255, 255))
    padded = np.asarray(view(img, "pad", spec))
    assert padded.shape == (224, 224, 3)
    assert (padded[0] == 127).all() and (padded[112] == 255).all()  # grey bars, photo inside
    centre = np.asarray(view(img, "center", spec))
    assert (centre == 255).all()
    with pytest.raises(ValueError, match="unknown view kind"):
        view(img, "sideways", spec)


def test_importing_models_stays_cheap() -> None:
    code = (
        "import sys, phototag.models, phototag.tagging, phototag.words, phototag.preprocess; "
        "heavy = {'onnxruntime', 'torch', 'pyarrow', 'onnx'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
