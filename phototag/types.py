"""Small value types shared across modules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tag:
    """A tag with an honest score in [0, 1].

    ``hierarchy`` is the keyword path from the broadest useful word down to this
    tag, joined with ``|`` (``animal|cat``); writers turn it into
    lr:hierarchicalSubject and digiKam:TagsList.
    """

    tag: str
    score: float
    hierarchy: str = ""


@dataclass
class Embedding:
    """What a backend returns for one photo (all vectors L2-normalised float32)."""

    visual: np.ndarray  # pooled CNN features, for `similar`
    semantic: np.ndarray  # point in the word space, for `find --word` and tags
    probs: np.ndarray = field(repr=False)  # class probabilities (softmax), for tags
