"""The ray engine against the local engine, and what the driver alone can absorb.

    python bench/bench_ray.py [--n 1000] [--commit-n 2000] [--only engines|commit]

1. ``phototag index --engine ray`` (a local Ray instance of 2 CPUs, started by the run) and
   the local engine on the same ``--n`` camera-like JPEGs (``bench_index.make_photos``),
   each into a fresh catalog: wall time end to end and the pipeline's photos/s.
2. The driver's commit rate: scan, tag choice, catalog writes (vectors, tags, objects,
   facts) with precomputed embeddings of real photos and no model, through an engine that
   hands them out (``--commit-n`` tiny files; the engine never reads them). That is the
   ceiling of one driver, however many nodes embed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import bench_index
import interior_photos


def engines(folder: Path, n: int) -> None:
    def run(catalog: Path, *options: str) -> tuple[dict, float]:
        import json
        import subprocess
        import sys

        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "phototag", "--catalog", str(catalog), "index", "--no-write",
             "--json", *options, str(folder)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - started

    local, t_local = run(folder.parent / "local.db")
    ray, t_ray = run(folder.parent / "ray.db", "--engine", "ray")
    assert local["embedded"] == ray["embedded"] == n, (local, ray)
    print(
        f"local engine: {t_local:.1f} s wall ({n / t_local:.1f} photos/s end to end, "
        f"{local['photos_per_second']:.1f} photos/s in the pipeline)"
    )
    print(
        f"ray engine, local instance (2 CPUs): {t_ray:.1f} s wall ({n / t_ray:.1f} photos/s end "
        f"to end incl. Ray start-up, {ray['photos_per_second']:.1f} photos/s in the pipeline)"
    )
    print(
        f"overhead ratio ray/local: {t_ray / t_local:.2f} end to end, "
        f"{local['photos_per_second'] / ray['photos_per_second']:.2f} in the pipeline"
    )


def real_embeddings() -> list[tuple[object, object]]:
    """The shipped model's embeddings of the 39 interior photos (decoded once, here)."""
    from phototag.engines import make_backend, prepare
    from phototag.models import load_model

    model = load_model()
    backend = make_backend("onnx", model)  # single-threaded inference, as in each worker
    backend.embed_batch(*_views(prepare(_sources()[0], set(), model)[1]))  # load the graphs
    out, decoding, inference = [], 0.0, 0.0
    for path in _sources():
        started = time.thread_time()
        computed, decoded = prepare(path, set(), model)
        decoding += time.thread_time() - started
        started = time.thread_time()
        emb = backend.embed_batch(*_views(decoded))[0]
        inference += time.thread_time() - started
        out.append((computed, emb))
    n = len(out)
    print(
        f"a worker's CPU per photo (one core, real model, the 39 sources as shipped: progressive "
        f"5.5 MP web JPEGs): read + "
        f"decode {decoding / n * 1e3:.0f} ms, inference + detection {inference / n * 1e3:.0f} ms "
        f"= {n / (decoding + inference):.1f} photos/s per core"
    )
    return out


def _sources() -> list[Path]:
    return sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))


def _views(decoded: object) -> tuple[list, list]:
    assert decoded is not None
    return [decoded.views], [decoded.detector_image]  # type: ignore[attr-defined]


def commit_rate(folder: Path, n: int) -> None:
    from dataclasses import replace

    from phototag.engines import Done, Engine, Work
    from phototag.hookspecs import hookimpl
    from phototag.imaging import content_hash
    from phototag.library import Library
    from phototag.plugins import pm

    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"IMG_{i:06d}.jpg").write_bytes(os.urandom(16))
    done_before = real_embeddings()

    class Replay(Engine):
        """Hands out precomputed embeddings in groups of ``batch_size``, as fast as asked."""

        name = "replay"

        def compute(self, paths: Sequence[Path], work: Work) -> Iterator[list[Done]]:
            group: list[Done] = []
            for i, path in enumerate(paths):
                computed, emb = done_before[i % len(done_before)]
                st = path.stat()
                group.append(
                    (i, replace(computed, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                hash=content_hash(str(path).encode()), embedding=emb))
                )  # fmt: skip
                if len(group) == work.batch_size:
                    yield group
                    group = []
            if group:
                yield group

    class Plugin:
        @hookimpl
        def register_engines(self, register):  # type: ignore[no-untyped-def]
            register("replay", Replay)

    pm.register(Plugin(), name="bench-replay")
    library = Library(folder.parent / "commit.db")
    tagger = library.tagger  # its vocabulary and head load outside the timing
    tagger.tag(done_before[0][1])
    tagging = [0.0]  # CPU seconds: the machine may be shared, CPU time does not care
    tag = tagger.tag

    def timed(emb):  # type: ignore[no-untyped-def]
        started = time.thread_time()
        try:
            return tag(emb)
        finally:
            tagging[0] += time.thread_time() - started

    tagger.tag = timed  # type: ignore[method-assign]
    with library.indexer(engine="replay") as indexer:
        started, cpu = time.perf_counter(), time.process_time()
        summary = indexer.index([folder])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert summary.embedded == n, summary
    print(
        f"driver commit rate: {n} photos in {seconds:.1f} s wall = {n / seconds:.0f} photos/s; "
        f"CPU {cpu:.1f} s = {n / cpu:.0f} photos/s per core (scan + tag choice + catalog "
        "writes, precomputed embeddings, no model, no metadata writes)"
    )
    print(
        f"  of that CPU: tag choice {tagging[0] / n * 1e3:.1f} ms/photo, scan + catalog "
        f"{(cpu - tagging[0]) / n * 1e3:.1f} ms/photo (= {n / (cpu - tagging[0]):.0f} photos/s "
        "without tag choice)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--commit-n", type=int, default=2000)
    parser.add_argument("--only", choices=("engines", "commit"), help="run one half")
    args = parser.parse_args()
    if args.only != "commit":
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            bench_index.make_photos(folder, args.n)
            size = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / args.n / 1e6
            cores = os.cpu_count()
            print(f"{args.n} camera-like JPEGs, 1920x2880, {size:.1f} MB each, {cores} cores")
            engines(folder, args.n)
    if args.only != "engines":
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "tiny"
            folder.mkdir()
            commit_rate(folder, args.commit_n)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)", flush=True)


if __name__ == "__main__":
    main()
