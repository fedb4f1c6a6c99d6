"""How good are the tags and the word search, on real photos labelled by hand?

    python tools/fetch_photos.py build/photos      # once: the labelled photos
    python bench/quality.py [--photos build/photos] [--split eval] [--verbose]

Photos and labels: ``tools/photos/labels.json`` (words a person wrote by looking at each
photo). The ``eval`` split is never trained or tuned on (``tools/build_head.py`` reads only
``tune``); ``--split tune`` shows the same figures on the photos the head and calibration
were fitted on, for comparison. Each photo goes through the shipped pipeline as
``phototag index`` runs it (decode, backbone, detector, DeViSE head, calibrated tags).

Figures: tag hit@5 (a main subject among the first five tags), tag precision@5 (share of
the first five tags that are true of the photo), ``find --word`` normalised precision@5
(relevant photos in the top 5 / min(5, relevant photos)), the share of photos whose main
subject is a person that get ``person`` or ``people`` in their top 3 tags, near-duplicate
recall@1 (a crop or re-encode must find its original first), and per-word precision.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from phototag.imaging import decode  # noqa: E402
from phototag.models import load_model  # noqa: E402
from phototag.tagging import Tagger, query_terms, rank_for_word  # noqa: E402
from phototag.types import Embedding  # noqa: E402
from phototag.words import WordVectors  # noqa: E402

LABELS = ROOT / "tools" / "photos" / "labels.json"
FIND_WORDS = [
    "person", "people", "dog", "cat", "bird", "horse", "fish", "flower", "tree", "plant",
    "sky", "cloud", "sunset", "mountain", "lake", "sea", "beach", "water", "snow", "forest",
    "grass", "field", "building", "city", "street", "house", "bridge", "church", "car",
    "boat", "bicycle", "food", "fruit", "cake", "coffee", "bedroom", "kitchen",
    "living room", "restaurant", "sofa", "bed", "chair", "table", "lamp", "window", "book",
    "people on the beach", "red flower", "city at night",
]  # fmt: skip


@dataclass
class Photo:
    key: str
    path: Path
    main: list[str]
    ok: list[str]
    kind: str

    @property
    def accepted(self) -> set[str]:
        return set(self.main) | set(self.ok)

    def relevant(self, query: str) -> bool:
        """A query is relevant when every word of it (``people on the beach``: people,
        beach) is true of the photo, or the phrase itself was labelled."""
        if query in self.accepted:
            return True
        words = [w for w in query.split() if w not in {"on", "the", "at", "in", "of", "a"}]
        return all(w in self.accepted for w in words)

    @property
    def person_main(self) -> bool:
        return bool({"person", "people", "man", "woman", "child", "portrait"} & set(self.main))


def photos(root: Path, split: str) -> list[Photo]:
    data = json.loads(LABELS.read_text(encoding="utf-8"))["photos"]
    out = []
    for key, lab in sorted(data.items()):
        if lab.get("not_photo") or (split != "all" and lab["split"] != split):
            continue
        path = root / key
        if path.is_file():
            out.append(Photo(key, path, lab["main"], lab.get("ok", []), lab.get("kind", "")))
    return out


def embed(backend, spec, data_of: list[bytes], paths: list[Path]) -> list[Embedding]:
    out = []
    for start in range(0, len(paths), 8):
        decoded = [decode(p, d, spec) for p, d in zip(paths[start : start + 8],
                                                      data_of[start : start + 8], strict=True)]
        out.extend(backend.embed_batch([d.views for d in decoded],
                                       [d.detector_image for d in decoded]))  # fmt: skip
    return out


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


def tag_metrics(tag_lists: list[list[str]], items: list[Photo]) -> tuple[float, float, float]:
    hits = correct = emitted = 0
    for tags, p in zip(tag_lists, items, strict=True):
        top = tags[:5]
        hits += any(t in p.main for t in top)
        correct += sum(t in p.accepted for t in top)
        emitted += len(top)
    n = max(len(items), 1)
    return hits / n, correct / max(emitted, 1), sum(len(t) for t in tag_lists) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "build" / "photos")
    parser.add_argument("--split", default="eval", choices=["eval", "tune", "all"])
    parser.add_argument("--verbose", "-v", action="store_true", help="every photo's tags")
    parser.add_argument("--no-duplicates", action="store_true", help="skip near-duplicates")
    args = parser.parse_args(argv)
    from phototag_onnx import OnnxBackend

    spec = load_model()
    items = photos(args.photos, args.split)
    if not items:
        print(f"no labelled photos under {args.photos}: run tools/fetch_photos.py first")
        return 1
    backend = OnnxBackend(spec, threads=2)
    words = WordVectors()
    tagger = Tagger.from_model(spec, words=words)
    print(f"model {spec.name} {spec.version}; {len(items)} labelled photos ({args.split} split)")
    kinds = Counter(p.kind for p in items)
    print("  kinds: " + ", ".join(f"{k or '?'} {n}" for k, n in kinds.most_common()))
    started = time.perf_counter()
    datas = [p.path.read_bytes() for p in items]
    embs = embed(backend, spec, datas, [p.path for p in items])
    print(f"embedded in {time.perf_counter() - started:.1f} s")
    tags = [tagger.tag(e) for e in embs]
    names = [[t.tag for t in ts] for ts in tags]

    hit, prec, count = tag_metrics(names, items)
    print("\n== tags")
    print(f"  hit@5 {hit:.3f}   precision@5 {prec:.3f}   tags per photo {count:.2f}")
    written = [[t.tag for t in tagger.writable(ts)] for ts in tags]
    w_hit, w_prec, w_count = tag_metrics(written, items)
    w_all = sum(len(w) for w in written)
    w_right = sum(t in p.accepted for w, p in zip(written, items, strict=True) for t in w)
    print(
        f"  written into files (confident words): precision {w_right / max(w_all, 1):.3f} "
        f"(first five {w_prec:.3f}), hit@5 {w_hit:.3f}, {w_count:.2f} per photo"
    )
    people = [i for i, p in enumerate(items) if p.person_main]
    if people:
        got = sum(bool({"person", "people"} & set(names[i][:3])) for i in people)
        share = got / len(people)
        print(f"  person/people in the top 3 of {len(people)} person photos: {share:.3f}")
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(items):
        by_kind[p.kind].append(i)
    for kind, idx in sorted(by_kind.items()):
        h, pr, c = tag_metrics([names[i] for i in idx], [items[i] for i in idx])
        name = kind or "?"
        print(f"  {name:10s} n={len(idx):3d}  hit@5 {h:.2f}  precision@5 {pr:.2f}  tags {c:.1f}")

    print("\n== per-word precision of listed tags (words listed at least 3 times)")
    right: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    for ts, p in zip(names, items, strict=True):
        for t in ts:
            shown[t] += 1
            right[t] += t in p.accepted
    rows = [(w, right[w] / n, n) for w, n in shown.items() if n >= 3]
    rows.sort(key=lambda r: (-r[2], r[0]))
    print("  " + "  ".join(f"{w} {pr:.2f}/{n}" for w, pr, n in rows))

    semantic = np.stack([e.semantic for e in embs])
    per_word = {}
    for query in FIND_WORDS:
        relevant = {i for i, p in enumerate(items) if p.relevant(query)}
        if not relevant:
            continue
        vector = words.vector(query)
        terms = [tagger.hyponyms(t) | {t} for t in query_terms(query, tagger)]
        ranked = rank_for_word(vector, semantic, tags, terms, limit=5)
        per_word[query] = sum(i in relevant for i, _ in ranked) / min(5, len(relevant))
    print("\n== find --word normalised precision@5")
    print(f"  mean over {len(per_word)} queries: {statistics.mean(per_word.values()):.3f}")
    print("  " + "  ".join(f"{w} {v:.2f}" for w, v in per_word.items()))

    if not args.no_duplicates:
        visual = np.stack([e.visual for e in embs])
        dups: dict[str, list[bool]] = defaultdict(list)
        for i, p in enumerate(items[:60]):
            vs = variants(p.path)
            got = embed(backend, spec, list(vs.values()), [p.path] * len(vs))
            for name, e in zip(vs, got, strict=True):
                dups[name].append(int(np.argmax(visual @ e.visual)) == i)
        print("\n== near-duplicate recall@1 (first 60 photos)")
        print("  " + "  ".join(f"{n} {sum(v) / len(v):.2f}" for n, v in dups.items()))

    print("\n== tags of each photo" if args.verbose else "\n== tags of a few photos")
    for i, p in enumerate(items):
        if not args.verbose and i % max(1, len(items) // 12):
            continue
        marks = ", ".join(f"{t.tag}{'' if t.tag in p.accepted else '(x)'} {t.score:.2f}"
                          for t in tags[i])  # fmt: skip
        print(f"  {p.key[:50]:50s} main={'/'.join(p.main)}: {marks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
