"""Finding models and reading their manifests.

A model is a folder with a ``manifest.json``: the shipped ones live in the
``phototag_models`` package (the repository's ``models/``), trained ones in the user's
data folder, which wins so a user can override a shipped model by name. Importing this
module stays cheap (no onnxruntime, torch or pyarrow): ``find`` starts fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phototag.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from phototag.detection import DetectorSpec
    from phototag.devise import DeviseHead

DEFAULT_MODEL = "devise-lite0"
MANIFEST = "manifest.json"


@dataclass
class ModelSpec:
    """One model folder and what its manifest says about it."""

    name: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dir(cls, path: Path) -> ModelSpec:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{path}: no {MANIFEST} in the model folder") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path / MANIFEST}: unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or "name" not in manifest:
            raise ModelError(f"{path / MANIFEST}: not a phototag model manifest")
        return cls(str(manifest["name"]), str(manifest.get("version", "0")), path, manifest)

    # ---------------------------------------------------------------- input
    @property
    def onnx_path(self) -> Path:
        return self.path / self.manifest.get("onnx", "backbone.onnx")

    @property
    def _input(self) -> dict[str, Any]:
        return self.manifest.get("input", {})

    @property
    def input_size(self) -> int:
        return int(self._input.get("size", 224))

    @property
    def resize(self) -> int:
        """Short side before the centre crop (256 for a 224 crop)."""
        return int(self._input.get("resize", round(self.input_size * 256 / 224)))

    @property
    def mean(self) -> float:
        return float(self._input.get("mean", 127.0))

    @property
    def std(self) -> float:
        return float(self._input.get("std", 128.0))

    @property
    def views(self) -> list[str]:
        return list(self._input.get("views", ["center"]))

    # ---------------------------------------------------------------- spaces
    @property
    def semantic_dim(self) -> int:
        return int(self.manifest.get("spaces", {}).get("semantic", {}).get("dim", 50))

    @property
    def visual_dim(self) -> int:
        return int(self.manifest.get("spaces", {}).get("visual", {}).get("dim", 1280))

    @property
    def tagging(self) -> dict[str, Any]:
        return dict(self.manifest.get("tagging", {}))

    def file(self, key: str, default: str) -> Path:
        """A data file named in the manifest (e.g. ``tagging.taxonomy``), inside the folder."""
        section, _, name = key.partition(".")
        return self.path / self.manifest.get(section, {}).get(name, default)

    def class_vectors(self) -> np.ndarray:
        """[C, D] unit word vectors of the class labels (memory-mapped, loaded once)."""
        return self._class_vectors

    @cached_property
    def _class_vectors(self) -> np.ndarray:
        import numpy as np

        path = self.file("semantic_head.class_vectors", "class_vectors.npy")
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable class vectors ({exc})") from None

    # ---------------------------------------------------------------- stages
    @cached_property
    def detector(self) -> DetectorSpec | None:
        """The object detector stage (``detector`` section), or None for a model without."""
        section = self.manifest.get("detector")
        if not section:
            return None
        from phototag.detection import DetectorSpec

        try:
            return DetectorSpec.from_manifest(section)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.path / MANIFEST}: bad detector section ({exc})") from None

    @cached_property
    def devise_head(self) -> DeviseHead | None:
        """The trained DeViSE head (``semantic_head.kind == "devise"``, or ``devise_head``
        in a model trained by ``phototag train`` on top of one), loaded once."""
        head = self.manifest.get("semantic_head", {})
        # a model trained on top of this one keeps the head for its scene words
        if head.get("kind") == "devise":
            name = head.get("head", "devise_head.npz")
        else:
            name = self.manifest.get("devise_head")
        if not name:
            return None
        from phototag.devise import DeviseHead

        return DeviseHead.load(self.path / name)

    def project(self, features: np.ndarray, evidence: np.ndarray | None) -> np.ndarray | None:
        """[N, D] the DeViSE head's points; None without a head, or for a backend whose
        features it was not trained on (another width)."""
        import numpy as np

        head = self.devise_head
        if head is None or np.shape(features)[-1] != head.mean.shape[0]:
            return None
        return head.project(features, evidence)

    def semantic(
        self, features: np.ndarray, probs: np.ndarray, evidence: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """[N, D] semantic vectors and the DeViSE head's own points (None without a head).

        With a trained head the semantic vector is its point blended with the ConSE vector
        (``conse_weight``), which keeps fine-grained ImageNet words near; without one it is
        the ConSE vector alone."""
        import numpy as np

        conse = self.semantic_from_probs(probs)
        projected = self.project(features, evidence)
        if projected is None:
            return conse, None
        weight = float(self.manifest["semantic_head"].get("conse_weight", 0.5))
        blend = projected + weight * conse
        norms = np.linalg.norm(blend, axis=1, keepdims=True)
        return (blend / np.maximum(norms, 1e-12)).astype(np.float32), projected

    def semantic_from_probs(self, probs: np.ndarray) -> np.ndarray:
        """ConSE (Norouzi et al. 2014): the probability-weighted mean of the word vectors of
        the top-T classes, L2-normalised. [N, C] -> [N, D]."""
        import numpy as np

        head = self.manifest.get("semantic_head", {})
        kind = head.get("kind", "conse")
        if kind not in ("conse", "devise"):
            raise ModelError(f"{self.name}: semantic head '{kind}' is computed by the graph")
        probs = np.atleast_2d(np.asarray(probs, dtype=np.float32))
        vectors = self.class_vectors()
        top_t = min(int(head.get("top_t", 10)), probs.shape[1])
        top = np.argpartition(-probs, top_t - 1, axis=1)[:, :top_t]
        weights = np.take_along_axis(probs, top, axis=1)
        semantic = np.einsum("nt,ntd->nd", weights, vectors[top])
        norms = np.linalg.norm(semantic, axis=1, keepdims=True)
        return (semantic / np.maximum(norms, 1e-12)).astype(np.float32)

    # ---------------------------------------------------------------- integrity
    def verify(self) -> None:
        """Every file the manifest lists must exist with its recorded sha256."""
        files = self.manifest.get("files", {})
        if not files:
            raise ModelError(f"{self.path / MANIFEST}: lists no files to check")
        for name, expected in files.items():
            path = self.path / name
            try:
                digest = file_sha256(path)
            except FileNotFoundError:
                raise ModelError(f"{path}: model file is missing") from None
            except OSError as exc:
                raise ModelError(f"{path}: model file is unreadable ({exc})") from None
            if digest != expected:
                raise ModelError(
                    f"{path}: model file is damaged (sha256 does not match the manifest); "
                    "reinstall phototag or the model"
                )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (the manifest's integrity check)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -------------------------------------------------------------------- finding models


def user_models_dir() -> Path:
    """Where trained and user-installed models live (``PHOTOTAG_MODELS_DIR`` overrides)."""
    env = os.environ.get("PHOTOTAG_MODELS_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("phototag")) / "models"


def shipped_models_dir() -> Path | None:
    """The installed ``phototag_models`` package, or ``models/`` of a source checkout."""
    try:
        from importlib.resources import files

        root = files("phototag_models")
        path = Path(str(root))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    source = Path(__file__).resolve().parent.parent / "models"
    return source if source.is_dir() else None


def _search_dirs() -> list[Path]:
    dirs = [user_models_dir()]
    shipped = shipped_models_dir()
    if shipped is not None:
        dirs.append(shipped)
    return dirs


def load_model(name: str | None = None) -> ModelSpec:
    """The model called ``name`` (default: the shipped ``devise-lite0``)."""
    name = name or DEFAULT_MODEL
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"invalid model name '{name}'")
    dirs = _search_dirs()
    for base in dirs:
        if (base / name / MANIFEST).is_file():
            return ModelSpec.from_dir(base / name)
    known = ", ".join(m.name for m in list_models()) or "none"
    raise ModelError(f"model '{name}' not found (known models: {known})")


def list_models() -> list[ModelSpec]:
    """Every model found, user models first; a user model hides a shipped one of its name."""
    seen: dict[str, ModelSpec] = {}
    for base in _search_dirs():
        if not base.is_dir():
            continue
        for sub in sorted(base.iterdir()):
            if sub.name in seen or not (sub / MANIFEST).is_file():
                continue
            try:
                seen[sub.name] = ModelSpec.from_dir(sub)
            except ModelError:
                continue
    return list(seen.values())
