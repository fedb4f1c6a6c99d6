"""Queries that combine words, example photos and filters: ``find``, ``similar``, ``duplicates``.

A query has positive terms (``--word``: a word's vector plus a reward for photos tagged with it
or a hyponym; ``--like``: an example photo's visual vector), negative words (``--not``: photos
tagged with the word or a hyponym fall out, photos whose semantic vector lies close to it sink)
and filters (folder, date, tags, minimum score). A photo's score is the mean of its positive
terms' scores, less the ``--not`` penalties, so a perfect match on every term scores 1.

Filters never lose results: the catalog selects the photos that pass them (SQL, with an index
for dates); when that set is small enough it is scored exactly, vector by vector, and otherwise
the Annoy indexes are asked for ever more neighbours until enough of them pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from phototag.errors import BadQuery
from phototag.tagging import REWARD

if TYPE_CHECKING:
    from phototag.catalog import Catalog
    from phototag.tagging import Tagger
    from phototag.words import WordVectors

#: ``--not``: a photo loses NOT_WEIGHT x (cosine to the word - NOT_FLOOR) when the cosine is
#: above the floor (unrelated words and photos lie at 0.3-0.5 in GloVe space)
NOT_FLOOR = 0.5
NOT_WEIGHT = 0.5
#: filtered sets up to this many photos are scored exactly (a semantic vector is 200 bytes,
#: a visual one 2.5 kB: both limits cost about 50 ms to read)
EXACT_LIMIT = {"semantic": 50_000, "visual": 10_000}

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def parse_date(text: str, *, option: str = "date") -> str:
    """``2019``, ``2019-06`` or ``2019-06-01`` -> the ISO time the period starts."""
    found = _DATE.match(text.strip())
    if found is None:
        raise BadQuery(f"{option} '{text}' is not a date: use 2019, 2019-06 or 2019-06-01")
    year, month, day = (int(g) if g else 1 for g in found.groups())
    from datetime import date

    try:
        start = date(year, month, day)
    except ValueError as exc:
        raise BadQuery(f"{option} '{text}' is not a date ({exc})") from None
    return f"{start.isoformat()}T00:00:00"


@dataclass(frozen=True)
class Filters:
    """What a photo must be to appear at all. Dates are ISO starts (``parse_date``):
    ``after <= date < before``, so ``--after 2019 --before 2020`` is the year 2019."""

    folders: tuple[Path, ...] = ()
    after: str | None = None
    before: str | None = None
    tags: tuple[str, ...] = ()
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.after and self.before and self.after >= self.before:
            raise BadQuery(
                f"--after {self.after[:10]} is not before --before {self.before[:10]}: "
                "nothing can match"
            )

    @property
    def selects(self) -> bool:
        """Whether the catalog must select photos (folder, date or tag filters)."""
        return bool(self.folders or self.after or self.before or self.tags)


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...] = ()
    nots: tuple[str, ...] = ()
    like: tuple[Path, ...] = ()
    filters: Filters = Filters()
    limit: int = 20

    def __post_init__(self) -> None:
        if not self.words and not self.like:
            raise BadQuery("say what to look for: a --word or a --like photo")


@dataclass
class Term:
    """One term's contribution to a photo's score, for ``why``."""

    kind: str  # "word", "like" or "not"
    text: str  # the word, or the example photo's path
    vector: float  # cosine between the term and the photo
    tag: float = 0.0  # best score among the photo's tags matching a word (0: none)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {self.kind: self.text, "vector": round(self.vector, 6)}
        if self.kind == "word":
            out["tag_score"] = round(self.tag, 6)
        return out


@dataclass
class Scored:
    photo_id: int
    score: float
    vector: float  # mean cosine of the positive terms (the score without tag rewards)
    terms: list[Term] = field(default_factory=list)


@dataclass
class _Word:
    text: str
    vector: np.ndarray
    hyponyms: set[str]
    tagged: dict[int, float]  # photo id -> best matching tag score


class QueryEngine:
    """Runs ``Query``s against one model's vectors in a catalog."""

    def __init__(
        self,
        catalog: Catalog,
        model: str,
        tagger: Tagger,
        words: Callable[[], WordVectors],
        visual_vector: Callable[[Path], tuple[np.ndarray, set[int]]],
    ) -> None:
        self.catalog = catalog
        self.model = model
        self.tagger = tagger
        self._words = words
        self._visual_vector = visual_vector

    # -- filters ----------------------------------------------------------------------------

    def places(self, folders: Sequence[Path]) -> list[tuple[int, str]]:
        """(root id, relpath prefix) pairs covering ``folders``: a folder inside a root, or
        every root inside a folder."""
        found: list[tuple[int, str]] = []
        roots = self.catalog.conn.execute("select id, path from roots").fetchall()
        for folder in folders:
            folder = Path(os.path.abspath(os.path.expanduser(folder)))
            inside = self.catalog.find_root(folder)
            if inside is not None:
                found.append((inside[0], inside[2]))
                continue
            found += [(rid, "") for rid, root in roots if folder in Path(root).parents]
        return found

    def tag_words(self, tag: str) -> set[str]:
        """A ``--tag``/``--not`` word and the vocabulary words under it (``dog`` -> beagle...)."""
        word = " ".join(tag.lower().split())
        return self.tagger.hyponyms(word) | {word}

    def allowed(self, filters: Filters) -> set[int] | None:
        """Photos passing the folder, date and tag filters (None: no such filter)."""
        if not filters.selects:
            return None
        return self.catalog.select_ids(
            places=self.places(filters.folders) if filters.folders else None,
            date_from=filters.after,
            date_to=filters.before,
            tag_groups=[self.tag_words(t) for t in filters.tags],
        )

    # -- running ----------------------------------------------------------------------------

    def run(self, query: Query) -> list[Scored]:
        words = [self._word(w) for w in query.words]
        nots = [self._word(w) for w in query.nots]
        likes: list[tuple[str, np.ndarray]] = []
        exclude: set[int] = set()
        for image in query.like:
            vector, itself = self._visual_vector(Path(image))
            likes.append((str(Path(os.path.abspath(image))), _unit(vector)))
            exclude |= itself
        banned = exclude.union(*(set(n.tagged) for n in nots))
        allowed = self.allowed(query.filters)
        spaces = {"semantic"} if words or nots else set()
        spaces |= {"visual"} if likes else set()
        if allowed is not None and len(allowed) <= min(EXACT_LIMIT[s] for s in spaces):
            candidates = allowed - banned
        else:
            candidates = self._nearest(query.limit, words, likes, banned, allowed)
        return self._score(sorted(candidates), words, nots, likes, query)

    def hyponyms(self, query: Query) -> set[str]:
        """Every tag word that counts as a match for the query's words (for ``why``)."""
        return set().union(*(self.tag_words(w) for w in query.words))

    def _word(self, text: str) -> _Word:
        """A word or phrase: its vector, and per photo the mean over the phrase's taggable
        terms (``people on the beach``: people, beach) of the best matching tag score."""
        from phototag.tagging import query_terms

        vector = _unit(self._words().vector(text))
        groups = [self.tag_words(t) for t in query_terms(text, self.tagger) or [text]]
        tagged: dict[int, float] = {}
        for group in groups:
            for pid, score in self.catalog.photos_tagged(group).items():
                tagged[pid] = tagged.get(pid, 0.0) + score / len(groups)
        return _Word(text, vector, set().union(*groups), tagged)

    def _nearest(
        self,
        limit: int,
        words: list[_Word],
        likes: list[tuple[str, np.ndarray]],
        banned: set[int],
        allowed: set[int] | None,
    ) -> set[int]:
        """Candidates from the Annoy indexes (and the tagged photos), asking for more
        neighbours until enough pass the filters; the filtered set itself when even the
        whole index does not give enough."""
        from phototag.search import VectorIndex

        want = max(limit * 5, 50)
        total = self.catalog.vector_count(self.model)
        fetch = want
        while True:
            found: set[int] = set()
            if words:
                combined = _unit(np.sum([w.vector for w in words], axis=0))
                index = VectorIndex(self.catalog, self.model, "semantic")
                found |= {pid for pid, _ in index.query(combined, fetch)}
                for word in words:
                    found |= set(sorted(word.tagged, key=lambda p: -word.tagged[p])[:fetch])
            for _text, vector in likes:
                index = VectorIndex(self.catalog, self.model, "visual")
                found |= {pid for pid, _ in index.query(vector, fetch, exclude=banned)}
            found -= banned
            if allowed is not None:
                found &= allowed
            if len(found) >= want or fetch >= total:
                return found
            if allowed is not None and fetch * 4 >= total:
                return allowed - banned  # as good as everything: score them exactly
            fetch *= 4

    def _score(
        self,
        ids: list[int],
        words: list[_Word],
        nots: list[_Word],
        likes: list[tuple[str, np.ndarray]],
        query: Query,
    ) -> list[Scored]:
        """Exact scores of the candidates; the best ``query.limit`` at or above the minimum."""
        if not ids:
            return []
        if likes:
            ids, visual = self.catalog.vectors_of(ids, self.model, "visual")
            visual /= np.maximum(np.linalg.norm(visual, axis=1, keepdims=True), 1e-12)
        if words or nots:  # the photos having both kinds of vector, in one order
            ids, semantic = self.catalog.vectors_of(ids, self.model, "semantic")
            if likes and len(ids) < len(visual):
                ids, visual = self.catalog.vectors_of(ids, self.model, "visual")
                visual /= np.maximum(np.linalg.norm(visual, axis=1, keepdims=True), 1e-12)
        if not ids:
            return []
        kinds: list[tuple[str, str]] = []
        cosines, bonuses = [], []
        for w in words:
            kinds.append(("word", w.text))
            cosines.append(semantic @ w.vector)
            bonuses.append(np.array([w.tagged.get(pid, 0.0) for pid in ids], dtype=np.float32))
        for text, vector in likes:
            kinds.append(("like", text))
            cosines.append(visual @ vector)
            bonuses.append(np.zeros(len(ids), dtype=np.float32))
        cos, bonus = np.stack(cosines), np.stack(bonuses)
        rewarded = np.array([kind == "word" for kind, _ in kinds])[:, None]
        score = np.where(rewarded, (cos + REWARD * bonus) / (1.0 + REWARD), cos).mean(axis=0)
        not_cos = [semantic @ n.vector for n in nots]
        for against in not_cos:
            score = score - NOT_WEIGHT * np.maximum(against - NOT_FLOOR, 0.0)
        order = np.lexsort((np.asarray(ids), -score))
        if query.filters.min_score is not None:
            order = order[score[order] >= query.filters.min_score]
        out = []
        for i in order[: query.limit].tolist():
            terms = [
                Term(kind, text, float(cos[t, i]), float(bonus[t, i]))
                for t, (kind, text) in enumerate(kinds)
            ]
            terms += [
                Term("not", n.text, float(c[i])) for n, c in zip(nots, not_cos, strict=True)
            ]
            out.append(Scored(ids[i], float(score[i]), float(cos[:, i].mean()), terms))
        return out


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
