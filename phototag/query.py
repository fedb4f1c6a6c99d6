"""Queries that combine words, example photos and filters: ``find``, ``similar``, ``duplicates``.

A query has positive terms (``--word``: a word's vector plus a reward for photos tagged with it
or a hyponym; ``--like``: an example photo's visual vector), negative words (``--not``: photos
tagged with the word or a hyponym fall out, photos whose semantic vector lies close to it sink)
and filters (folder, date, tags, minimum score). A photo's score is the mean of its positive
terms' scores, less the ``--not`` penalties, so a perfect match on every term scores 1.

Filters never lose results: the catalog selects the photos that pass them (SQL, with an index
for dates); when that set is small enough it is scored exactly, vector by vector, and otherwise
the Annoy indexes are asked for ever more neighbours until enough of them pass.

Tags are asked for only where needed (the best-scored photos of each word, and the candidates'
tags): a word can tag a fifth of a million-photo library. Scoring is pure Python up to a few
thousand photos (``vecmath``), so a cold query never imports numpy unless it must.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from phototag.errors import BadQuery
from phototag.tagging import REWARD
from phototag.vecmath import Rows, Vector, add, unit

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
    vector: list[float]
    groups: list[set[str]]  # per taggable term of the phrase, the tag words that match it

    @property
    def hyponyms(self) -> set[str]:
        return set().union(*self.groups)


class QueryEngine:
    """Runs ``Query``s against one model's vectors in a catalog."""

    def __init__(
        self,
        catalog: Catalog,
        model: str,
        tagger: Callable[[], Tagger],
        words: Callable[[], WordVectors],
        visual_vector: Callable[[Path], tuple[Vector, set[int]]],
    ) -> None:
        self.catalog = catalog
        self.model = model
        self._tagger = tagger
        self._words = words
        self._visual_vector = visual_vector

    @cached_property
    def tagger(self) -> Tagger:
        """The vocabulary, built on first use: a query of an example photo alone needs none."""
        return self._tagger()

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
        likes: list[tuple[str, list[float]]] = []
        exclude: set[int] = set()
        for image in query.like:
            vector, itself = self._visual_vector(Path(image))
            likes.append((str(Path(os.path.abspath(image))), unit(vector)))
            exclude |= itself
        allowed = self.allowed(query.filters)
        spaces = {"semantic"} if words or nots else set()
        spaces |= {"visual"} if likes else set()
        if allowed is not None and len(allowed) <= min(EXACT_LIMIT[s] for s in spaces):
            candidates = self._unbanned(allowed - exclude, nots)
        else:
            candidates = self._nearest(query.limit, words, likes, exclude, nots, allowed)
        return self._score(sorted(candidates), words, nots, likes, query)

    def hyponyms(self, query: Query) -> set[str]:
        """Every tag word that counts as a match for the query's words (for ``why``)."""
        return set().union(*(self.tag_words(w) for w in query.words))

    def _word(self, text: str) -> _Word:
        """A word or phrase: its vector, and the tag words matching each of the phrase's
        taggable terms (``people on the beach``: people, beach)."""
        from phototag.tagging import query_terms

        vector = unit(self._words().unit(text))
        groups = [self.tag_words(t) for t in query_terms(text, self.tagger) or [text]]
        return _Word(text, vector, groups)

    def _tag_reward(self, word: _Word, ids: list[int]) -> dict[int, float]:
        """Per photo of ``ids``: the mean over the word's terms of its best matching tag."""
        found: dict[int, float] = {}
        for group in word.groups:
            for pid, score in self.catalog.photos_tagged(group, among=ids).items():
                found[pid] = found.get(pid, 0.0) + score / len(word.groups)
        return found

    def _unbanned(self, ids: set[int], nots: list[_Word]) -> set[int]:
        """``ids`` less the photos tagged with a ``--not`` word (or a hyponym)."""
        for word in nots:
            if ids:
                ids = ids - set(self.catalog.photos_tagged(word.hyponyms, among=ids))
        return ids

    def _nearest(
        self,
        limit: int,
        words: list[_Word],
        likes: list[tuple[str, list[float]]],
        exclude: set[int],
        nots: list[_Word],
        allowed: set[int] | None,
    ) -> set[int]:
        """Candidates from the Annoy indexes (and the best-tagged photos), asking for more
        neighbours until enough pass the filters; the filtered set itself when even the
        whole index does not give enough."""
        from phototag.search import VectorIndex

        # one example photo alone: the visual index's exact (re-ranked) order is the answer;
        # words add tag rewards to the vector scores, so their candidates go deeper
        want = limit if len(likes) == 1 and not words else max(limit * 5, 50)
        total = self._searchable()
        fetch = want
        if allowed is not None and allowed:  # expect len(allowed)/total of them to pass
            fetch = max(want, min(total, int(1.5 * want * total / len(allowed))))
        while True:
            found: set[int] = set()
            if words:
                combined = unit(add([w.vector for w in words]))
                index = VectorIndex(self.catalog, self.model, "semantic")
                found |= {pid for pid, _ in index.query(combined, fetch)}
                for word in words:
                    for group in word.groups:
                        found.update(self.catalog.top_tagged(group, fetch))
            for _text, vector in likes:
                index = VectorIndex(self.catalog, self.model, "visual")
                found |= {pid for pid, _ in index.query(vector, fetch, exclude=exclude)}
            found = self._unbanned(found - exclude, nots)
            if allowed is not None:
                found &= allowed
            if len(found) >= want or fetch >= total:
                return found
            if allowed is not None and fetch * 4 >= total:  # as good as everything: exactly
                return self._unbanned(allowed - exclude, nots)
            fetch *= 4

    def _searchable(self) -> int:
        """How many photos the indexes hold (from the index files: counting the catalog's
        rows takes seconds at a million photos); the tail is always searched whole."""
        from phototag.search import SPACES, VectorIndex

        counts = [int((VectorIndex(self.catalog, self.model, s).meta() or {}).get("count", 0))
                  for s in SPACES]  # fmt: skip
        return max(counts) or self.catalog.vector_count(self.model)

    def _score(
        self,
        ids: list[int],
        words: list[_Word],
        nots: list[_Word],
        likes: list[tuple[str, list[float]]],
        query: Query,
    ) -> list[Scored]:
        """Exact scores of the candidates; the best ``query.limit`` at or above the minimum."""
        if not ids:
            return []
        blobs: dict[str, dict[int, bytes]] = {}
        for space, needed in (("visual", likes), ("semantic", words or nots)):
            if needed:
                found, data = self.catalog.vector_blobs(ids, self.model, space)
                blobs[space] = dict(zip(found, data, strict=True))
        ids = [pid for pid in ids if all(pid in b for b in blobs.values())]  # both kinds
        if not ids:
            return []
        kinds: list[tuple[str, str]] = []
        cosines: list[list[float]] = []
        bonuses: list[list[float]] = []
        if "semantic" in blobs:
            semantic = Rows([blobs["semantic"][p] for p in ids], "<f4", normalise=False)
        for w in words:
            kinds.append(("word", w.text))
            cosines.append(semantic.cosines(w.vector))
            reward = self._tag_reward(w, ids)
            bonuses.append([reward.get(pid, 0.0) for pid in ids])
        if likes:
            visual = Rows([blobs["visual"][p] for p in ids], "<f2", normalise=True)
        for text, vector in likes:
            kinds.append(("like", text))
            cosines.append(visual.cosines(vector))
            bonuses.append([0.0] * len(ids))
        not_cos = [semantic.cosines(n.vector) for n in nots]
        terms = len(kinds)
        score: list[float] = []
        for i in range(len(ids)):
            total = 0.0
            for t, (kind, _text) in enumerate(kinds):
                cos = cosines[t][i]
                total += (cos + REWARD * bonuses[t][i]) / (1.0 + REWARD) if kind == "word" else cos
            value = total / terms
            for against in not_cos:
                value -= NOT_WEIGHT * max(against[i] - NOT_FLOOR, 0.0)
            score.append(value)
        order = sorted(range(len(ids)), key=lambda i: (-score[i], ids[i]))
        if query.filters.min_score is not None:
            order = [i for i in order if score[i] >= query.filters.min_score]
        out = []
        for i in order[: query.limit]:
            parts = [
                Term(kind, text, cosines[t][i], bonuses[t][i])
                for t, (kind, text) in enumerate(kinds)
            ]
            parts += [Term("not", n.text, c[i]) for n, c in zip(nots, not_cos, strict=True)]
            mean = sum(c[i] for c in cosines) / terms
            out.append(Scored(ids[i], score[i], mean, parts))
        return out
