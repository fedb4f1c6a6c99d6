"""The shipped model's stages and its two tiers of words, on real photos.

The catalog lists every likely word; a file gets only the words proven right at least 80 %
of the time on the labelled tuning photos. Both come from the same calibrated probabilities.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from phototag.imaging import decode
from phototag.models import ModelSpec, shipped_models_dir
from phototag.tagging import Tagger
from phototag.types import Tag
from tests.conftest import SKIMAGE_DATA, run_cli


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dir(shipped_models_dir() / "devise-lite0")  # type: ignore[operator]


@pytest.fixture(scope="module")
def tagged(spec: ModelSpec) -> dict[str, tuple]:
    from phototag_onnx import OnnxBackend

    backend = OnnxBackend(spec)
    tagger = Tagger.from_model(spec)
    out = {}
    for name in ("astronaut.png", "chelsea.png", "horse.png", "coffee.png"):
        path = SKIMAGE_DATA / name
        decoded = decode(path, path.read_bytes(), spec)
        emb = backend.embed_batch([decoded.views], [decoded.detector_image])[0]
        out[name] = (emb, tagger.tag(emb), tagger)
    return out


def test_the_default_model_is_a_trained_devise_model(spec: ModelSpec) -> None:
    assert spec.manifest["semantic_head"]["kind"] == "devise"
    assert spec.devise_head is not None and len(spec.devise_head.words) >= 50
    assert spec.detector is not None and len(spec.detector.classes) == 80
    spec.verify()  # every shipped file matches its sha256


def test_people_and_animals_come_first(tagged: dict[str, tuple]) -> None:
    emb, tags, _ = tagged["astronaut.png"]
    assert emb.projection is not None and emb.objects[0].label == "person"
    assert {"person", "people"} & {t.tag for t in tags[:3]}
    _, cat, _ = tagged["chelsea.png"]
    assert "cat" in [t.tag for t in cat[:3]]
    _, horse, _ = tagged["horse.png"]
    assert "horse" in [t.tag for t in horse[:3]] and "dog" not in [t.tag for t in horse]


def test_files_get_only_confident_words(tagged: dict[str, tuple]) -> None:
    for _emb, tags, tagger in tagged.values():
        written = tagger.writable(tags)
        assert set(written) <= set(tags)
        cal = tagger.calibration
        for t in written:
            assert t.score >= max(cal.threshold(t.tag), 0.5)
        for t in set(tags) - set(written):
            assert t.score < max(cal.threshold(t.tag), 0.5) or t.tag in cal.dropped


def test_index_writes_the_confident_words_and_lists_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    catalog = tmp_path / "catalog.db"
    Path(os.environ["PHOTOTAG_CONFIG"]).write_text('file_tags = "confident"\n')  # the default
    code, _out, err = run_cli("index", str(folder), catalog=catalog)
    assert code == 0, err
    spec = ModelSpec.from_dir(shipped_models_dir() / "devise-lite0")  # type: ignore[operator]
    tagger = Tagger.from_model(spec)
    written_somewhere = False
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        code, out, _ = run_cli("tags", "--json", str(folder / name), catalog=catalog)
        listed = json.loads(out)["tags"]
        expected = {t.tag for t in tagger.writable([Tag(x["tag"], x["score"]) for x in listed])}
        meta = json.loads(subprocess.run(
            ["exiftool", "-j", "-XMP-dc:Subject", str(folder / name)],
            capture_output=True, text=True, check=True,
        ).stdout)[0]  # fmt: skip
        subject = meta.get("Subject", [])
        subject = {subject} if isinstance(subject, str) else set(subject)
        assert subject == expected, name
        written_somewhere |= bool(expected)
        assert len(listed) >= len(expected)
    assert written_somewhere  # the real model is sure of some words on these photos


def test_listed_words_are_shown_main_subject_first(tagged: dict[str, tuple]) -> None:
    """The likeliest words are kept, then shown by how likely each is what the photo is
    of: probability times the word's learnt main-subject rate (a tower is usually what a
    photo is of, the sky rarely)."""
    emb, tags, tagger = tagged["astronaut.png"]
    cal = tagger.calibration
    assert cal.main_rate("tower") > cal.main_rate("sky")
    keys = [t.score * cal.main_rate(t.tag) for t in tags]
    assert all(a >= b - 1e-3 for a, b in zip(keys, keys[1:], strict=False))
    saved = cal.main_rates, cal.default_main_rate
    cal.main_rates, cal.default_main_rate = {}, 1.0
    try:
        plain = tagger.tag(emb)
    finally:
        cal.main_rates, cal.default_main_rate = saved
    assert {t.tag for t in plain} == {t.tag for t in tags}  # the same words, reordered
