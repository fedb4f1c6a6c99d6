"""``phototag train``: a DeViSE projection head trained on the user's own labelled photos.

Pipeline (each step a function, the CLI is glue):

1. ``collect_folder`` / ``collect_catalog``: (photo, label) pairs from one folder per label,
   or from the user keywords in the catalog.
2. ``check_labels``: every label needs a word vector, there must be two labels or more,
   and each needs ``MIN_PHOTOS`` photos.
3. ``extract_features``: the frozen backbone's pooled features of every view of every photo,
   computed once with the onnx backend and cached by content hash (re-training is instant).
4. ``fit_head`` (TensorFlow): a linear map from the features into the 50-d GloVe space,
   trained with the DeViSE hinge rank loss against the label words and the model's tag
   vocabulary, with early stopping on a validation split.
5. ``save_model``: the backbone's ONNX graph plus the head as a ``semantic`` output, a
   manifest, and the labels in the model's tag vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from phototag.errors import PhototagError, UnknownWord
from phototag.models import file_sha256

if TYPE_CHECKING:
    from phototag.catalog import Catalog
    from phototag.models import ModelSpec
    from phototag.words import WordVectors

#: fewer photos than this cannot be split into training and validation photos sensibly
MIN_PHOTOS = 5
#: DeViSE's margin, on cosines (the semantic vector is used normalised everywhere)
MARGIN = 0.1
BATCH_SIZE = 32
PATIENCE = 10
#: training photos kept per label for the "is it any of the labels at all" check
MAX_PROTOTYPES = 100


class TrainingError(PhototagError):
    """Training cannot start or finish (a failure: exit 1)."""


class LabelError(TrainingError):
    """The labelled photos given are not usable as they are (a usage error: exit 2)."""


@dataclass(frozen=True)
class Example:
    path: Path
    label: str


# ------------------------------------------------------------------ 1. labelled photos


def label_of_folder(name: str) -> str:
    """The label a folder stands for: ``golden_retriever`` -> ``golden retriever``."""
    return " ".join(name.replace("_", " ").split()).lower()


def collect_folder(data_dir: Path) -> tuple[list[Example], list[str]]:
    """One folder per label (photos anywhere below it); returns examples and skip notes."""
    from phototag.scanner import FileEntry, walk

    if not data_dir.is_dir():
        raise LabelError(f"{data_dir}: not a folder")
    examples: list[Example] = []
    notes: list[str] = []
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = label_of_folder(sub.name)
        for entry in walk(sub):
            if isinstance(entry, FileEntry):
                examples.append(Example(entry.path, label))
            else:
                notes.append(f"skipping {entry.path}: {entry.reason}")
    return examples, notes


def collect_catalog(catalog: Catalog) -> list[Example]:
    """Catalogued photos (present, readable) with their user keywords as labels; a
    hierarchical keyword (``animal|cat``) counts as its leaf."""
    rows = catalog.db.execute(
        "select t.photo_id, t.tag from tags t join photos p on p.id = t.photo_id "
        "where t.source = 'user' and p.status = 'ok' order by t.photo_id, t.tag"
    ).fetchall()
    photos = catalog.photos_by_id({int(pid) for pid, _ in rows})
    examples = []
    for pid, tag in rows:
        label = " ".join(str(tag).split("|")[-1].split()).lower()
        if label and int(pid) in photos:
            examples.append(Example(photos[int(pid)].path, label))
    return list(dict.fromkeys(examples))


def check_labels(
    examples: Sequence[Example],
    words: WordVectors,
    *,
    min_photos: int = MIN_PHOTOS,
    strict: bool = True,
) -> tuple[list[Example], list[str]]:
    """Refuse (``strict``) or drop with a note (catalog keywords) labels that cannot be
    trained: no word vector, or too few photos. Two labels must remain."""
    notes: list[str] = []
    counts = Counter(e.label for e in examples)
    unknown: list[str] = []
    hints: list[str] = []
    for label in sorted(counts):
        try:
            words.tokens_of(label)
        except UnknownWord as exc:
            unknown.append(label)
            if exc.suggestions:
                hints.append(f"{label}: {', '.join(exc.suggestions[:3])}")
    if unknown:
        message = f"labels unknown to the word vectors: {', '.join(unknown)}"
        if strict:
            raise LabelError(message + (f" (did you mean {'; '.join(hints)})" if hints else ""))
        notes.append(f"ignoring {message}")
    few = sorted(label for label, n in counts.items() if n < min_photos and label not in unknown)
    if few and strict:
        detail = ", ".join(f"{label} ({counts[label]})" for label in few)
        raise LabelError(f"too few photos for label(s) {detail}: each needs at least {min_photos}")
    if few:
        notes.append(f"ignoring keywords with fewer than {min_photos} photos: {', '.join(few)}")
    dropped = set(unknown) | set(few)
    kept = [e for e in examples if e.label not in dropped]
    labels = sorted({e.label for e in kept})
    if len(labels) < 2:
        found = f": {', '.join(labels)}" if labels else ""
        raise LabelError(f"need at least two labels to train, found {len(labels)}{found}")
    return kept, notes


# ------------------------------------------------------------------ 3. frozen features


class FeatureCache:
    """Backbone features per photo content, one ``.npy`` per photo: [views, features]."""

    def __init__(self, spec: ModelSpec, root: Path | None = None) -> None:
        from phototag.words import cache_dir

        files = spec.manifest.get("files", {})
        onnx_name = spec.onnx_path.name
        key = f"{files.get(onnx_name, spec.version)}:{spec.views}:{spec.input_size}:{spec.resize}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.folder = (root or cache_dir()) / "train-features" / f"{spec.name}-{digest}"

    def get(self, content_hash: str) -> np.ndarray | None:
        try:
            return np.load(self.folder / f"{content_hash}.npy")
        except (OSError, ValueError):
            return None

    def put(self, content_hash: str, features: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{content_hash}.npy"
        tmp = self.folder / f".{content_hash}.{os.getpid()}.tmp.npy"
        np.save(tmp, features.astype(np.float32))
        os.replace(tmp, target)


@dataclass
class _Loaded:
    example: Example
    hash: str = ""
    views: np.ndarray | None = None
    features: np.ndarray | None = None
    error: str | None = None


def _load(example: Example, spec: ModelSpec, cache: FeatureCache) -> _Loaded:
    """Read one photo; decode it only when its features are not cached yet."""
    from phototag.errors import PhotoError
    from phototag.files import read_file
    from phototag.imaging import content_hash, decode

    item = _Loaded(example)
    try:
        data, _st = read_file(example.path)
        item.hash = content_hash(data)
        item.features = cache.get(item.hash)
        if item.features is None:
            item.views = decode(example.path, data, spec).views
    except PhotoError as exc:
        item.error = exc.reason
    except OSError as exc:
        item.error = (exc.strerror or str(exc)).lower()
    return item


def extract_features(
    examples: Sequence[Example],
    spec: ModelSpec,
    *,
    cache: FeatureCache | None = None,
    on_skip: Callable[[Path, str], None] = lambda path, reason: None,
    on_progress: Callable[[int], None] = lambda n: None,
    batch: int = 16,
) -> tuple[list[Example], list[np.ndarray]]:
    """[views, features] per readable photo, with the onnx backend (fast, and the same
    features the trained graph will compute); unreadable photos are skipped and named."""
    from phototag.plugins import get_backend

    cache = cache or FeatureCache(spec)
    backend: Any = None
    kept: list[Example] = []
    feats: list[np.ndarray] = []
    pending: list[_Loaded] = []

    def flush() -> None:
        nonlocal backend
        if not pending:
            return
        if backend is None:
            backend = get_backend("onnx")(spec)
        stacks = [p.views for p in pending]
        out = backend.run_batch(np.concatenate(stacks).astype(np.float32))["features"]
        start = 0
        for p in pending:
            n = len(p.views)  # type: ignore[arg-type]
            p.features = out[start : start + n]
            start += n
            cache.put(p.hash, p.features)
        pending.clear()

    order: list[_Loaded] = []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for item in pool.map(lambda e: _load(e, spec, cache), examples):
            if item.error is not None:
                on_skip(item.example.path, item.error)
                on_progress(1)
                continue
            order.append(item)
            if item.features is None:
                pending.append(item)
                if len(pending) >= batch:
                    flush()
            on_progress(1)
        flush()
    for item in order:
        kept.append(item.example)
        feats.append(item.features)  # type: ignore[arg-type]
    return kept, feats


# ------------------------------------------------------------------ 4. the head


@dataclass
class EpochLog:
    epoch: int
    loss: float
    val_loss: float | None
    val_hit1: float | None
    seconds: float


@dataclass
class Metrics:
    """Validation hits: is the photo's label the nearest (hit@1) or among the five
    nearest (hit@5) of the label words, and of the whole tag vocabulary."""

    photos: int
    hit1: float
    hit5: float
    vocab_hit1: float
    vocab_hit5: float
    vocab_size: int

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(self).items()}


@dataclass
class HeadResult:
    weight: np.ndarray  # [F, D], standardisation folded in
    bias: np.ndarray  # [D]
    epochs: int
    best_epoch: int
    history: list[EpochLog] = field(default_factory=list)


class Reporter:
    """Progress callbacks for ``fit_head``; the CLI draws a bar per epoch."""

    def epoch_bar(self, epoch: int, epochs: int, steps: int) -> AbstractContextManager[Any]:
        return nullcontext(lambda n: None)

    def epoch_done(self, log: EpochLog, epochs: int) -> None:
        pass


def split_photos(labels: np.ndarray, val_split: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Photo indices for training and validation, stratified by label (every label keeps
    at least one photo on each side when it has two or more and val_split > 0)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = 0 if val_split <= 0 else min(len(idx) - 1, max(1, round(len(idx) * val_split)))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def _views(feats: Sequence[np.ndarray], photos: np.ndarray, labels: np.ndarray):
    """Every view of the given photos as one training row: [rows, F] and its label."""
    x = np.concatenate([feats[i] for i in photos]).astype(np.float32)
    y = np.concatenate([np.full(len(feats[i]), labels[i]) for i in photos]).astype(np.int32)
    return x, y


def photo_semantic(feats: Sequence[np.ndarray], weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[P, D] unit semantic vectors, combined over views as ``Backend.embed_batch`` does."""
    out = []
    for f in feats:
        s = f @ weight + bias
        s /= np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        m = s.sum(axis=0)
        out.append(m / max(float(np.linalg.norm(m)), 1e-12))
    return np.asarray(out, dtype=np.float32)


def photo_visual(feats: Sequence[np.ndarray]) -> np.ndarray:
    """[P, F] unit visual vectors: view features averaged, then normalised (as the backend)."""
    from phototag.labels import unit_rows

    return unit_rows(np.stack([f.mean(axis=0) for f in feats]))


def visual_nearest(
    visual: np.ndarray, y: np.ndarray, val_idx: np.ndarray, train_idx: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each held-out photo's highest cosine to each label's training photos, with the
    truth matrix; without held-out photos, leave-one-out over the training photos."""
    from phototag.labels import nearest_by_label

    if len(val_idx):
        near = nearest_by_label(visual[val_idx], visual[train_idx], y[train_idx], n)
        return near, np.eye(n)[y[val_idx]]
    rows = []
    for i in train_idx:
        others = train_idx[train_idx != i]
        rows.append(nearest_by_label(visual[i], visual[others], y[others], n)[0])
    return np.asarray(rows), np.eye(n)[y[train_idx]]


def hits(semantic: np.ndarray, truth: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of photos whose true target (row index into ``targets``) ranks in the top k."""
    if len(semantic) == 0:
        return float("nan")
    sims = semantic @ targets.T
    true = sims[np.arange(len(truth)), truth]
    rank = (sims > true[:, None]).sum(axis=1)
    return float((rank < k).mean())


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    targets: np.ndarray,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    val_photos: Callable[[np.ndarray, np.ndarray], float] | None = None,
    epochs: int = 100,
    patience: int = PATIENCE,
    learning_rate: float = 3e-3,
    seed: int = 0,
    reporter: Reporter | None = None,
    loss: str = "hinge",
) -> HeadResult:
    """Train ``semantic = x @ W + b`` with the DeViSE hinge rank loss.

    ``targets`` [T, D] are unit word vectors; rows ``y`` of it are the true labels, every
    other row is a negative (the other labels and the tag vocabulary). For each view:
    sum over negatives j of max(0, MARGIN - cos(s, t_y) + cos(s, t_j)). Early stopping
    keeps the weights of the epoch with the lowest validation loss. ``loss="cosine"`` is the
    seed's 1 - cos(s, t_y), kept for comparison (docs/training.md).
    """
    if loss not in ("hinge", "cosine"):
        raise ValueError(f"unknown loss '{loss}'")
    from phototag_tensorflow.backend import import_tensorflow

    tf = import_tensorflow()
    import keras

    reporter = reporter or Reporter()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.maximum(std, 0.1 * float(np.median(std)) + 1e-6)
    xs = ((x - mean) / std).astype(np.float32)
    counts = np.bincount(y, minlength=targets.shape[0]).astype(np.float32)
    sample_weight = (len(y) / (np.count_nonzero(counts) * counts[y])).astype(np.float32)

    head = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(targets.shape[1]),
        ]
    )
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=1e-3)
    t = tf.constant(targets, dtype=tf.float32)

    def rank_loss(inputs: Any, labels: Any, training: bool) -> Any:
        s = tf.math.l2_normalize(head(inputs, training=training), axis=1)
        sims = tf.matmul(s, t, transpose_b=True)  # [B, T]
        true = tf.gather(sims, labels, batch_dims=1)[:, None]
        if loss == "cosine":
            return 1.0 - true[:, 0]
        violation = tf.nn.relu(MARGIN - true + sims)
        own = tf.one_hot(labels, tf.shape(t)[0], dtype=violation.dtype)
        return tf.reduce_sum(violation * (1.0 - own), axis=1)

    @tf.function(reduce_retracing=True)
    def step(inputs: Any, labels: Any, weights: Any) -> Any:
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(rank_loss(inputs, labels, True) * weights)
        grads = tape.gradient(value, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables, strict=True))
        return value

    @tf.function(reduce_retracing=True)
    def evaluate(inputs: Any, labels: Any) -> Any:
        return tf.reduce_mean(rank_loss(inputs, labels, False))

    val_x = ((val[0] - mean) / std).astype(np.float32) if val is not None and len(val[0]) else None
    best = (np.inf, 0, head.get_weights())
    history: list[EpochLog] = []
    steps = max(1, -(-len(xs) // BATCH_SIZE))
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(xs))
        total = 0.0
        with reporter.epoch_bar(epoch, epochs, steps) as advance:
            for i in range(steps):
                rows = order[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]
                total += float(step(xs[rows], y[rows], sample_weight[rows])) * len(rows)
                advance(1)
        val_loss = val_hit1 = None
        if val_x is not None:
            val_loss = float(evaluate(val_x, val[1]))  # type: ignore[index]
            if val_photos is not None:
                w, b = head.layers[-1].get_weights()
                val_hit1 = val_photos(*_fold(w, b, mean, std))
        log = EpochLog(epoch, total / len(xs), val_loss, val_hit1, time.perf_counter() - started)
        history.append(log)
        reporter.epoch_done(log, epochs)
        score = val_loss if val_loss is not None else log.loss
        if score < best[0] - 1e-4:
            best = (score, epoch, head.get_weights())
        elif val_x is not None and epoch - best[1] >= patience:
            break
    head.set_weights(best[2])
    weight, bias = _fold(*head.layers[-1].get_weights(), mean, std)
    return HeadResult(weight, bias, epochs=len(history), best_epoch=best[1], history=history)


def _fold(weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, std: np.ndarray):
    """Fold the input standardisation into the layer: ((f - m) / s) W + b = f W' + b'."""
    w = (weight / std[:, None]).astype(np.float32)
    return w, (bias - (mean / std) @ weight).astype(np.float32)


# ------------------------------------------------------------------ 5. the saved model


def check_name(name: str, *, force: bool) -> Path:
    """Where the model called ``name`` goes; refuses shipped names and, without ``force``,
    an existing trained model."""
    from phototag.models import MANIFEST, shipped_models_dir, user_models_dir

    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise LabelError(f"invalid model name '{name}'")
    shipped = shipped_models_dir()
    if shipped is not None and (shipped / name / MANIFEST).is_file():
        raise LabelError(f"'{name}' is a shipped model; choose another --name")
    target = user_models_dir() / name
    if target.exists() and not force:
        raise LabelError(f"model '{name}' exists at {target}; pass --force to replace it")
    return target


def save_model(
    target: Path,
    base: ModelSpec,
    head: HeadResult,
    labels: Sequence[str],
    label_vectors: np.ndarray,
    calibration: dict[str, tuple[float, float]],
    prototypes: tuple[np.ndarray, np.ndarray],
    training: dict[str, Any],
) -> Path:
    """Write the model folder atomically (a half-written model is never found)."""
    from phototag_tensorflow.heads import SEMANTIC, append_semantic_head

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        append_semantic_head(base.onnx_path, tmp / "model.onnx", head.weight, head.bias)
        np.save(tmp / "label_vectors.npy", label_vectors.astype(np.float32))
        vectors, owner = prototypes
        with open(tmp / "label_prototypes.npz", "wb") as fh:
            np.savez(fh, vectors=vectors.astype(np.float16), labels=owner.astype(np.int16))
        taxonomy = base.file("tagging.taxonomy", "taxonomy.json")
        shutil.copyfile(taxonomy, tmp / "taxonomy.json")
        class_vectors = base.file("semantic_head.class_vectors", "class_vectors.npy")
        if class_vectors.is_file():
            shutil.copyfile(class_vectors, tmp / "class_vectors.npy")
        for name in base.manifest.get("files", {}):  # the detector, head, calibration
            if not (tmp / name).exists() and base.path / name != base.onnx_path:
                shutil.copyfile(base.path / name, tmp / name)
        vocabulary = base.file("tagging.vocabulary", "vocabulary.txt")
        words = vocabulary.read_text(encoding="utf-8").splitlines() if vocabulary.is_file() else []
        merged = sorted({w for w in words if w.strip()} | set(labels))
        (tmp / "vocabulary.txt").write_text("\n".join(merged) + "\n", encoding="utf-8")
        manifest = _manifest(target.name, base, labels, calibration, training)
        manifest["files"] = {
            p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.name != "manifest.json"
        }
        manifest["outputs"] = {**base.manifest.get("outputs", {}), "semantic": SEMANTIC}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = target.parent / f".{target.name}.{os.getpid()}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _manifest(
    name: str,
    base: ModelSpec,
    labels: Sequence[str],
    calibration: dict[str, tuple[float, float]],
    training: dict[str, Any],
) -> dict[str, Any]:
    m = json.loads(json.dumps(base.manifest))  # a deep copy: same input, spaces, tagging
    m["name"] = name
    m["version"] = time.strftime("%Y%m%d.%H%M%S")
    m["description"] = (
        f"{base.name} with a DeViSE head trained by phototag train on {len(labels)} labels"
    )
    m["onnx"] = "model.onnx"
    base_head = base.manifest.get("semantic_head", {})
    if base_head.get("kind") == "devise":  # keep the base's trained scene words
        m["devise_head"] = base_head.get("head", "devise_head.npz")
    m["base_model"] = {"name": base.name, "version": base.version}
    m["semantic_head"] = {
        "kind": "graph",
        "output": "semantic",
        "labels": list(labels),
        "label_vectors": "label_vectors.npy",
        "calibration": _slope_bias(calibration["semantic"]),
        "prototypes": "label_prototypes.npz",
        "visual_calibration": _slope_bias(calibration["visual"]),
        "class_vectors": "class_vectors.npy",
    }
    m.setdefault("tagging", {})
    m["tagging"]["vocabulary"] = "vocabulary.txt"
    m["tagging"]["taxonomy"] = "taxonomy.json"
    m["training"] = training
    m["attribution"] = [
        *base.manifest.get("attribution", []),
        {"what": "semantic head", "source": "trained by phototag train on the user's photos"},
    ]
    return m


def _slope_bias(pair: tuple[float, float]) -> dict[str, float]:
    return {"slope": round(pair[0], 6), "bias": round(pair[1], 6)}


def choose_prototypes(
    visual: np.ndarray, y: np.ndarray, *, per_label: int = MAX_PROTOTYPES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_label`` photos' visual vectors per label (a random subset beyond that
    keeps a big training set's model small)."""
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.permutation(np.flatnonzero(y == label))[:per_label] for label in np.unique(y)]
    )
    keep.sort()
    return visual[keep], y[keep]


# ------------------------------------------------------------------ the whole run


@dataclass
class TrainReport:
    path: Path
    labels: dict[str, int]
    photos: int
    train_photos: int
    val_photos: int
    epochs: int
    best_epoch: int
    metrics: Metrics | None
    seconds: float
    feature_seconds: float


def vocabulary_targets(
    base: ModelSpec, labels: Sequence[str], words: WordVectors
) -> tuple[np.ndarray, list[str]]:
    """Unit vectors of the labels followed by the model's tag words (the negatives that
    keep the head's output honest against every word the tagger may show)."""
    vocab_path = base.file("tagging.vocabulary", "vocabulary.txt")
    lines = vocab_path.read_text(encoding="utf-8").splitlines() if vocab_path.is_file() else []
    taken = set(labels)
    names = list(labels)
    vectors = [words.vector(label) for label in labels]
    for line in lines:
        word = " ".join(line.lower().split())
        if not word or word.startswith("#") or word in taken:
            continue
        try:
            vec = words.vector(word)
        except UnknownWord:
            continue
        taken.add(word)
        names.append(word)
        vectors.append(vec)
    return np.asarray(vectors, dtype=np.float32), names


def train(
    examples: Sequence[Example],
    base: ModelSpec,
    target: Path,
    *,
    words: WordVectors,
    epochs: int = 100,
    val_split: float = 0.2,
    seed: int = 0,
    reporter: Reporter | None = None,
    on_skip: Callable[[Path, str], None] = lambda path, reason: None,
    on_progress: Callable[[int], None] = lambda n: None,
    min_photos: int = MIN_PHOTOS,
    strict: bool = True,
    source: str = "folders",
) -> TrainReport:
    """Features, head, calibration, model folder: the whole of ``phototag train``."""
    from phototag.labels import fit_calibration

    if base.manifest.get("semantic_head", {}).get("kind") == "graph":
        raise LabelError(f"'{base.name}' is a trained model; train from a shipped model")
    started = time.perf_counter()
    kept, feats = extract_features(examples, base, on_skip=on_skip, on_progress=on_progress)
    feature_seconds = time.perf_counter() - started
    # again: skipped unreadable photos may leave a label short
    kept, _notes = check_labels(kept, words, min_photos=min_photos, strict=strict)
    labels = sorted({e.label for e in kept})
    index = {label: i for i, label in enumerate(labels)}
    y_photo = np.array([index[e.label] for e in kept])
    targets, _names = vocabulary_targets(base, labels, words)
    train_idx, val_idx = split_photos(y_photo, val_split, seed)
    x, y = _views(feats, train_idx, y_photo)
    val = _views(feats, val_idx, y_photo) if len(val_idx) else None
    n_labels = len(labels)

    def val_hit1(weight: np.ndarray, bias: np.ndarray) -> float:
        sem = photo_semantic([feats[i] for i in val_idx], weight, bias)
        return hits(sem, y_photo[val_idx], targets[:n_labels], 1)

    head = fit_head(
        x, y, targets, val=val, val_photos=val_hit1 if len(val_idx) else None,
        epochs=epochs, seed=seed, reporter=reporter,
    )  # fmt: skip
    calib_idx = val_idx if len(val_idx) else train_idx
    sem = photo_semantic([feats[i] for i in calib_idx], head.weight, head.bias)
    cos = sem @ targets[:n_labels].T
    truth = np.eye(n_labels)[y_photo[calib_idx]]
    visual = photo_visual(feats)
    near, near_truth = visual_nearest(visual, y_photo, val_idx, train_idx, n_labels)
    calibration = {
        "semantic": fit_calibration(cos, truth),
        "visual": fit_calibration(near, near_truth),
    }
    prototypes = choose_prototypes(visual, y_photo, seed=seed)
    metrics = None
    if len(val_idx):
        yv = y_photo[val_idx]
        metrics = Metrics(
            photos=len(val_idx),
            hit1=hits(sem, yv, targets[:n_labels], 1),
            hit5=hits(sem, yv, targets[:n_labels], 5),
            vocab_hit1=hits(sem, yv, targets, 1),
            vocab_hit5=hits(sem, yv, targets, 5),
            vocab_size=len(targets),
        )
    counts = dict(sorted(Counter(e.label for e in kept).items()))
    training = {
        "source": source,
        "labels": counts,
        "loss": f"devise hinge rank (margin {MARGIN}) vs labels + tag vocabulary",
        "epochs": head.epochs,
        "best_epoch": head.best_epoch,
        "val_split": val_split,
        "validation": metrics.as_dict() if metrics else None,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    label_vectors = targets[:n_labels]
    path = save_model(target, base, head, labels, label_vectors, calibration, prototypes, training)
    return TrainReport(
        path=path, labels=counts, photos=len(kept), train_photos=len(train_idx),
        val_photos=len(val_idx), epochs=head.epochs, best_epoch=head.best_epoch,
        metrics=metrics, seconds=time.perf_counter() - started,
        feature_seconds=feature_seconds,
    )  # fmt: skip
