"""Writing tags into photos and XMP sidecars through ExifTool, so other photo software shows them.

Machine tags are recorded in an XMP namespace of our own (``exiftool.config``): it lists the
exact values phototag added to each keyword field, so a re-run or a model change replaces
those and never touches a keyword the user set. The original file is never opened for
writing: ExifTool writes a temp copy beside it, we read the copy back, and an atomic rename
puts it in place. One stay-open exiftool process serves a whole run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import stat
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from phototag.errors import ExifToolMissing, WriteError
from phototag.hookspecs import hookimpl
from phototag.types import Tag

log = logging.getLogger(__name__)
_W = TypeVar("_W", bound="TagWriter")

#: phototag's temp files start with this (the watcher and the scanner ignore them)
TEMP_PREFIX = ".phototag-tmp-"
CONFIG_FILE = Path(__file__).with_name("exiftool.config")
#: XMP namespace URI of the machine-tag record: an identifier written into files, never fetched
#: (the reserved .invalid TLD can never resolve or clash)
NAMESPACE = "http://ns.phototag.invalid/1.0/"
MODES = ("embed", "sidecar")
IPTC_KEYWORD_MAX_BYTES = 64

#: written in place: XMP + IPTC (+ XPKeywords where present)
IPTC_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".tif", ".tiff"})
#: written in place: XMP only (DNG too: its raw data stays untouched, like Lightroom does it)
XMP_EXTENSIONS = frozenset({".png", ".webp", ".heic", ".heif", ".avif", ".dng", ".gif", ".jxl"})
#: raw files are never written: they always get a sidecar
RAW_EXTENSIONS = frozenset(
    {
        ".3fr", ".ari", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".erf", ".fff", ".gpr", ".iiq",
        ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".ori", ".pef", ".raf",
        ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip
#: photos with no writable metadata at all: a sidecar too
SIDECAR_ONLY_EXTENSIONS = RAW_EXTENSIONS | {".bmp"}

# -G1 keys of what we read; without -n so CodedCharacterSet reads "UTF8"
_SUBJECT = "XMP-dc:Subject"
_HIERARCHY = "XMP-lr:HierarchicalSubject"
_TAGSLIST = "XMP-digiKam:TagsList"
_LASTKW = "XMP-microsoft:LastKeywordXMP"
_IPTC = "IPTC:Keywords"
_XPKW = "IFD0:XPKeywords"
_NS = "XMP-phototag"
# named one by one: "XMP-phototag:all" costs exiftool 0.5 ms more per file
_READ_TAGS = (
    _SUBJECT, _HIERARCHY, _TAGSLIST, _LASTKW, "IPTC:all", _XPKW, "Photoshop:IPTCDigest",
    "File:CurrentIPTCDigest", f"{_NS}:Keywords", f"{_NS}:HierarchicalKeywords", f"{_NS}:Tags",
    f"{_NS}:Model", "IFD0:Orientation", "ExifIFD:DateTimeOriginal", "ExifTool:Error",
)  # fmt: skip
# IPTC is UTF-8 for us, given on each command: common args come last and would override
# the Latin read that recognises legacy 8-bit IPTC
_UTF8 = ("-charset", "iptc=UTF8")
# -fast: no scan for trailers after the image data (keywords are never there)
_READ_ARGS = ("-fast", "-j", "-G1", "-struct", *(f"-{tag}" for tag in _READ_TAGS))
# explicit: pyexiftool's default (-G -n) would change the names and values we parse
_COMMON_ARGS = ["-charset", "filename=UTF8"]
# list separator for writing ("-sep"): machine values never hold control characters
_SEP = "\x1f"
_READ_CHUNK = 200
_CACHE_SIZE = 256


def is_temp_file(path: Path | str) -> bool:
    """True for phototag's own in-progress files (the watcher must ignore them)."""
    return os.path.basename(path).startswith(TEMP_PREFIX)


def sidecar_path(photo: Path) -> Path:
    """The sidecar for ``photo``: existing ``IMG.ext.xmp`` or ``IMG.xmp``, else new ``IMG.ext.xmp``.

    Updating whichever exists serves digiKam, darktable, Lightroom and Immich alike, and
    never leaves two sidecars that disagree.
    """
    for name in (
        photo.name + ".xmp",
        photo.name + ".XMP",
        photo.stem + ".xmp",
        photo.stem + ".XMP",
    ):
        candidate = photo.with_name(name)
        if candidate.is_file():
            return candidate
    return photo.with_name(photo.name + ".xmp")


def keyword_key(text: str) -> str:
    """Comparison key for keywords: NFC, case-folded, whitespace collapsed ("Café" == "café")."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return " ".join(folded.split())


@dataclass
class WriteOutcome:
    """What a write did (or would do, in a dry run) to one photo."""

    path: Path  # the photo
    target: Path  # the file written: the photo itself or its sidecar
    changed: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: the target's size and mtime after the write (None: it does not exist), so a
    #: watcher can tell phototag's own writes from the user's
    size: int | None = None
    mtime_ns: int | None = None


class TagWriter(ABC):
    """Writes machine tags for photos somewhere other software reads them.

    A writer is a context manager: whatever it needs for a run (a process, a connection)
    lives from ``__enter__`` to ``__exit__``.
    """

    name: str = ""

    def __enter__(self: _W) -> _W:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire what a run needs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release it."""

    @abstractmethod
    def can_handle(self, path: Path) -> bool:
        """Whether this writer knows where tags for ``path`` go."""

    @abstractmethod
    def write(self, path: Path, tags: Sequence[Tag], *, model: str) -> WriteOutcome:
        """Make ``tags`` the photo's machine tags; the user's keywords stay as they are."""

    @abstractmethod
    def remove(self, path: Path) -> WriteOutcome:
        """Remove the photo's machine tags (``phototag untag``)."""

    def edit(
        self,
        path: Path,
        tags: Sequence[Tag],
        *,
        model: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> WriteOutcome:
        """``write``, and change the user's own keywords: ``add`` them, ``remove`` them
        (``phototag serve``). A writer that cannot change them refuses such a change."""
        if add or remove:
            raise WriteError(path, f"the {self.name or 'tag'} writer cannot change keywords")
        return self.write(path, tags, model=model)

    @abstractmethod
    def read_keywords(self, path: Path) -> list[str]:
        """The user's own keywords for the photo (machine tags excluded)."""

    def read_keywords_many(self, paths: Iterable[Path]) -> dict[Path, list[str]]:
        """``read_keywords`` for many photos; unreadable ones are left out."""
        found: dict[Path, list[str]] = {}
        for path in paths:
            try:
                found[Path(path)] = self.read_keywords(Path(path))
            except WriteError as exc:
                log.info("cannot read keywords of %s: %s", path, exc.reason)
        return found


# -- what a file holds, and the plan to change it -------------------------------------------


@dataclass
class _Fields:
    """The keyword fields of one file, values exactly as stored."""

    subject: list[str] = field(default_factory=list)
    hierarchical: list[str] = field(default_factory=list)
    tags_list: list[str] = field(default_factory=list)
    last_keyword_xmp: list[str] | None = None  # None: absent (then never created)
    iptc: list[str] = field(default_factory=list)
    xp_keywords: list[str] | None = None  # None: absent (then never created)
    charset: str | None = None
    iptc_digest: str | None = None
    current_iptc_digest: str | None = None  # set by exiftool only when IPTC exists
    owned_keywords: list[str] = field(default_factory=list)
    owned_hierarchy: list[str] = field(default_factory=list)
    machine_tags: list[tuple[str, str, str]] = field(default_factory=list)
    model: str | None = None
    orientation: str | None = None
    date_taken: str | None = None
    error: str | None = None
    iptc_text: list[str] = field(default_factory=list)  # every IPTC string, to spot legacy text
    #: IPTC in an 8-bit charset without a marker: left untouched (``iptc`` is decoded as Latin)
    iptc_legacy: bool = False

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> _Fields:
        xp = item.get(_XPKW)
        tags = []
        for entry in _as_list(item.get(f"{_NS}:Tags")):
            if isinstance(entry, dict):
                tags.append(
                    (_text(entry.get("Name", "")), _text(entry.get("Score", "")),
                     _text(entry.get("Hierarchy", "")))
                )  # fmt: skip
        return cls(
            subject=_strings(item.get(_SUBJECT)),
            hierarchical=_strings(item.get(_HIERARCHY)),
            tags_list=_strings(item.get(_TAGSLIST)),
            last_keyword_xmp=_strings(item[_LASTKW]) if _LASTKW in item else None,
            iptc=_strings(item.get(_IPTC)),
            xp_keywords=_split_xp(_text(xp)) if xp is not None else None,
            charset=_optional(item.get("IPTC:CodedCharacterSet")),
            iptc_digest=_optional(item.get("Photoshop:IPTCDigest")),
            current_iptc_digest=_optional(item.get("File:CurrentIPTCDigest")),
            owned_keywords=_strings(item.get(f"{_NS}:Keywords")),
            owned_hierarchy=_strings(item.get(f"{_NS}:HierarchicalKeywords")),
            machine_tags=tags,
            model=_optional(item.get(f"{_NS}:Model")),
            orientation=_optional(item.get("IFD0:Orientation")),
            date_taken=_optional(item.get("ExifIFD:DateTimeOriginal")),
            error=_optional(item.get("ExifTool:Error")),
            iptc_text=[v for k, v in item.items() if k.startswith("IPTC:") for v in _strings(v)],
        )

    @property
    def has_iptc(self) -> bool:
        return self.current_iptc_digest is not None

    @property
    def iptc_suspect(self) -> bool:
        """IPTC with no UTF-8 marker where exiftool had to replace bytes by '?'."""
        return self.charset != "UTF8" and any("?" in v for v in self.iptc_text)

    def namespace(self) -> tuple[Any, ...] | None:
        if not (self.owned_keywords or self.owned_hierarchy or self.machine_tags or self.model):
            return None
        return (
            sorted(self.owned_keywords), sorted(self.owned_hierarchy),
            sorted(self.machine_tags), self.model,
        )  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    # numbers stay text: the JSON is parsed with parse_int/parse_float=str
    return value if isinstance(value, str) else str(value)


def _strings(value: Any) -> list[str]:
    return [_text(v) for v in _as_list(value) if not isinstance(v, dict | list)]


def _optional(value: Any) -> str | None:
    return None if value is None else _text(value)


def _latin_bytes(text: str) -> bytes:
    """The bytes behind text exiftool decoded as Latin (cp1252)."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            out += bytes([ord(ch)]) if ord(ch) < 256 else ch.encode("utf-8")
    return bytes(out)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _split_xp(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


@dataclass(frozen=True)
class _Machine:
    """The machine tags to write, cleaned and de-duplicated."""

    keywords: tuple[str, ...]  # for dc:subject / IPTC
    hierarchy: tuple[str, ...]  # '|'-joined, machine parent first when configured
    tags: tuple[tuple[str, str, str], ...]  # (name, score, hierarchy) for phototag:Tags
    model: str


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: characters XMP (XML 1.0) cannot hold: such user values are not copied into XMP
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    """NFC, no control characters, single spaces: safe and comparable keyword text."""
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", text)).split())


def _machine(tags: Sequence[Tag], model: str, parent: str | None) -> _Machine:
    keywords: dict[str, str] = {}
    hierarchy: dict[str, str] = {}
    records: dict[str, tuple[str, str, str]] = {}
    parent = _clean(parent) if parent else None
    for tag in tags:
        name = _clean(tag.tag)
        if not name:
            continue
        parts = [_clean(p) for p in (tag.hierarchy or name).split("|")]
        path = "|".join(([parent] if parent else []) + [p for p in parts if p])
        keywords.setdefault(keyword_key(name), name)
        hierarchy.setdefault(keyword_key(path), path)
        score = min(max(float(tag.score), 0.0), 1.0)
        records.setdefault(keyword_key(name), (name, f"{score:.3f}", path))
    return _Machine(
        tuple(keywords.values()), tuple(hierarchy.values()), tuple(records.values()),
        _clean(model) or "unknown",
    )  # fmt: skip


def _pipe(value: str) -> str:
    """digiKam / Windows hierarchy ('/') in Lightroom form ('|')."""
    return value.replace("/", "|")


def _leaf(value: str) -> str:
    return value.rsplit("|", 1)[-1]


def _dedup(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for value in values:
        key = keyword_key(value)
        if key and key not in seen:
            seen.add(key)
            out.append(value)
    return out


class _Owner:
    """Tells a file's machine values from the user's.

    ``drop`` holds keys of user keywords being removed: they count as machine values that
    are no longer wanted (a hierarchical value goes when its leaf is dropped).
    """

    def __init__(
        self, fields: _Fields, parent: str | None, drop: frozenset[str] = frozenset()
    ) -> None:
        self.keywords = set(fields.owned_keywords)
        self.hierarchy = set(fields.owned_hierarchy)
        self.parent = keyword_key(parent) if parent else None
        self.drop = drop

    def keyword(self, value: str) -> bool:
        return value in self.keywords or (bool(self.drop) and keyword_key(value) in self.drop)

    def hier(self, value: str) -> bool:
        """``value`` in '|' form; anything under the machine parent counts as machine too."""
        if value in self.hierarchy:
            return True
        key = keyword_key(value)
        if self.drop and keyword_key(_leaf(value)) in self.drop:
            return True
        return bool(self.parent) and (key == self.parent or key.startswith(f"{self.parent}|"))


def _user_keywords(
    fields: _Fields, parent: str | None, drop: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """The user's flat keywords and hierarchical ones ('|' form) in one file."""
    owner = _Owner(fields, parent, drop)
    flat = [
        v for v in fields.subject + fields.iptc + (fields.xp_keywords or [])
        if not owner.keyword(v)
    ]  # fmt: skip
    hier = [v for v in fields.hierarchical if not owner.hier(v)]
    hier += [
        _pipe(v) for v in fields.tags_list + (fields.last_keyword_xmp or [])
        if not owner.hier(_pipe(v))
    ]  # fmt: skip
    return flat, hier


@dataclass
class _ListChange:
    """One list field: exact values to remove and add (``-TAG-=`` / ``-TAG+=``)."""

    tag: str
    attr: str
    remove: list[str]
    add: list[str]
    desired: list[str]
    machine_added: list[str]  # the added values that are machine tags, not mirrored user ones


def _list_change(
    tag: str, attr: str, current: list[str], is_machine: Callable[[str], bool],
    wanted: list[str], machine: set[str],
) -> _ListChange:  # fmt: skip
    """Keep user values, drop machine values no longer wanted, add what is missing (by key)."""
    wanted_set = set(wanted)
    kept = [v for v in current if not is_machine(v) or v in wanted_set]
    keys = {keyword_key(v) for v in kept}
    add = []
    for value in wanted:
        key = keyword_key(value)
        if key not in keys:
            keys.add(key)
            add.append(value)
    remove = _dedup_exact(v for v in current if is_machine(v) and v not in wanted_set)
    return _ListChange(tag, attr, remove, add, kept + add, [v for v in add if v in machine])


def _dedup_exact(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


@dataclass
class _Plan:
    lists: list[_ListChange]
    xp: _ListChange | None
    namespace: tuple[Any, ...] | None  # wanted phototag:* content, None: none
    namespace_changed: bool
    iptc: bool  # the target carries IPTC

    @property
    def changed(self) -> bool:
        """Only machine changes cause a write; user keywords are mirrored along with one."""
        changes = self.lists + ([self.xp] if self.xp else [])
        return self.namespace_changed or any(c.remove or c.machine_added for c in changes)

    def _change(self, attr: str) -> _ListChange | None:
        return next((c for c in self.lists if c.attr == attr), None)

    def summary(self) -> tuple[list[str], list[str]]:
        """Machine tags (added, removed): flat keywords, or hierarchical ones if only those changed.

        User keywords mirrored into other fields are not listed: they were there already.
        """
        flat, hier = self._change("subject"), self._change("hierarchical")
        added = list(flat.machine_added) if flat else []
        removed = list(flat.remove) if flat else []
        if hier and not (added or removed):
            added, removed = list(hier.machine_added), list(hier.remove)
        return added, removed

    def args(self, had_iptc: bool) -> list[str]:
        """The exiftool arguments, few of them: exiftool parses each one again per command."""
        values = [v for c in self.lists for v in c.remove + c.add]
        if self.namespace is not None:
            values += [v for part in self.namespace[:2] for v in part]
        sep = _SEP if not any(_SEP in v for v in values) else None  # never, in practice
        args = ["-sep", _SEP] if sep else []
        for change in self.lists:
            args += _list_args(f"-{change.tag}-=", change.remove, sep)
            args += _list_args(f"-{change.tag}+=", change.add, sep)
        if self.xp and (self.xp.add or self.xp.remove):
            args.append(f"-{_XPKW}={';'.join(self.xp.desired)}")
        iptc = self._change("iptc")
        if iptc and (iptc.add or iptc.remove):
            args.append("-IPTC:CodedCharacterSet=UTF8")
        if self.iptc and (had_iptc or (iptc and iptc.add)):
            args.append("-Photoshop:IPTCDigest=new")
        if self.namespace_changed:
            if self.namespace is None:
                args.append(f"-{_NS}:all=")
            else:
                args += _namespace_args(self.namespace, sep)
        return args

    def verify(self, after: _Fields, before: _Fields) -> str | None:
        """What differs between the written copy and the plan (None: all as planned)."""
        for change in self.lists + ([self.xp] if self.xp else []):
            if Counter(getattr(after, change.attr) or []) != Counter(change.desired):
                return change.tag.lower()
        if after.namespace() != self.namespace:
            return "phototag namespace"
        iptc = self._change("iptc")
        if iptc and (iptc.add or iptc.remove) and after.charset != "UTF8":
            return "iptc charset"
        if self.iptc and after.has_iptc and after.iptc_digest != after.current_iptc_digest:
            return "iptc digest"
        if (after.orientation, after.date_taken) != (before.orientation, before.date_taken):
            return "orientation or date"
        return None


def _struct_value(value: str) -> str:
    """Escape a value for ExifTool's serialized structure syntax."""
    value = re.sub(r"([|,\]}])", r"|\1", value)
    return "|" + value if value[:1] in ("[", "{") or value[:1].isspace() else value


def _list_args(prefix: str, values: list[str], sep: str | None) -> list[str]:
    """One argument for a whole list when ``-sep`` is on, else one per value."""
    if not values:
        return []
    return [prefix + sep.join(values)] if sep else [prefix + v for v in values]


def _namespace_args(namespace: tuple[Any, ...], sep: str | None) -> list[str]:
    """Every phototag:* property set outright: lists replaced, empty ones deleted."""
    owned_keywords, owned_hierarchy, tags, model = namespace
    date = datetime.now(timezone.utc).strftime("%Y:%m:%d %H:%M:%S+00:00")
    args = [f"-{_NS}:Model={model}", f"-{_NS}:Date={date}"]
    for name, values in (("Keywords", owned_keywords), ("HierarchicalKeywords", owned_hierarchy)):
        args += _list_args(f"-{_NS}:{name}=", values, sep) or [f"-{_NS}:{name}="]
    records = []
    for name, score, hierarchy in tags:
        fields = [f"Name={_struct_value(name)}", f"Score={score}"]
        if hierarchy:
            fields.append(f"Hierarchy={_struct_value(hierarchy)}")
        records.append("{" + ",".join(fields) + "}")
    args.append(f"-{_NS}:Tags=[{','.join(records)}]")
    return args


def _plan(
    current: _Fields,
    machine: _Machine | None,
    *,
    parent: str | None,
    iptc: bool,
    in_place: bool,
    photo: _Fields | None = None,
    add: Sequence[str] = (),
    drop: frozenset[str] = frozenset(),
) -> _Plan:
    """Compare what the file holds with what it should hold; pure, so it is cheap to test.

    All fields end up consistent: a user keyword found in any field is kept where it is and
    mirrored into the fields missing it (readers like digiKam and Immich use only the first
    non-empty field). A sidecar also carries the photo's own keywords (``photo``), because
    apps reading a sidecar ignore the embedded ones. ``add`` are new user keywords (they
    cause a write like machine tags do); ``drop`` are keys of user keywords to remove.
    """
    owner = _Owner(current, parent, drop)
    user_flat, user_hier = _user_keywords(current, parent, drop)
    if photo is not None:
        photo_flat, photo_hier = _user_keywords(photo, parent, drop)
        user_flat, user_hier = user_flat + photo_flat, user_hier + photo_hier
    added = [v for v in (_clean(a) for a in add) if v and keyword_key(v) not in drop]
    user_flat += added
    if drop and machine:
        machine = _Machine(
            *(tuple(v for v in values if keyword_key(_leaf(v)) not in drop)
              for values in (machine.keywords, machine.hierarchy)),
            tuple(t for t in machine.tags if keyword_key(t[0]) not in drop), machine.model,
        )  # fmt: skip
    user_flat = [v for v in user_flat if not _NOT_XML.search(v)]  # they stay where they are
    user_hier = [v for v in user_hier if not _NOT_XML.search(v)]
    hier = _dedup(user_hier)
    components = {keyword_key(part) for value in hier for part in value.split("|")}
    flat = _dedup(user_flat + [_leaf(v) for v in hier])
    hier = _dedup(hier + [v for v in flat if keyword_key(v) not in components])

    flat_keys = {keyword_key(v) for v in flat}
    hier_keys = {keyword_key(v) for v in hier}
    add_flat = [v for v in machine.keywords if keyword_key(v) not in flat_keys] if machine else []
    add_hier = [v for v in machine.hierarchy if keyword_key(v) not in hier_keys] if machine else []
    want_flat, want_hier = flat + add_flat, hier + add_hier
    slashed = [v.replace("|", "/") for v in want_hier]
    # values that cause a write when added: machine tags, and keywords the user adds
    mflat, mhier = set(add_flat) | set(added), set(add_hier)
    mslash = {v.replace("|", "/") for v in add_hier}

    def is_slash_machine(value: str) -> bool:
        return owner.hier(_pipe(value))

    lists = [
        _list_change(_SUBJECT, "subject", current.subject, owner.keyword, want_flat, mflat),
        _list_change(
            _HIERARCHY, "hierarchical", current.hierarchical, owner.hier, want_hier, mhier
        ),
        _list_change(_TAGSLIST, "tags_list", current.tags_list, is_slash_machine, slashed, mslash),
    ]
    if current.last_keyword_xmp is not None:
        lists.append(
            _list_change(_LASTKW, "last_keyword_xmp", current.last_keyword_xmp, is_slash_machine,
                         slashed, mslash)
        )  # fmt: skip
    if iptc:
        short = [v for v in want_flat if len(v.encode("utf-8")) <= IPTC_KEYWORD_MAX_BYTES]
        lists.append(_list_change(_IPTC, "iptc", current.iptc, owner.keyword, short, mflat))
    xp = None
    if in_place and current.xp_keywords is not None:
        separable = [v for v in want_flat if ";" not in v]  # ';' separates XPKeywords
        xp = _list_change(
            _XPKW, "xp_keywords", current.xp_keywords, owner.keyword, separable, mflat
        )

    namespace = None
    if machine and machine.tags:
        namespace = (sorted(add_flat), sorted(add_hier), sorted(machine.tags), machine.model)
    return _Plan(
        lists, xp, namespace, namespace != current.namespace(), iptc,
    )  # fmt: skip


# -- the ExifTool writer ---------------------------------------------------------------------


class _ExifToolDied(Exception):
    pass


def _encode_arg(arg: str | bytes) -> bytes:
    """One argument line for ``-@ -``; a line break inside becomes a C-string line."""
    data = arg if isinstance(arg, bytes) else arg.encode("utf-8", "surrogateescape")
    if b"\n" in data or b"\r" in data:
        escaped = data.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        return b"#[CSTR]" + escaped
    return data


def _json_items(out: str) -> list[dict[str, Any]]:
    """exiftool's -j output; numbers stay text ("1.50" is a keyword, not 1.5)."""
    if not out.strip():
        return []
    try:
        items = json.loads(out, parse_int=str, parse_float=str)
    except ValueError:
        log.warning("exiftool printed something that is not JSON: %.200s", out)
        return []
    return [item for item in items if isinstance(item, dict)]


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file vanished"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


def _exiftool_reason(stderr: str, names: Sequence[str]) -> str:
    """ExifTool's error, on one lowercase line, without the file name it appends."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line[len("Error:") :].strip() for line in lines if line.startswith("Error:")]
    errors = errors or [line for line in lines if not line.startswith("Warning:")] or lines
    if not errors:
        return "exiftool could not write it"
    message = errors[0]
    for name in names:
        if message.endswith(f" - {name}"):
            message = message[: -len(name) - 3]
    return "exiftool: " + message.lower()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # not supported here (some network filesystems): the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ExifToolWriter(TagWriter):
    """Embedded XMP/IPTC or XMP sidecars through one stay-open ExifTool process.

    ``mode`` "embed" writes into JPEG, TIFF, DNG, PNG, WebP, HEIC... and into a sidecar
    for raw files; "sidecar" never touches a photo. ``machine_parent`` puts machine tags
    under a parent in the hierarchy (``phototag|animal|cat``), visible in other apps.
    """

    name = "exiftool"

    def __init__(
        self,
        mode: str = "embed",
        *,
        dry_run: bool = False,
        machine_parent: str | None = None,
        preserve_mtime: bool = False,
        executable: str = "exiftool",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown write mode {mode!r}; expected one of {', '.join(MODES)}")
        self.mode = mode
        self.dry_run = dry_run
        self.machine_parent = _clean(machine_parent) if machine_parent else None
        self.preserve_mtime = preserve_mtime  # off: catalog apps re-read only changed mtimes
        self.executable = executable
        self._et: Any = None
        self._lock = threading.RLock()
        self._cache: OrderedDict[Path, tuple[tuple[int, int, int, int], _Fields]] = OrderedDict()

    # -- process --------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._et is None:
                self._start()

    def close(self) -> None:
        with self._lock:
            et, self._et = self._et, None
            self._cache.clear()
            if et is not None and et.running:
                try:
                    et.terminate()
                except Exception:  # noqa: BLE001 - the process is going away either way
                    log.debug("exiftool did not stop cleanly", exc_info=True)

    def _start(self) -> None:
        executable = shutil.which(self.executable)
        if executable is None:
            raise ExifToolMissing()
        from exiftool import ExifToolHelper

        et = ExifToolHelper(
            executable=executable,
            common_args=list(_COMMON_ARGS),
            config_file=str(CONFIG_FILE),
            encoding="utf-8",
            check_execute=False,  # exit status and stderr are read here, per file
            check_tag_names=False,
        )
        try:
            et.run()
        except (OSError, RuntimeError) as exc:
            raise ExifToolMissing() from exc
        self._et = et

    def _execute(self, args: Sequence[str | bytes]) -> tuple[str, str, int]:
        """Run one exiftool command: (stdout, stderr, exit status)."""
        from exiftool.exceptions import ExifToolException

        with self._lock:
            if self._et is None or not self._et.running:
                self._start()
            try:
                out = self._et.execute(*(_encode_arg(a) for a in args), raw_bytes=True)
                err, status = self._et.last_stderr, self._et.last_status
            except (ExifToolException, OSError, ValueError) as exc:
                self.close()  # a fresh process serves the next file
                raise _ExifToolDied(str(exc)) from exc
        decode = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
        return decode(out), decode(err), int(status)

    # -- reading --------------------------------------------------------------------------

    def _read(
        self, files: Sequence[Path], *, first: Sequence[str | bytes] = ()
    ) -> tuple[dict[Path, _Fields], dict[Path, str], str]:
        """Fields of many files in one exiftool call: (fields, reason per failure, stderr).

        ``first`` is a command run just before, in the same round trip (a write whose copy
        is then read back): one call per file instead of two.
        """
        prefix = [*_UTF8, *first, "-execute"] if first else []
        names = [os.fsencode(f) for f in files]
        out, err, _ = self._execute([*prefix, *_UTF8, *_READ_ARGS, *names])
        if first:
            out = out.partition("{ready}")[2]
        by_name = {str(f): f for f in files}
        fields: dict[Path, _Fields] = {}
        errors: dict[Path, str] = {}
        if out.strip():
            for item in _json_items(out):
                path = by_name.get(item.get("SourceFile", ""))
                if path is None:
                    continue
                parsed = _Fields.from_json(item)
                if parsed.error:
                    errors[path] = "exiftool: " + parsed.error.lower()
                else:
                    fields[path] = parsed
        for path in files:
            if path not in fields and path not in errors:
                errors[path] = _exiftool_reason(err, [str(path)])
        suspects = [path for path, f in fields.items() if f.iptc_suspect]
        if suspects:
            self._resolve_legacy_iptc({path: fields[path] for path in suspects})
        return fields, errors, err

    def _resolve_legacy_iptc(self, fields: dict[Path, _Fields]) -> None:
        """Read suspect IPTC again as Latin; bytes that are not UTF-8 make it legacy text.

        Declaring such IPTC UTF-8 would garble the user's keywords and captions, so it stays
        untouched and its keywords are taken as decoded here.
        """
        args = ["-charset", "iptc=Latin", "-j", "-G1", "-IPTC:all"]
        out, _, _ = self._execute([*args, *(os.fsencode(f) for f in fields)])
        by_name = {str(f): f for f in fields}
        for item in _json_items(out):
            path = by_name.get(item.get("SourceFile", ""))
            if path is None:
                continue
            latin = _Fields.from_json(item)
            if not all(_is_utf8(_latin_bytes(v)) for v in latin.iptc_text):
                fields[path].iptc = latin.iptc
                fields[path].iptc_legacy = True

    def _fields(self, files: Sequence[Path]) -> tuple[dict[Path, _Fields], dict[Path, str]]:
        """Fields of ``files``, from the cache while a file's stat is unchanged."""
        found: dict[Path, _Fields] = {}
        errors: dict[Path, str] = {}
        todo: list[tuple[Path, tuple[int, int, int, int]]] = []
        for path in files:
            try:
                key = _stat_key(os.stat(path))
            except OSError as exc:
                errors[path] = _os_reason(exc)
                continue
            hit = self._cache.get(path)
            if hit is not None and hit[0] == key:
                self._cache.move_to_end(path)
                found[path] = hit[1]
            else:
                todo.append((path, key))
        for start in range(0, len(todo), _READ_CHUNK):
            chunk = todo[start : start + _READ_CHUNK]
            try:
                fields, errs, _ = self._read([path for path, _ in chunk])
            except _ExifToolDied:
                fields, errs = {}, {path: "exiftool stopped unexpectedly" for path, _ in chunk}
            errors.update(errs)
            for path, key in chunk:
                if path in fields:
                    found[path] = fields[path]
                    self._remember(path, key, fields[path])
        return found, errors

    def _remember(self, path: Path, key: tuple[int, int, int, int], fields: _Fields) -> None:
        with self._lock:
            self._cache[path] = (key, fields)
            self._cache.move_to_end(path)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def read_keywords(self, path: Path) -> list[str]:
        found, errors = self._keywords_many([Path(path)])
        if Path(path) in errors:
            raise WriteError(path, errors[Path(path)])
        return found[Path(path)]

    def read_keywords_many(self, paths: Iterable[Path]) -> dict[Path, list[str]]:
        found, errors = self._keywords_many([Path(p) for p in paths])
        for path, reason in errors.items():
            log.info("cannot read keywords of %s: %s", path, reason)
        return found

    def _keywords_many(
        self, paths: Sequence[Path]
    ) -> tuple[dict[Path, list[str]], dict[Path, str]]:
        """User keywords from each photo and its sidecar (if any), in one exiftool call."""
        with self._lock:
            return self._keywords_many_locked(paths)

    def _keywords_many_locked(
        self, paths: Sequence[Path]
    ) -> tuple[dict[Path, list[str]], dict[Path, str]]:
        sources: dict[Path, list[Path]] = {}
        for path in paths:
            photo = Path(os.path.abspath(path))
            sidecar = sidecar_path(photo)
            sources[path] = [photo] + ([sidecar] if sidecar.is_file() else [])
        fields, errors = self._fields([f for files in sources.values() for f in files])
        found: dict[Path, list[str]] = {}
        failed: dict[Path, str] = {}
        for path, files in sources.items():
            if files[0] in errors:
                failed[path] = errors[files[0]]
                continue
            flat: list[str] = []
            for source in files:
                if source in fields:
                    user_flat, user_hier = _user_keywords(fields[source], self.machine_parent)
                    flat += user_flat + [_leaf(v) for v in user_hier]
            found[path] = [unicodedata.normalize("NFC", v) for v in _dedup(flat)]
        return found, failed

    # -- writing --------------------------------------------------------------------------

    def can_handle(self, path: Path) -> bool:
        suffix = Path(path).suffix.lower()
        known = IPTC_EXTENSIONS | XMP_EXTENSIONS | SIDECAR_ONLY_EXTENSIONS
        return suffix in known and not is_temp_file(path)

    def target_for(self, path: Path) -> Path:
        """The file a write for ``path`` goes to: the photo itself or its sidecar."""
        path = Path(os.path.abspath(path))
        if self.mode == "sidecar" or path.suffix.lower() in SIDECAR_ONLY_EXTENSIONS:
            return sidecar_path(path)
        return Path(os.path.realpath(path))  # through a symlink: the link stays a link

    def write(self, path: Path, tags: Sequence[Tag], *, model: str) -> WriteOutcome:
        return self._apply(Path(path), _machine(tags, model, self.machine_parent))

    def remove(self, path: Path) -> WriteOutcome:
        return self._apply(Path(path), None)

    def edit(
        self,
        path: Path,
        tags: Sequence[Tag],
        *,
        model: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> WriteOutcome:
        drop = frozenset(k for k in (keyword_key(v) for v in remove) if k)
        machine = _machine(tags, model, self.machine_parent)
        return self._apply(Path(path), machine, add=tuple(add), drop=drop)

    def _apply(
        self,
        path: Path,
        machine: _Machine | None,
        *,
        add: Sequence[str] = (),
        drop: frozenset[str] = frozenset(),
    ) -> WriteOutcome:
        with self._lock:  # one exiftool process: one file at a time
            return self._apply_locked(Path(os.path.abspath(path)), machine, add, drop)

    def _apply_locked(
        self,
        path: Path,
        machine: _Machine | None,
        add: Sequence[str] = (),
        drop: frozenset[str] = frozenset(),
    ) -> WriteOutcome:
        if not self.can_handle(path):
            raise WriteError(path, "not a photo format phototag can write tags for")
        try:
            photo_st = os.stat(path)
        except OSError as exc:
            raise WriteError(path, _os_reason(exc)) from None
        if not stat.S_ISREG(photo_st.st_mode):
            raise WriteError(path, "not a regular file")
        target = self.target_for(path)
        in_place = target.suffix.lower() != ".xmp"
        try:
            target_st = os.stat(target) if in_place or target.exists() else None
        except OSError as exc:
            raise WriteError(path, _os_reason(exc)) from None
        if target_st is not None and not target_st.st_mode & 0o222:
            what = "file" if in_place else f"sidecar {target.name}"
            raise WriteError(path, f"{what} is read-only")

        wanted = ([target] if target_st is not None else []) + ([] if in_place else [path])
        fields, errors = self._fields(wanted)
        if target in errors:
            raise WriteError(path, errors[target])
        current = fields.get(target, _Fields())
        plan = _plan(
            current, machine, parent=self.machine_parent, in_place=in_place,
            iptc=in_place
            and target.suffix.lower() in IPTC_EXTENSIONS
            and not current.iptc_legacy,
            photo=None if in_place else fields.get(path), add=add, drop=drop,
        )  # fmt: skip
        added, removed = plan.summary() if plan.changed else ([], [])
        if not plan.changed or self.dry_run:
            size = target_st.st_size if target_st else None
            mtime = target_st.st_mtime_ns if target_st else None
            return WriteOutcome(path, target, plan.changed, added, removed, size, mtime)
        st = self._commit(path, target, target_st, photo_st, plan, current)
        return WriteOutcome(path, target, True, added, removed, st.st_size, st.st_mtime_ns)

    def _commit(
        self,
        path: Path,
        target: Path,
        target_st: os.stat_result | None,
        photo_st: os.stat_result,
        plan: _Plan,
        before: _Fields,
    ) -> os.stat_result:
        """Write a verified temp copy beside ``target`` and rename it into place."""
        creating = target_st is None
        # '.tmp' keeps other apps' watchers off it (and exiftool 12.57 refuses -o x.webp);
        # a sidecar made from scratch needs '.xmp' so exiftool knows what to create
        tmp = target.with_name(
            f"{TEMP_PREFIX}{secrets.token_hex(8)}{'.xmp' if creating else '.tmp'}"
        )
        args: list[str | bytes] = [*plan.args(before.has_iptc), "-o", os.fsencode(tmp)]
        if not creating:
            args.append(os.fsencode(target))
        try:
            try:
                fields, _, err = self._read([tmp], first=args)
            except _ExifToolDied:
                raise WriteError(path, "exiftool stopped unexpectedly") from None
            if tmp not in fields or not tmp.exists():
                raise WriteError(path, _exiftool_reason(err, [str(target), str(tmp)]))
            after = fields[tmp]
            problem = plan.verify(after, before)
            if problem:
                raise WriteError(path, f"written copy did not verify ({problem}); file unchanged")
            self._copy_owner_and_mode(tmp, target_st or photo_st, creating)
            if self.preserve_mtime and target_st is not None:
                os.utime(tmp, ns=(target_st.st_atime_ns, target_st.st_mtime_ns))
            _fsync_file(tmp)
            self._put_in_place(path, tmp, target, target_st)
        except OSError as exc:
            raise WriteError(path, _os_reason(exc)) from None
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError:
                log.warning("could not remove temp file %s", tmp)
        _fsync_dir(target.parent)
        st = os.stat(target)
        self._remember(target, _stat_key(st), after)
        return st

    @staticmethod
    def _copy_owner_and_mode(tmp: Path, like: os.stat_result, creating: bool) -> None:
        mode = stat.S_IMODE(like.st_mode)
        os.chmod(tmp, mode & 0o666 if creating else mode)  # a new sidecar: no exec bits
        tmp_st = os.stat(tmp)
        if (tmp_st.st_uid, tmp_st.st_gid) != (like.st_uid, like.st_gid):
            try:
                os.chown(tmp, like.st_uid, like.st_gid)
            except PermissionError:
                log.debug("cannot give %s the owner of the original", tmp)

    @staticmethod
    def _put_in_place(
        path: Path, tmp: Path, target: Path, target_st: os.stat_result | None
    ) -> None:
        """Atomic rename, unless the target changed since it was read (then: try again)."""
        if target_st is None:
            try:
                os.link(tmp, target)  # atomic and never clobbers a sidecar made meanwhile
                return
            except FileExistsError:
                raise WriteError(path, f"{target.name} appeared meanwhile; try again") from None
            except OSError:  # no hard links here (FAT, some network shares)
                if target.exists():
                    raise WriteError(path, f"{target.name} appeared meanwhile; try again") from None
        elif _stat_key(os.stat(target)) != _stat_key(target_st):
            raise WriteError(path, "file changed while tags were written; try again")
        os.replace(tmp, target)


def open_writer(
    mode: str = "embed",
    *,
    dry_run: bool = False,
    machine_parent: str | None = None,
    preserve_mtime: bool = False,
) -> ExifToolWriter:
    """An ExifTool writer for ``mode``; use it in a ``with`` block (one exiftool process)."""
    if shutil.which("exiftool") is None:
        raise ExifToolMissing()
    return ExifToolWriter(
        mode, dry_run=dry_run, machine_parent=machine_parent, preserve_mtime=preserve_mtime
    )


@hookimpl
def register_writers(register: Callable[[str, Any], None]) -> None:
    register("exiftool", open_writer)


__all__ = [
    "TEMP_PREFIX", "ExifToolWriter", "TagWriter", "WriteOutcome", "is_temp_file", "keyword_key",
    "open_writer", "sidecar_path",
]  # fmt: skip
