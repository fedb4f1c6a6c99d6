"""Scoring a trained model's label words for a photo (numpy only, no TensorFlow).

A trained model's manifest names its labels under ``semantic_head``::

    "semantic_head": {
        "kind": "graph", "output": "semantic",
        "labels": ["astronaut", "galaxy", ...],
        "label_vectors": "label_vectors.npy",             # [L, 50] unit GloVe vectors
        "calibration": {"slope": 15.7, "bias": -5.5},      # logistic on the semantic cosine
        "prototypes": "label_prototypes.npz",              # unit visual vectors + label index
        "visual_calibration": {"slope": 21.0, "bias": -9.0} # logistic on the nearest one
    }

A label's score is the product of two calibrated probabilities:

- *which label*: ``sigmoid(slope * cos(semantic, label_vector) + bias)``. The cosine alone
  is no probability (0.6 can be a sure hit in 50-d GloVe), so ``phototag train`` fits the
  logistic on held-out photos (Platt scaling).
- *any label at all*: the head was trained on the labels' photos only, so a photo of
  something else still lands somewhere in the word space, often near the broadest label.
  Its pooled visual features, though, are far from every training photo of that label:
  ``sigmoid(slope * max cos(visual, the label's photos) + bias)``, fitted with the other
  labels' held-out photos as the negatives (they are "something else" to this label).

This module is the reference for what the core tagger should do with those fields (see
docs/training.md); ``merge_tags`` is the ranking policy: label scores and stock scores
are both probabilities, so a label goes in before the first stock tag it beats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from phototag.errors import ModelError
from phototag.types import Embedding, Tag

if TYPE_CHECKING:
    from phototag.models import ModelSpec


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_by_label(visual: np.ndarray, prototypes: np.ndarray, owner: np.ndarray, n: int):
    """[N, n]: for each photo, the highest cosine to any prototype of each label."""
    sims = unit_rows(visual) @ unit_rows(prototypes).T
    out = np.full((sims.shape[0], n), -1.0, dtype=np.float32)
    for label in range(n):
        mask = owner == label
        if mask.any():
            out[:, label] = sims[:, mask].max(axis=1)
    return out


@dataclass
class LabelScorer:
    labels: list[str]
    vectors: np.ndarray  # [L, D] unit word vectors
    slope: float
    bias: float
    prototypes: np.ndarray | None = None  # [P, F] unit visual vectors of training photos
    owner: np.ndarray | None = None  # [P] label index of each prototype
    visual_slope: float = 0.0
    visual_bias: float = 0.0

    @classmethod
    def from_model(cls, spec: ModelSpec) -> LabelScorer | None:
        """The scorer of a trained model, or None for a model without trained labels."""
        head = spec.manifest.get("semantic_head", {})
        if head.get("kind") != "graph" or not head.get("labels"):
            return None
        path = spec.path / head.get("label_vectors", "label_vectors.npy")
        try:
            vectors = np.load(path).astype(np.float32)
            scorer = cls(list(head["labels"]), vectors, *_calibration(head.get("calibration", {})))
            if head.get("prototypes"):
                path = spec.path / head["prototypes"]
                with np.load(path) as data:
                    scorer.prototypes = data["vectors"].astype(np.float32)
                    scorer.owner = data["labels"].astype(np.intp)
                visual = _calibration(head.get("visual_calibration", {}))
                scorer.visual_slope, scorer.visual_bias = visual
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: unreadable trained-label data ({exc})") from None
        return scorer

    def scores(self, emb: Embedding) -> np.ndarray:
        """[L] scores in [0, 1] of the labels for one photo."""
        cos = unit_rows(emb.semantic) @ self.vectors.T
        p = sigmoid(self.slope * cos + self.bias)[0]
        if self.prototypes is not None and self.owner is not None:
            near = nearest_by_label(emb.visual, self.prototypes, self.owner, len(self.labels))
            p = p * sigmoid(self.visual_slope * near + self.visual_bias)[0]
        return p

    def merge_tags(
        self, emb: Embedding, stock: Sequence[Tag], *, threshold: float, max_count: int
    ) -> list[Tag]:
        """The stock tags with the trained labels at or above ``threshold`` merged in by
        score (both are probabilities), at most ``max_count``. A label word the stock model
        also tags keeps only its trained score; the stock tags keep their own order."""
        merged = [t for t in stock if t.tag not in self.labels]
        scored = sorted(zip(self.scores(emb), self.labels, strict=True), reverse=True)
        for score, label in scored:
            if score < threshold:
                break
            tag = Tag(tag=label, score=round(float(score), 4), hierarchy=label)
            at = next((i for i, t in enumerate(merged) if t.score < tag.score), len(merged))
            merged.insert(at, tag)
        return merged[:max_count]


def _calibration(section: dict) -> tuple[float, float]:
    return float(section.get("slope", 10.0)), float(section.get("bias", -5.0))


def fit_calibration(
    cosines: np.ndarray, truth: np.ndarray, *, l2: float = 1e-4
) -> tuple[float, float]:
    """Platt scaling: slope and bias of a logistic on a cosine, positives and negatives
    weighted equally (a photo has one label and L-1 non-labels). Newton's method on two
    parameters; a little L2 keeps the slope finite when the classes separate perfectly."""
    x = np.asarray(cosines, dtype=np.float64).reshape(-1)
    y = np.asarray(truth, dtype=np.float64).reshape(-1)
    pos = max(float(y.sum()), 1.0)
    neg = max(float(len(y) - y.sum()), 1.0)
    w = np.where(y > 0, 0.5 / pos, 0.5 / neg)
    theta = np.array([10.0, -5.0])
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(50):
        p = sigmoid(design @ theta)
        grad = design.T @ (w * (p - y)) + l2 * np.array([theta[0], 0.0])
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 1e-9])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(theta[0]), float(theta[1])
