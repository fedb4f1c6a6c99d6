"""Tags a person would accept, with scores that mean something.

A tag word stands for a node of the WordNet hierarchy above the ImageNet classes
(``taxonomy.json``): its score is the classifier's probability that the photo shows
something under that node, i.e. the summed probabilities of the classes below it. Broad
words (``animal``) are therefore always at least as likely as narrow ones (``tabby cat``);
they are listed after the words they contain unless they add real mass. A word the
taxonomy lacks (from a user's vocabulary file) gets the probability mass of the classes
whose label vectors lie close to its GloVe vector.

``rank_for_word`` is the ranking ``find --word`` uses: the cosine between the word and a
photo's semantic vector, plus a reward when the photo's tags hold the word or a hyponym.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.errors import ModelError, UnknownWord
from phototag.types import Embedding, Tag

if TYPE_CHECKING:
    import numpy as np

    from phototag.calibration import Calibration
    from phototag.devise import DeviseHead
    from phototag.labels import LabelScorer
    from phototag.models import ModelSpec
    from phototag.words import WordVectors

DEFAULT_THRESHOLD = 0.15
DEFAULT_MAX_COUNT = 6
#: how much a broad word is held back in the order: the share of its score it loses when
#: it covers every class (it loses nothing when it covers one)
BREADTH_PENALTY = 0.3
#: soft membership of a class in a word outside the taxonomy: 0 at cosine LOW between the
#: word's vector and the class's label vector, 1 at HIGH (fitted in bench/quality.py so
#: that taxonomy words scored this way match their exact scores)
SOFT_LOW = 0.45
SOFT_HIGH = 0.95
#: weight of the tag reward against the cosine in ``rank_for_word``: tags are calibrated
#: probabilities, so a photo tagged with the word counts as much as its vector
#: (bench/quality.py, eval split: find P@5 0.63 at 0.25, 0.66 at 0.5 and at 1.0)
REWARD = 1.0


@dataclass
class _Entry:
    """One vocabulary word: the classes it stands for and its place in the hierarchy."""

    word: str
    classes: tuple[int, ...]  # class indices
    nodes: list[dict[str, Any]]  # its taxonomy nodes (``Tagger._paths`` walks them)
    breadth: float  # 0 for one class .. 1 for every class


class Tagger:
    """Turns an embedding into ranked ``Tag``s over a vocabulary of words."""

    def __init__(
        self,
        taxonomy: Mapping[str, Any],
        vocabulary: Iterable[str],
        *,
        class_vectors: np.ndarray | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        max_count: int = DEFAULT_MAX_COUNT,
        words: WordVectors | None = None,
    ) -> None:
        self.threshold = float(threshold)
        self.max_count = int(max_count)
        #: a trained model's label scorer (set by ``from_model``); None for the stock model
        self.labels: LabelScorer | None = None
        self._class_vectors = class_vectors
        #: the model to read class vectors from on first use (a memory-mapped numpy file)
        self._class_vectors_from: ModelSpec | None = None
        self._word_vectors = words
        nodes = list(taxonomy["nodes"])
        self._nodes = {n["id"]: n for n in nodes}
        self.n_classes = 1 + max(n.get("class", -1) for n in nodes)
        self._by_word: dict[str, list[dict[str, Any]]] = {}
        self._by_lemma: dict[str, list[dict[str, Any]]] = {}
        for n in nodes:
            self._by_word.setdefault(n["word"], []).append(n)
            for lemma in n.get("lemmas", [n["word"]]):
                self._by_lemma.setdefault(lemma, []).append(n)
        #: the tag words, in the vocabulary's order
        self.words: list[str] = list(
            dict.fromkeys(w for w in (" ".join(r.lower().split()) for r in vocabulary) if w)
        )
        self.words = [w for w in self.words if not w.startswith("#")]
        self._path_cache: dict[str, list[tuple[list[int], str]]] = {}
        self._member_matrix: np.ndarray | None = None
        self._free_member: np.ndarray | None = None
        #: the trained stages (set by ``from_model`` for a model that has them)
        self._calibration: Calibration | None = None
        self._head: DeviseHead | None = None
        #: where they are loaded from on first use (``find`` needs neither)
        self._calibration_path: Path | None = None
        self._head_from: ModelSpec | None = None
        self.object_words: dict[str, str] = {}
        self.hierarchies: dict[str, str] = {}
        #: a user's vocabulary file restricts every stage's words to it
        self.restricted = False
        #: write every listed word into files, not only the confident ones (config file_tags)
        self.file_tags_all = False
        #: a threshold the caller set: the least probability listed, instead of each word's
        self.list_floor: float | None = None

    # ---------------------------------------------------------------- the words' classes
    # Built on first use: tagging needs every word's classes, a query only those of the few
    # words under its own (``hyponyms``), and a cold ``find`` should not pay for 1,300.
    @cached_property
    def _entries(self) -> list[_Entry]:
        """The words the taxonomy knows, in the vocabulary's order."""
        return [self._entry(w, found) for w in self.words if (found := self._nodes_for(w))]

    @cached_property
    def _entry_of(self) -> dict[str, _Entry]:
        return {e.word: e for e in self._entries}

    @cached_property
    def _free(self) -> list[str]:
        """The words outside the taxonomy (scored through word vectors)."""
        known = self._entry_of
        return [w for w in self.words if w not in known]

    @cached_property
    def _order(self) -> list[str]:
        return [e.word for e in self._entries] + self._free

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_model(
        cls,
        spec: ModelSpec,
        vocabulary: Path | None = None,
        *,
        words: WordVectors | None = None,
        threshold: float | None = None,
        max_count: int | None = None,
    ) -> Tagger:
        """The model's taxonomy and defaults; ``vocabulary`` (a file, one word or phrase a
        line, ``#`` comments) replaces the model's default tag words."""
        tagging = spec.tagging
        taxonomy_path = spec.file("tagging.taxonomy", "taxonomy.json")
        vocab_path = vocabulary or spec.file("tagging.vocabulary", "vocabulary.txt")
        try:
            taxonomy = json.loads(taxonomy_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{taxonomy_path}: unreadable taxonomy ({exc})") from None
        try:
            lines = vocab_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{vocab_path}: unreadable vocabulary ({exc})") from None
        tagger = cls(
            taxonomy,
            lines,
            threshold=_default(threshold, tagging.get("threshold"), DEFAULT_THRESHOLD),
            max_count=_default(max_count, tagging.get("max_count"), DEFAULT_MAX_COUNT),
            words=words,
        )
        tagger._class_vectors_from = spec
        if spec.manifest.get("semantic_head", {}).get("kind") == "graph":  # numpy: only then
            from phototag.labels import LabelScorer

            tagger.labels = LabelScorer.from_model(spec)
        tagger.restricted = vocabulary is not None
        tagger.list_floor = threshold
        calibration = tagging.get("calibration")
        if calibration:
            tagger._calibration_path = spec.path / calibration
            tagger._head_from = spec
            detector = spec.manifest.get("detector", {})
            tagger.object_words = dict(detector.get("words", {}))
            tagger.hierarchies = dict(tagging.get("hierarchies", {}))
        return tagger

    @property
    def calibration(self) -> Calibration | None:
        """The model's calibrated words (``calibration.py``), read on first use."""
        if self._calibration is None and self._calibration_path is not None:
            from phototag.calibration import Calibration

            self._calibration = Calibration.load(self._calibration_path)
        return self._calibration

    @calibration.setter
    def calibration(self, value: Calibration | None) -> None:
        self._calibration = value

    @property
    def head(self) -> DeviseHead | None:
        """The model's trained DeViSE head, read on first use."""
        if self._head is None and self._head_from is not None:
            self._head = self._head_from.devise_head
        return self._head

    @head.setter
    def head(self, value: DeviseHead | None) -> None:
        self._head = value

    def _nodes_for(self, word: str) -> list[dict[str, Any]]:
        """Taxonomy nodes a word names: useful nodes of that tag word, else any node of that
        word, else nodes having it as a WordNet lemma; a plural falls back to its singular.
        (Useful nodes first keeps 'food' from taking in 'food, nutrient' and so coffee.)"""
        for candidate in (word, _singular(word)):
            for index in (self._by_word, self._by_lemma):
                found = index.get(candidate, []) if candidate else []
                useful = [n for n in found if n.get("useful")]
                if useful or found:
                    return useful or found
        return []

    def _entry(self, word: str, nodes: list[dict[str, Any]]) -> _Entry:
        classes = sorted({c for n in nodes for c in n["classes"]})
        breadth = math.log(len(classes)) / math.log(self.n_classes)
        return _Entry(word, tuple(classes), nodes, breadth)

    def _paths(self, entry: _Entry) -> list[tuple[list[int], str]]:
        """(classes of a node, "animal|cat") per node of a word: only tagging needs them,
        so they are walked on first use (``find`` builds a Tagger for every query)."""
        found = self._path_cache.get(entry.word)
        if found is None:
            found = [(list(n["classes"]), self._path(n, entry.word)) for n in entry.nodes]
            self._path_cache[entry.word] = found
        return found

    def _path(self, node: dict[str, Any], word: str) -> str:
        """``animal|mammal|cat``: the useful ancestors' words, broadest first."""
        parts = [word]
        parent = node.get("parent")
        while parent:
            ancestor = self._nodes[parent]
            if ancestor["word"] != parts[-1]:
                parts.append(ancestor["word"])
            parent = ancestor.get("parent")
        return "|".join(reversed(parts))

    # ---------------------------------------------------------------- scoring
    @property
    def _member(self) -> np.ndarray:
        """[words, classes] 0/1 membership, built on first use (``find`` never needs it)."""
        if self._member_matrix is None:
            import numpy as np

            member = np.zeros((len(self._entries), self.n_classes), dtype=np.float32)
            for i, e in enumerate(self._entries):
                member[i, list(e.classes)] = 1.0
            self._member_matrix = member
        return self._member_matrix

    def _free_membership(self) -> np.ndarray:
        """Soft class membership of the words outside the taxonomy, from word vectors."""
        if self._free_member is None:
            import numpy as np

            member = np.zeros((len(self._free), self.n_classes), dtype=np.float32)
            if self._free and self._class_vectors is None and self._class_vectors_from:
                try:
                    self._class_vectors = self._class_vectors_from.class_vectors()
                except ModelError:
                    self._class_vectors_from = None
            if self._free and self._class_vectors is not None:
                if self._word_vectors is None:
                    from phototag.words import WordVectors

                    self._word_vectors = WordVectors(self.words)
                vecs = self._class_vectors
                for i, word in enumerate(self._free):
                    try:
                        v = self._word_vectors.vector(word)
                    except UnknownWord:
                        continue  # a word without a vector can never be tagged
                    cos = np.asarray(vecs @ v, dtype=np.float32)
                    member[i] = np.clip((cos - SOFT_LOW) / (SOFT_HIGH - SOFT_LOW), 0.0, 1.0)
            self._free_member = member
        return self._free_member

    def scores(self, probs: np.ndarray) -> dict[str, float]:
        """Every vocabulary word's score for one photo's class probabilities: the mass of
        the word's classes, above what chance would give it."""
        import numpy as np

        p = np.asarray(probs, dtype=np.float32)
        mass = self._member @ p
        prior = self._member.sum(axis=1) / self.n_classes
        if self._free:
            free = self._free_membership()
            mass = np.concatenate([mass, free @ p])
            prior = np.concatenate([prior, free.sum(axis=1) / self.n_classes])
        # chance-corrected: the classifier was trained on balanced classes, so a word over k
        # of C classes collects k/C of the mass from a photo it knows nothing about
        lifted = np.clip((mass - prior) / np.maximum(1.0 - prior, 1e-6), 0.0, 1.0)
        return dict(zip(self._order, map(float, lifted), strict=True))

    def candidates(
        self, emb: Embedding, projection: np.ndarray | None = None
    ) -> dict[tuple[str, str], float]:
        """Raw evidence for each (stage, word): the detector's objects, the DeViSE head's
        cosines to its trained words (``projection`` overrides the embedding's point, for
        the build tool's held-out folds), the ImageNet taxonomy's class mass."""
        import numpy as np

        from phototag.detection import object_words

        raw: dict[tuple[str, str], float] = {}
        for word, score in object_words(emb.objects, self.object_words).items():
            raw[("detector", word)] = score
        point = projection if projection is not None else emb.projection
        if self.head is not None and point is not None:
            cosines = self.head.word_cosines(point)[0]
            for word, cos in zip(self.head.words, cosines, strict=True):
                raw[("head", word)] = float(cos)
        for word, score in self.scores(np.asarray(emb.probs, dtype=np.float32)).items():
            if score > 0.0:
                raw[("taxonomy", word)] = score
        if self.restricted:
            allowed = set(self.words)
            raw = {k: v for k, v in raw.items() if k[1] in allowed}
        return raw

    def _calibrated_tags(self, emb: Embedding) -> list[Tag]:
        """The words whose calibrated probability clears their own threshold, most specific
        and likely first."""
        import numpy as np

        assert self.calibration is not None
        kept = self.calibration.listed(
            self.calibration.combine(self.candidates(emb)), floor=self.list_floor
        )
        p = np.asarray(emb.probs, dtype=np.float32)
        ranked = []
        for word, prob in kept.items():
            entry = self._entry_of.get(word)
            breadth = entry.breadth if entry else 0.0
            ranked.append((prob * (1 - BREADTH_PENALTY * breadth), word, prob))
        ranked.sort(key=lambda r: (-r[0], len(r[1]), r[1]))
        # the likeliest words are kept; they are shown in the order of how likely each is
        # what the photo is of (right, and a main subject): tower before sky
        chosen = ranked[: self.max_count]
        main_rate = self.calibration.main_rate
        chosen.sort(key=lambda r: (-r[0] * main_rate(r[1]), len(r[1]), r[1]))
        tags = []
        for _, word, prob in chosen:
            entry = self._entry_of.get(word)
            hierarchy = self.hierarchies.get(word) or (
                self._best_path(self._paths(entry), p) if entry else word
            )
            tags.append(Tag(tag=word, score=round(prob, 4), hierarchy=hierarchy))
        return tags

    def writable(self, tags: Sequence[Tag]) -> list[Tag]:
        """The tags to write into a file: each word above its own calibrated threshold
        (right at least 80 % of the time on labelled photos). Without a calibration, all."""
        if self.calibration is None or self.file_tags_all:
            return list(tags)
        labels = set(self.labels.labels) if self.labels is not None else set()
        return [t for t in tags if t.tag in labels or self.calibration.writable(t.tag, t.score)]

    def tag(self, emb: Embedding) -> list[Tag]:
        """Tags above the threshold, at most ``max_count``, best first."""
        import numpy as np

        if self.calibration is not None:
            tags = self._calibrated_tags(emb)
            if self.labels is not None:
                tags = self.labels.merge_tags(
                    emb, tags, threshold=self.threshold, max_count=self.max_count
                )
            return tags
        p = np.asarray(emb.probs, dtype=np.float32)
        ranked = []
        for word, score in self.scores(p).items():
            if score < self.threshold:
                continue
            entry = self._entry_of.get(word)
            breadth = entry.breadth if entry else 0.0
            n_classes = len(entry.classes) if entry else 1
            ranked.append((score * (1 - BREADTH_PENALTY * breadth), n_classes, word, score))
        # ties (one node, two words: bed / four-poster bed) go to the broader, shorter word
        ranked.sort(key=lambda r: (-r[0], -r[1], len(r[2])))
        tags = []
        for _, _, word, score in ranked[: self.max_count]:
            entry = self._entry_of.get(word)
            hierarchy = self._best_path(self._paths(entry), p) if entry else word
            tags.append(Tag(tag=word, score=round(score, 4), hierarchy=hierarchy))
        if self.labels is not None:  # a trained model: its own label words, merged by score
            tags = self.labels.merge_tags(
                emb, tags, threshold=self.threshold, max_count=self.max_count
            )
        return tags

    @staticmethod
    def _best_path(paths: list[tuple[list[int], str]], probs: np.ndarray) -> str:
        if len(paths) == 1:
            return paths[0][1]
        return max(paths, key=lambda cp: float(probs[cp[0]].sum()))[1]

    # ---------------------------------------------------------------- search support
    def hyponyms(self, word: str) -> set[str]:
        """The vocabulary words at or under ``word`` (``dog`` -> dog, beagle, ...)."""
        word = " ".join(word.lower().split())
        nodes = self._nodes_for(word)
        found = {word} if word in self.words else set()
        # the head's and the detector's words filed under it (person -> people, portrait)
        found |= {w for w, path in self.hierarchies.items() if word in path.split("|")[:-1]}
        if not nodes:
            return found
        covered: set[int] = set()
        for n in nodes:
            covered.update(n["classes"])
        if "_entries" in self.__dict__:
            within = (e for e in self._entries if covered.issuperset(e.classes))
            return found | {e.word for e in within if e.classes}
        # the words naming a node whose classes all lie under ``word``: only those can
        names = {
            name
            for n in self._nodes.values()
            if n["classes"] and covered.issuperset(n["classes"])
            for name in (n["word"], *n.get("lemmas", ()))
        }
        for w in self.words:
            if w in names or _singular(w) in names:
                classes = {c for n in self._nodes_for(w) for c in n["classes"]}
                if classes and covered.issuperset(classes):
                    found.add(w)
        return found


def _default(given: Any, manifest: Any, fallback: Any) -> Any:
    return given if given is not None else manifest if manifest is not None else fallback


def _singular(word: str) -> str:
    """A crude singular for look-ups only: chairs -> chair, boxes -> box, berries -> berry."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return ""


# -------------------------------------------------------------------- find --word


def _tag_items(tags: Iterable[Any] | Mapping[str, float]) -> Iterable[tuple[str, float]]:
    if isinstance(tags, Mapping):
        return tags.items()
    return ((t.tag, t.score) if isinstance(t, Tag) else (t[0], t[1]) for t in tags)


def word_scores(
    word_vector: np.ndarray,
    semantic: np.ndarray,
    tags: Sequence[Iterable[Any] | Mapping[str, float]] | None,
    hyponyms: set[str] | Sequence[set[str]],
    *,
    reward: float = REWARD,
) -> np.ndarray:
    """Scores of photos for a query word: cosine of the word vector and each unit semantic
    vector [N, D], plus ``reward`` times the best score among the photo's tags that are the
    word or a hyponym. ``tags[i]`` is photo i's tags (``Tag``s, (tag, score) pairs or a
    mapping). ``hyponyms`` may be one set per query term (``query_terms``): the reward is
    then the mean over terms. Divided by 1 + reward so a perfect match scores 1."""
    import numpy as np

    semantic = np.atleast_2d(np.asarray(semantic, dtype=np.float32))
    cos = semantic @ np.asarray(word_vector, dtype=np.float32)
    if tags is None or not hyponyms or reward == 0:
        return cos
    terms = [hyponyms] if isinstance(hyponyms, set) else list(hyponyms)
    bonus = term_bonus(tags, terms)
    return (cos + reward * bonus) / (1.0 + reward)


def query_terms(phrase: str, tagger: Tagger) -> list[str]:
    """The taggable parts of a query: the phrase itself when it is a tag word ("living
    room", "golden retriever"), else its words that are ("people on the beach" -> people,
    beach; "red car" -> car). Each term's tags count towards a photo's reward."""
    from phototag.words import STOP_WORDS

    phrase = " ".join(phrase.lower().split())
    if phrase in tagger.words or tagger.hyponyms(phrase):
        return [phrase]
    words = [w for w in phrase.split() if w not in STOP_WORDS]
    return [w for w in words if w in tagger.words or tagger.hyponyms(w)]


def term_bonus(
    tags: Sequence[Iterable[Any] | Mapping[str, float]], term_hyponyms: Sequence[set[str]]
) -> np.ndarray:
    """[N] the mean over query terms of each photo's best tag score under that term: a
    photo must carry every term's tag to get the whole reward."""
    import numpy as np

    if not term_hyponyms:
        return np.zeros(len(tags), dtype=np.float32)
    out = np.zeros(len(tags), dtype=np.float32)
    for i, photo in enumerate(tags):
        items = list(_tag_items(photo))
        out[i] = sum(
            max((s for t, s in items if t in hyp), default=0.0) for hyp in term_hyponyms
        ) / len(term_hyponyms)
    return out


def rank_for_word(
    word_vector: np.ndarray,
    semantic: np.ndarray,
    tags: Sequence[Iterable[Any] | Mapping[str, float]] | None,
    hyponyms: set[str] | Sequence[set[str]],
    *,
    limit: int | None = None,
    reward: float = REWARD,
) -> list[tuple[int, float]]:
    """(photo index, score) best first: the ``find --word`` order (see ``word_scores``)."""
    import numpy as np

    scores = word_scores(word_vector, semantic, tags, hyponyms, reward=reward)
    order = np.argsort(-scores, kind="stable")
    if limit is not None:
        order = order[:limit]
    return [(int(i), float(scores[i])) for i in order]
