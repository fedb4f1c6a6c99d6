"""Calibrated words: a raw score from any stage -> the chance that the word is right.

Three stages propose words with raw scores that mean different things: the detector's box
score (``dog`` 0.41), the DeViSE head's cosine to a trained word (``beach`` 0.62) and the
ImageNet classes' probability mass under a taxonomy word (``espresso`` 0.88). Each
(stage, word) pair gets a logistic (Platt) map from its raw score to a probability, fitted
by ``tools/build_head.py`` on photos labelled by hand and shrunk towards its stage's pooled
fit when the word has few photos. Each word then gets its own threshold: the lowest
probability at which, on those photos, the word was right at least 80 % of the time. A
word that never reaches that is not written at all (``dropped``).

A word shown on many labelled photos (``sky``, ``person``) gets one logistic regression over
all its stages' scores instead (a ``Stack``): the taxonomy proposes ``sky`` for nearly every
photo with a score that says nothing, and its own map would give every photo sky's base
rate; the stack weighs each stage by what it tells. Listed words are shown in the order of
how likely each is the photo's main subject: its probability times the share of labelled
photos it is true of where the labeller called it a main subject (``tower`` before ``sky``).

The fitted numbers live in the model folder (``calibration.json``); this module applies
them and holds the fitting code the build tool uses, so both sides agree by construction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phototag.errors import ModelError

#: the share of written tags that must be right, on the labelled photos
TARGET_PRECISION = 0.8
#: the share of listed tags (catalog, search) that must be right, per word
LIST_PRECISION = 0.5
#: pseudo-photos (at the target precision) added to each word's count when choosing its
#: threshold: a word seen right on 2 of 2 photos is not yet proven
PRIOR_PHOTOS = 2.0
#: a detector box this sure of one object overrules whole-photo guesses of another
OVERRULE_AT = 0.4
#: no word is written below this probability, however its photos went
MIN_PROBABILITY = 0.5
#: the catalog (search, ``phototag tags``) lists words from this probability on; files get
#: only the words above their own threshold
LIST_PROBABILITY = 0.3


def sigmoid(x: float | np.ndarray) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


@dataclass(frozen=True)
class Platt:
    slope: float
    bias: float

    def __call__(self, raw: float) -> float:
        return float(sigmoid(self.slope * raw + self.bias))

    def as_list(self) -> list[float]:
        return [round(self.slope, 5), round(self.bias, 5)]


@dataclass(frozen=True)
class Stack:
    """One word's logistic regression over the raw scores of every stage that proposes it
    (a stage that says nothing counts 0), so stages add up as the labelled photos say: a
    stage that knows nothing about the word gets no weight instead of its base rate."""

    weights: dict[str, float]
    bias: float

    def __call__(self, raw: Mapping[str, float]) -> float:
        z = self.bias + sum(w * raw.get(stage, 0.0) for stage, w in self.weights.items())
        return float(sigmoid(z))

    def as_json(self) -> dict[str, Any]:
        return {
            "weights": {s: round(w, 5) for s, w in sorted(self.weights.items())},
            "bias": round(self.bias, 5),
        }


@dataclass
class Calibration:
    """Per word stacks over its stages (Platt maps per (stage, word) where a word has no
    stack), per word thresholds, and the stage defaults."""

    maps: dict[tuple[str, str], Platt] = field(default_factory=dict)
    stacks: dict[str, Stack] = field(default_factory=dict)
    defaults: dict[str, Platt] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    #: per word, the probability from which it is listed (right half the time or more)
    list_thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.9
    list_threshold: float = LIST_PROBABILITY
    dropped: set[str] = field(default_factory=set)
    #: a word that, when written, makes these words redundant or wrong (people -> person)
    excludes: dict[str, list[str]] = field(default_factory=dict)
    #: words the detector is the authority on (its object classes): the whole-photo stages
    #: may not claim a dog the detector does not see (skimage's horse is no dog)
    detector_words: set[str] = field(default_factory=set)
    #: per word, how often it is what the photo is of when it is true of it (the labellers'
    #: "main" words): ``tower`` mostly is, ``sky`` mostly is not. Orders the listed words.
    main_rates: dict[str, float] = field(default_factory=dict)
    default_main_rate: float = 1.0

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            maps = {
                (stage, word): Platt(*pair)
                for stage, words in data["maps"].items()
                for word, pair in words.items()
            }
            stacks = {
                word: Stack({k: float(v) for k, v in st["weights"].items()}, float(st["bias"]))
                for word, st in data.get("stacks", {}).items()
            }
            return cls(
                maps=maps,
                stacks=stacks,
                defaults={s: Platt(*p) for s, p in data["defaults"].items()},
                thresholds={w: float(t) for w, t in data["thresholds"].items()},
                list_thresholds={w: float(t) for w, t in data.get("list_thresholds", {}).items()},
                default_threshold=float(data.get("default_threshold", 0.9)),
                list_threshold=float(data.get("list_threshold", LIST_PROBABILITY)),
                dropped=set(data.get("dropped", [])),
                excludes={w: list(v) for w, v in data.get("excludes", {}).items()},
                detector_words=set(data.get("detector_words", [])),
                main_rates={w: float(r) for w, r in data.get("main_rates", {}).items()},
                default_main_rate=float(data.get("default_main_rate", 1.0)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: unreadable calibration ({exc})") from None

    def as_json(self) -> dict[str, Any]:
        maps: dict[str, dict[str, list[float]]] = {}
        for (stage, word), platt in sorted(self.maps.items()):
            maps.setdefault(stage, {})[word] = platt.as_list()
        return {
            "target_precision": TARGET_PRECISION,
            "defaults": {s: p.as_list() for s, p in sorted(self.defaults.items())},
            "maps": maps,
            "stacks": {w: st.as_json() for w, st in sorted(self.stacks.items())},
            "thresholds": {w: round(t, 4) for w, t in sorted(self.thresholds.items())},
            "list_thresholds": {w: round(t, 4) for w, t in sorted(self.list_thresholds.items())},
            "default_threshold": self.default_threshold,
            "list_threshold": self.list_threshold,
            "dropped": sorted(self.dropped),
            "excludes": self.excludes,
            "detector_words": sorted(self.detector_words),
            "main_rates": {w: round(r, 4) for w, r in sorted(self.main_rates.items())},
            "default_main_rate": round(self.default_main_rate, 4),
        }

    def probability(self, stage: str, word: str, raw: float) -> float:
        platt = self.maps.get((stage, word)) or self.defaults.get(stage)
        return platt(raw) if platt is not None else float(raw)

    def main_rate(self, word: str) -> float:
        return self.main_rates.get(word, self.default_main_rate)

    def threshold(self, word: str) -> float:
        return self.thresholds.get(word, self.default_threshold)

    def evidence(self, raw: Mapping[tuple[str, str], float]) -> dict[str, dict[str, float]]:
        """Each word's raw score per stage. For the detector's words, a whole-photo guess
        does not count when the detector found another of its words more surely (its box
        says horse: ImageNet's dog is overruled)."""
        seen = {w: v for (s, w), v in raw.items() if s == "detector" and w in self.detector_words}
        out: dict[str, dict[str, float]] = {}
        for (stage, word), value in raw.items():
            if stage != "detector" and word in self.detector_words:
                rival = max((v for w, v in seen.items() if w != word), default=0.0)
                if rival >= OVERRULE_AT and rival > seen.get(word, 0.0):
                    continue
            out.setdefault(word, {})[stage] = value
        return out

    def combine(self, raw: Mapping[tuple[str, str], float]) -> dict[str, float]:
        """Every word's probability: its stack over the stages, or, for a word with too few
        labelled photos for one, the best of its stages' maps."""
        best: dict[str, float] = {}
        for word, stages in self.evidence(raw).items():
            stack = self.stacks.get(word)
            p = stack(stages) if stack is not None else -1.0
            for stage, value in stages.items():
                if stack is None or stage not in stack.weights:
                    p = max(p, self.probability(stage, word, value))
            best[word] = p
        return best

    def writable(self, word: str, probability: float) -> bool:
        """Is this word right often enough at this probability to go into a file?"""
        return word not in self.dropped and probability >= max(
            self.threshold(word), MIN_PROBABILITY
        )

    def listed(self, probs: Mapping[str, float], *, floor: float | None = None) -> dict[str, float]:
        """The words likely enough to list (dropped words never are), after the exclusions
        (a photo with ``people`` is not also tagged ``person``). ``floor`` replaces the
        listing thresholds (a user's ``threshold``)."""
        kept = {
            w: p for w, p in probs.items()
            if w not in self.dropped
            and p >= (
                floor if floor is not None
                else max(self.list_threshold, self.list_thresholds.get(w, 0.0))
            )
        }  # fmt: skip
        for word in list(kept):
            for other in self.excludes.get(word, []):
                kept.pop(other, None)
        return kept


# -------------------------------------------------------------------- fitting (build tool)


def fit_platt(
    raw: Sequence[float],
    truth: Sequence[bool],
    *,
    prior: Platt | None = None,
    strength: float = 0.0,
) -> Platt:
    """Logistic regression of truth on one raw score, pulled towards ``prior`` by an L2
    penalty of ``strength`` pseudo-photos."""
    centre = np.array([prior.slope, prior.bias]) if prior else np.array([4.0, -2.0])
    x = np.asarray(raw, dtype=np.float64)[:, None]
    slope, bias = fit_logistic(x, truth, centre=centre, strength=strength)
    return Platt(float(slope), float(bias))


def fit_logistic(
    x: np.ndarray,
    truth: Sequence[bool],
    *,
    centre: np.ndarray,
    strength: float,
    iterations: int = 60,
) -> np.ndarray:
    """Logistic regression of truth on the columns of ``x`` plus a bias (Newton's method),
    pulled towards ``centre`` ([weights..., bias]) by an L2 penalty of ``strength``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    centre = np.asarray(centre, dtype=np.float64)
    theta = centre.copy()
    reg = max(strength, 1e-3)
    for _ in range(iterations):
        p = sigmoid(design @ theta)
        grad = design.T @ (p - y) + reg * (theta - centre)
        hess = (design * (p * (1 - p))[:, None]).T @ design + reg * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-7:
            break
    return theta


def fit_threshold(
    probs: Sequence[float],
    truth: Sequence[bool],
    *,
    target: float = TARGET_PRECISION,
    floor: float = MIN_PROBABILITY,
) -> float | None:
    """The lowest probability whose tags (this one and every higher) are right at least
    ``target`` of the time, counting ``PRIOR_PHOTOS`` pseudo-photos at the target; None
    when no cut-off gets there."""
    order = np.argsort(-np.asarray(probs, dtype=np.float64), kind="stable")
    p = np.asarray(probs, dtype=np.float64)[order]
    t = np.asarray(truth, dtype=bool)[order]
    smoothed = (np.cumsum(t) + target * PRIOR_PHOTOS) / (np.arange(1, len(t) + 1) + PRIOR_PHOTOS)
    best = None
    for i in range(len(p)):
        if i + 1 < len(p) and p[i + 1] == p[i]:
            continue  # a cut-off between equal scores is no cut-off
        if smoothed[i] >= target and t[: i + 1].any():
            best = p[i]
    if best is None:
        return None
    return max(float(best), floor)
