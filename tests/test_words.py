"""GloVe word vectors: phrases, case, unknown words and the token cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phototag.errors import UnknownWord
from phototag.words import WordVectors, cache_dir


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> WordVectors:
    cache = tmp_path_factory.mktemp("wordcache")
    return WordVectors(["cat", "dog", "chair", "coffee mug", "teddy bear"], cache=cache)


def test_a_word_is_a_unit_50d_vector(words: WordVectors) -> None:
    v = words.vector("dog")
    assert v.shape == (50,) and v.dtype == np.float32
    assert np.isclose(np.linalg.norm(v), 1.0, atol=1e-5)
    assert np.allclose(words.vector("  DoG "), v)


def test_meaning_survives(words: WordVectors) -> None:
    cat = words.vector("cat")
    assert cat @ words.vector("kitten") > cat @ words.vector("espresso")
    assert words.vector("coffee") @ words.vector("espresso") > 0.5


def test_phrases_average_their_words(words: WordVectors) -> None:
    golden, retriever = words.vector("golden"), words.vector("retriever")
    mean = (golden + retriever) / np.linalg.norm(golden + retriever)
    assert np.allclose(words.vector("golden retriever"), mean, atol=1e-6)
    assert np.allclose(words.vector("cup of coffee"), words.vector("cup coffee"), atol=1e-6)
    assert words.row("four-poster") is None  # GloVe lacks it: the hyphenated word is split
    assert np.allclose(words.vector("four-poster"), words.vector("four poster"), atol=1e-6)


def test_unknown_word_suggests_close_words(words: WordVectors) -> None:
    with pytest.raises(UnknownWord) as err:
        words.vector("dgo")
    assert err.value.word == "dgo"
    assert err.value.suggestions[0] == "dog"  # a tag word one swap away comes first
    assert str(err.value) == str(err.value).lower() and "\n" not in str(err.value)
    with pytest.raises(UnknownWord) as err:
        words.vector("chiar")
    assert "chair" in err.value.suggestions
    with pytest.raises(UnknownWord) as err:
        words.vector("teddybear")
    assert "teddy bear" in err.value.suggestions


def test_unknown_word_inside_a_phrase(words: WordVectors) -> None:
    with pytest.raises(UnknownWord) as err:
        words.vector("golden retreiver")
    assert err.value.word == "retreiver" and "retriever" in err.value.suggestions
    with pytest.raises(UnknownWord):
        words.vector("   ")
    assert "dog" in words and "qzxvwq" not in words


def test_nearest_tokens(words: WordVectors) -> None:
    nearest = words.nearest(words.vector("cat"), k=5)
    assert nearest[0][0] == "cat" and np.isclose(nearest[0][1], 1.0, atol=1e-5)
    assert len(nearest) == 5


def test_cache_is_built_once_where_the_environment_says(tmp_path: Path) -> None:
    assert cache_dir() == Path(os.environ["PHOTOTAG_CACHE_DIR"])
    first = WordVectors(cache=tmp_path)
    first.vector("dog")
    (cached,) = tmp_path.glob("glove-tokens-*.sqlite")
    stamp = cached.stat().st_mtime_ns
    second = WordVectors(cache=tmp_path)
    assert np.allclose(second.vector("dog"), first.vector("dog"))
    assert cached.stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*.tmp"))


def test_a_fresh_process_looks_a_word_up_fast(words: WordVectors) -> None:
    code = (
        "import time, numpy; t = time.perf_counter(); "
        "from phototag.words import WordVectors; "
        f"WordVectors(cache=__import__('pathlib').Path({str(words.cache_path.parent)!r}))"
        ".vector('dog'); print(time.perf_counter() - t)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout)
        for _ in range(3)
    ]  # fmt: skip
    assert min(runs) < 0.2  # typically ~5 ms beyond importing the package itself
