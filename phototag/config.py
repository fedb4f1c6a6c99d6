"""Settings from a TOML file in the user's config dir; command-line options win over it.

Example ``~/.config/phototag/config.toml``::

    write = "sidecar"          # "embed" (default), "sidecar" or "none"
    vocabulary = "~/tags.txt"  # restrict or extend the tag vocabulary
    machine_parent = "phototag"
    file_tags = "confident"    # "confident" (default): words proven right 80 % of the time;
                               # "all": every word the catalog lists for the photo
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from phototag.errors import PhototagError

WRITE_MODES = ("embed", "sidecar", "none")
FILE_TAGS = ("confident", "all")


@dataclass
class Config:
    catalog: str | None = None
    backend: str = "onnx"
    model: str | None = None
    write: str = "embed"
    vocabulary: str | None = None
    machine_parent: str | None = None
    file_tags: str = "confident"


def config_path() -> Path:
    if env := os.environ.get("PHOTOTAG_CONFIG"):
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("phototag")) / "config.toml"


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise PhototagError(f"cannot read config {path}: {exc}") from None
    if sys.version_info >= (3, 11):  # imported here: most runs have no config file
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PhototagError(f"cannot read config {path}: {exc}") from None
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PhototagError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    config = Config(**raw)
    if config.write not in WRITE_MODES:
        raise PhototagError(f"{path}: write must be one of {', '.join(WRITE_MODES)}")
    if config.file_tags not in FILE_TAGS:
        raise PhototagError(f"{path}: file_tags must be one of {', '.join(FILE_TAGS)}")
    return config
