"""The trained DeViSE head (Frome et al., NIPS 2013): frozen image features -> word space.

A linear map, trained by ``tools/build_head.py`` with a hinge rank loss on photos labelled
by hand, takes the backbone's pooled features (standardised) and the detector's per-class
evidence to a point in the GloVe space, so a photo lands near the words that describe it,
scene and nature words included (beach, kitchen, forest), which ImageNet-1k has no class
for. The evidence input is how what is in a photo (bed, lamp) informs the scene words
(bedroom): weights learnt from labelled photos, one mechanism for every word.

The head's output is used twice: its cosine to each trained word is that word's tag score
(calibrated per word, see ``calibration.py``), and, blended with the ConSE vector of the
ImageNet classes (which keeps fine-grained words such as "cocker spaniel" close), it is the
photo's semantic vector for ``find --word``. Numpy only, so every backend shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototag.errors import ModelError


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class DeviseHead:
    weight: np.ndarray  # [D, F + C]: word-space dims x (features + detector classes)
    bias: np.ndarray  # [D]
    mean: np.ndarray  # [F] feature standardisation
    scale: np.ndarray  # [F]
    evidence_scale: float  # weight of the detector evidence against standardised features
    words: list[str]  # the trained tag words
    word_vectors: np.ndarray  # [W, D] unit GloVe vectors of those words

    @classmethod
    def load(cls, path: Path) -> DeviseHead:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    weight=z["weight"].astype(np.float32),
                    bias=z["bias"].astype(np.float32),
                    mean=z["mean"].astype(np.float32),
                    scale=z["scale"].astype(np.float32),
                    evidence_scale=float(z["evidence_scale"]),
                    words=[str(w) for w in z["words"]],
                    word_vectors=unit(z["word_vectors"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: unreadable devise head ({exc})") from None

    @property
    def n_classes(self) -> int:
        return self.weight.shape[1] - self.mean.shape[0]

    def inputs(self, features: np.ndarray, evidence: np.ndarray | None) -> np.ndarray:
        """[N, F + C]: standardised features beside the scaled detector evidence."""
        f = (np.atleast_2d(features).astype(np.float32) - self.mean) / self.scale
        if evidence is None:
            evidence = np.zeros((f.shape[0], self.n_classes), dtype=np.float32)
        e = np.atleast_2d(evidence).astype(np.float32) * np.float32(self.evidence_scale)
        return np.concatenate([f, e], axis=1)

    def project(self, features: np.ndarray, evidence: np.ndarray | None) -> np.ndarray:
        """[N, D] unit points in the word space."""
        return unit(self.inputs(features, evidence) @ self.weight.T + self.bias)

    def word_cosines(self, projected: np.ndarray) -> np.ndarray:
        """[N, W] cosine of each photo's point to each trained word."""
        return np.atleast_2d(projected) @ self.word_vectors.T
