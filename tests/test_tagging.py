"""Tags and word search from the real model on real photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phototag.imaging import decode
from phototag.models import ModelSpec, shipped_models_dir
from phototag.tagging import Tagger, rank_for_word, word_scores
from phototag.types import Embedding, Tag
from phototag.words import WordVectors

SKIMAGE = Path(__import__("skimage").__file__).parent / "data"
SAMPLES = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"]


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dir(shipped_models_dir() / "devise-lite0")  # type: ignore[operator]


@pytest.fixture(scope="module")
def embeddings(spec: ModelSpec) -> dict[str, Embedding]:
    from phototag_onnx import OnnxBackend

    backend = OnnxBackend(spec)
    stacks = {n: decode(SKIMAGE / n, (SKIMAGE / n).read_bytes(), spec).views for n in SAMPLES}
    blank = Image.new("RGB", (900, 600), (246, 245, 241))
    buf = io.BytesIO()
    blank.save(buf, "JPEG")
    stacks["blank.jpg"] = decode(Path("blank.jpg"), buf.getvalue(), spec).views
    return dict(zip(stacks, backend.embed(stacks.values()), strict=True))


@pytest.fixture(scope="module")
def tagger(spec: ModelSpec) -> Tagger:
    return Tagger.from_model(spec)


def words_of(tags: list[Tag]) -> list[str]:
    return [t.tag for t in tags]


def test_chelsea_is_a_cat(tagger: Tagger, embeddings: dict[str, Embedding]) -> None:
    tags = tagger.tag(embeddings["chelsea.png"])
    assert "cat" in words_of(tags)[:3]
    cat = next(t for t in tags if t.tag == "cat")
    assert cat.hierarchy.startswith("animal|") and cat.hierarchy.endswith("|cat")
    assert cat.score > 0.8


def test_coffee(tagger: Tagger, embeddings: dict[str, Embedding]) -> None:
    tags = words_of(tagger.tag(embeddings["coffee.png"]))
    assert {"coffee", "espresso", "cup"} & set(tags[:3])


def test_scores_are_honest_and_bounded(tagger: Tagger, embeddings: dict[str, Embedding]) -> None:
    for emb in embeddings.values():
        tags = tagger.tag(emb)
        assert len(tags) <= tagger.max_count
        assert all(tagger.threshold <= t.score <= 1 for t in tags)
        assert len({t.tag for t in tags}) == len(tags)
    scores = tagger.scores(embeddings["chelsea.png"].probs)
    # a broader word holds at least the mass of a narrower one
    assert scores["animal"] >= scores["cat"] - 0.05 >= scores["tabby cat"] - 0.05


def test_a_blank_wall_gets_few_tags(tagger: Tagger, embeddings: dict[str, Embedding]) -> None:
    assert len(tagger.tag(embeddings["blank.jpg"])) <= 1


def test_threshold_and_count_can_be_set(spec: ModelSpec, embeddings: dict) -> None:
    loose = Tagger.from_model(spec, threshold=0.0, max_count=3)
    assert len(loose.tag(embeddings["blank.jpg"])) == 3
    strict = Tagger.from_model(spec, threshold=0.99)
    assert strict.tag(embeddings["coffee.png"]) == []


def test_vocabulary_restricts(spec: ModelSpec, embeddings: dict, tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("# my words\nCat\ndog\n\ndog\n")
    tagger = Tagger.from_model(spec, vocabulary=vocab)
    assert tagger.words == ["cat", "dog"]
    assert words_of(tagger.tag(embeddings["chelsea.png"])) == ["cat"]
    assert tagger.tag(embeddings["coffee.png"]) == []


def test_vocabulary_extends_with_wordnet_lemmas_and_word_vectors(
    spec: ModelSpec, embeddings: dict, tmp_path: Path
) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("feline\nkitten\ncaffeine\nqzxvw\n")
    tagger = Tagger.from_model(spec, vocabulary=vocab, threshold=0.0, max_count=10)
    chelsea = tagger.scores(embeddings["chelsea.png"].probs)
    coffee = tagger.scores(embeddings["coffee.png"].probs)
    assert chelsea["feline"] > 0.8  # a WordNet level the default vocabulary skips
    assert chelsea["kitten"] > coffee["kitten"]  # no taxonomy node: word vectors
    assert coffee["caffeine"] > chelsea["caffeine"]
    assert chelsea["qzxvw"] == 0.0  # no vector: never tagged, no error
    assert "feline" in words_of(tagger.tag(embeddings["chelsea.png"]))


def test_hyponyms(tagger: Tagger) -> None:
    dogs = tagger.hyponyms("dog")
    assert {"dog", "golden retriever", "beagle"} <= dogs and "cat" not in dogs
    assert {"chair", "bookcase", "rocking chair"} <= tagger.hyponyms("Furniture")
    assert "cat" in tagger.hyponyms("cats")
    assert tagger.hyponyms("sofa") >= {"couch"}  # a WordNet lemma that is not a tag word
    assert tagger.hyponyms("qzxvw") == set()


def test_hyponyms_of_a_query_match_those_of_a_tagger_that_has_tagged(spec: ModelSpec) -> None:
    """A query's Tagger finds hyponyms without building every word's classes; the answer
    must be the one the full vocabulary gives (what tagging has built)."""
    query = Tagger.from_model(spec)
    full = Tagger.from_model(spec)
    assert full._entries  # builds every word's classes
    words = [*full.words, "animal", "furniture", "dogs", "people", "vehicle", "qzxvw"]
    for word in words:
        assert query.hyponyms(word) == full.hyponyms(word), word
    assert "_entries" not in query.__dict__  # the query never built them


def test_find_word_cat_ranks_chelsea_first(
    tagger: Tagger, embeddings: dict[str, Embedding]
) -> None:
    words = WordVectors(tagger.words)
    names = [n for n in embeddings if n != "blank.jpg"]
    semantic = np.stack([embeddings[n].semantic for n in names])
    tags = [tagger.tag(embeddings[n]) for n in names]
    for word, expected in (("cat", "chelsea.png"), ("coffee", "coffee.png")):
        ranked = rank_for_word(words.vector(word), semantic, tags, tagger.hyponyms(word))
        assert names[ranked[0][0]] == expected
        cosine_only = rank_for_word(words.vector(word), semantic, None, set())
        assert names[cosine_only[0][0]] == expected
    ranked = rank_for_word(words.vector("motorcycle"), semantic, tags, set(), limit=2)
    assert len(ranked) == 2 and names[ranked[0][0]] == "motorcycle_left.png"


def test_word_scores_reward_tagged_photos() -> None:
    word = np.array([1.0, 0.0], dtype=np.float32)
    semantic = np.array([[0.6, 0.8], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    tags = [[Tag("beagle", 0.9)], [("cat", 0.9)], {"table": 0.5}]
    scores = word_scores(word, semantic, tags, {"dog", "beagle"}, reward=0.5)
    assert scores[0] > scores[1]
    assert np.isclose(scores[1], 0.6 / 1.5) and np.isclose(scores[2], 1 / 1.5)
    assert np.allclose(word_scores(word, semantic, None, set()), [0.6, 0.6, 1.0])
