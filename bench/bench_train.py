"""Benchmark ``phototag train``: 5 labels x 30 photos, wall time and held-out top-tag accuracy.

The labelled folders are augmented copies of real sample photos (``tests/labelled.py``);
``motorcycle`` and ``room`` are held out on source photos the training never saw. The
train command runs in a fresh process with an empty feature cache, so the time includes
importing TensorFlow and computing every photo's features. Photos of none of the labels
(coffee, rocket, camera, moon...) measure how often a trained label is put on them wrongly.

    python bench/bench_train.py [--photos 30] [--held-out 10] [--epochs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.labelled import SKIMAGE_DATA, build_labelled_set  # noqa: E402

LABELS = ("astronaut", "galaxy", "cat", "motorcycle", "room")
OTHERS = ("coffee.png", "rocket.jpg", "camera.png", "moon.png", "horse.png", "retina.jpg")


def top_tags(model: str, photos: list[Path]) -> list[list[str]]:
    """Each photo's tags, as `phototag --model MODEL tags` gives them."""
    from phototag.library import Library

    library = Library(backend="onnx", model=model)
    return [[t.tag for t in library.tags(path).tags] for path in photos]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30, help="training photos per label")
    parser.add_argument("--held-out", type=int, default=10, help="held-out photos per label")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="phototag-bench-train-") as tmp:
        root = Path(tmp)
        os.environ.update(
            PHOTOTAG_MODELS_DIR=str(root / "models"),
            PHOTOTAG_CACHE_DIR=str(root / "cache"),
            PHOTOTAG_CATALOG=str(root / "catalog.db"),
            PHOTOTAG_CONFIG=str(root / "config.toml"),
        )
        started = time.perf_counter()
        data = build_labelled_set(
            root / "data", LABELS, train_per_label=args.photos, held_out_per_label=args.held_out
        )
        took = time.perf_counter() - started
        print(f"built {len(LABELS)}x{args.photos} photos, +{args.held_out} held out: {took:.1f} s")

        command = [
            sys.executable, "-m", "phototag", "train", str(data.train), "--name", "bench",
            "--epochs", str(args.epochs), "--json",
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"train failed ({proc.returncode}):\n{proc.stderr}")
        report = json.loads(proc.stdout)
        val = report["validation"]
        print(
            f"train: {wall:.1f} s wall in a fresh process (features {report['feature_seconds']} s, "
            f"epochs {report['epochs']}, best {report['best_epoch']})"
        )
        print(
            f"validation ({val['photos']} photos): hit@1 {val['hit1']:.3f} "
            f"hit@5 {val['hit5']:.3f} among labels; hit@1 {val['vocab_hit1']:.3f} "
            f"hit@5 {val['vocab_hit5']:.3f} among {val['vocab_size']} tag words"
        )

        photos = [p for label in LABELS for p in data.held_out[label]]
        truth = [label for label in LABELS for _ in data.held_out[label]]
        for model in ("devise-lite0", "bench"):
            tops = [tags[0] if tags else "" for tags in top_tags(model, photos)]
            right = Counter(t for t, top in zip(truth, tops, strict=True) if t == top)
            total = sum(right.values()) / len(truth)
            per = ", ".join(f"{lb} {right[lb]}/{len(data.held_out[lb])}" for lb in LABELS)
            print(f"held-out top tag, {model:>12}: {total:.3f}  ({per})")

        others = [SKIMAGE_DATA / name for name in OTHERS]
        wrong = [
            (path.name, tags[0])
            for path, tags in zip(others, top_tags("bench", others), strict=True)
            if tags and tags[0] in LABELS
        ]
        detail = f" ({', '.join(f'{n}: {t}' for n, t in wrong)})" if wrong else ""
        count = f"{len(wrong)}/{len(others)}"
        print(f"photos of none of the labels given a trained label first: {count}{detail}")


if __name__ == "__main__":
    main()
