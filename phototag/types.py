"""Small value types shared across modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from phototag.detection import Detection


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
    #: the detector's objects (people, dogs, chairs), best first; empty without a detector
    objects: list[Detection] = field(default_factory=list)
    #: the trained DeViSE head's point in the word space, for its words' tag scores
    projection: np.ndarray | None = field(default=None, repr=False)
