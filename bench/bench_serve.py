"""`phototag serve`: page and API latency over a 10,000-photo catalog, thumbnail throughput.

    python bench/bench_serve.py [--n 10000] [--runs 20] [--megapixels 12]

A real `phototag serve` process answers over HTTP on localhost. The catalog is synthetic
(bench/synthetic.py, the shipped model's name and dimensions) plus one folder of 50 real
JPEGs (re-encoded sample photos at ``--megapixels``) for the thumbnails: a results page of
50 photos is fetched with 6 connections at once, as a browser does, first with an empty
thumbnail cache (cold), then again (warm).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote
from urllib.request import urlopen

import interior_photos
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import fill_catalog, word_points  # noqa: E402

from phototag.catalog import MACHINE, Catalog  # noqa: E402
from phototag.imaging import content_hash  # noqa: E402
from phototag.models import load_model  # noqa: E402
from phototag.search import refresh  # noqa: E402
from phototag.types import Tag  # noqa: E402

PAGE_PHOTOS = 50
BROWSER_CONNECTIONS = 6


def real_photos(folder: Path, count: int, megapixels: float) -> list[Path]:
    """``count`` distinct JPEGs (distinct bytes, so distinct cache keys) of about that size."""
    sources = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))
    folder.mkdir(parents=True)
    made = []
    for i in range(count):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
        img = img.resize((round(img.width * scale), round(img.height * scale)))
        img.putpixel((i, 0), (i, 255 - i, 0))  # distinct bytes for repeated sources
        path = folder / f"IMG_{i:04d}.jpg"
        img.save(path, quality=90)
        made.append(path)
    return made


def add_real(cat: Catalog, model: str, photos: list[Path], dims: tuple[int, int]) -> None:
    """Rows for real files (hash, size, mtime) with random vectors: no model run needed."""
    rng = np.random.default_rng(3)
    root_id, root, _ = cat.root_for(photos[0].parent)
    with cat.batch():
        for path in photos:
            data = path.read_bytes()
            st = path.stat()
            pid = cat.upsert_photo(
                root_id, path.relative_to(root).as_posix(), size=st.st_size,
                mtime_ns=st.st_mtime_ns, content_hash=content_hash(data),
            )  # fmt: skip
            visual, semantic = rng.standard_normal(dims[0]), rng.standard_normal(dims[1])
            cat.set_vectors(pid, model, visual / np.linalg.norm(visual),
                            semantic / np.linalg.norm(semantic))  # fmt: skip
            cat.set_tags(pid, [Tag("room", 0.7)], source=MACHINE, model=model)


def get(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, body


def start(catalog: Path, cache: Path) -> tuple[subprocess.Popen[str], str, float]:
    env = dict(os.environ, PHOTOTAG_CACHE_DIR=str(cache))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "phototag", "--catalog", str(catalog), "serve", "--port", "0",
         "--no-write"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"at (http://\S+/)", line)
    if not found:
        raise SystemExit(
            f"phototag serve did not start: {line}{proc.stderr.read() if proc.stderr else ''}"
        )
    url = found.group(1)
    get(url + "static/style.css")  # accepting connections
    return proc, url, time.perf_counter() - started


def latency(url: str, runs: int) -> tuple[float, float]:
    get(url)  # warm: first calls load the model manifest, word vectors, Annoy
    times = sorted(get(url)[0] for _ in range(runs))
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def server_cpu(pid: int) -> float:
    """CPU seconds the server process has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_all(urls: list[str]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
        list(pool.map(get, urls))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args()
    model = load_model()
    semantic = word_points(model)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.db"
        cat = fill_catalog(catalog, args.n, model.name, visual_dim=model.visual_dim,
                           semantic=semantic)  # fmt: skip
        photos = real_photos(Path(tmp) / "real", PAGE_PHOTOS, args.megapixels)
        add_real(cat, model.name, photos, (model.visual_dim, semantic.shape[1]))
        refresh(cat, model.name)
        some_id = cat.photo_at(Path("/bench-photos/005/IMG_005000.jpg")).id  # type: ignore[union-attr]
        cat.close()
        proc, url, startup = start(catalog, Path(tmp) / "cache")
        try:
            print(
                f"catalog: {args.n + PAGE_PHOTOS} photos; {os.cpu_count()} cores; serve ready "
                f"in {startup:.2f} s; {args.runs} runs each (median, p95)"
            )
            cases = {
                "GET /api/find?word=dog": "api/find?word=dog",
                "GET /api/find?word=golden retriever": "api/find?word=golden%20retriever",
                "GET /?word=dog (page, 40 hits)": "?word=dog",
                f"GET /api/photos/{some_id}": f"api/photos/{some_id}",
                f"GET /photos/{some_id} (page + similar)": f"photos/{some_id}",
                "GET /browse (newest month, 60)": "browse",
                "GET /browse?folder=... (1000 photos, 60)": "browse?folder="
                + quote("/bench-photos/005"),
                "GET /browse?folder=...&page=16": "browse?folder="
                + quote("/bench-photos/005")
                + "&page=16",
                "GET /tags": "tags",
                "GET /tags/dog (60 of 2000)": "tags/dog",
                "GET /api/status": "api/status",
                "GET /status": "status",
            }
            for name, path in cases.items():
                median, p95 = latency(url + path, args.runs)
                print(f"{name:>44}: {median * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms")
            _, page = get(url + "browse?folder=" + quote(str(photos[0].parent)))
            thumbs = re.findall(r'src="(/thumbs/\d+\.jpg\?v=[0-9a-f]+)"', page.decode())
            assert len(thumbs) == PAGE_PHOTOS, len(thumbs)
            urls = [url + t.lstrip("/") for t in thumbs]
            cold = fetch_all(urls)
            cpu_before = server_cpu(proc.pid)
            warm = statistics.median(fetch_all(urls) for _ in range(5))
            warm_cpu = (server_cpu(proc.pid) - cpu_before) / 5
            size = Image.open(photos[0]).size
            print(f"thumbnails, a page of {PAGE_PHOTOS} ({size[0]}x{size[1]} JPEGs, "
                  f"{BROWSER_CONNECTIONS} connections): cold {cold * 1000:.0f} ms "
                  f"({PAGE_PHOTOS / cold:.0f}/s), warm {warm * 1000:.0f} ms "
                  f"({PAGE_PHOTOS / warm:.0f}/s); server CPU for a warm page "
                  f"{warm_cpu * 1000:.0f} ms")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        # the same work in this process, in CPU time: what an idle machine would see
        from phototag.web.thumbnails import THUMB_SIZE, render

        cpu = time.process_time()
        for path in photos:
            render(path, THUMB_SIZE)
        per = (time.process_time() - cpu) / len(photos)
        cores = min(os.cpu_count() or 1, BROWSER_CONNECTIONS)
        print(
            f"thumbnail CPU time: {per * 1000:.0f} ms each; a page of {PAGE_PHOTOS} on {cores} "
            f"idle cores: about {per * PAGE_PHOTOS / cores * 1000:.0f} ms cold; "
            f"load average during the run: {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
