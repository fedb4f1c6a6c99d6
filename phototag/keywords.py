"""The keyword plan: what a file's keyword fields hold, and what they should hold.

Pure (no ExifTool, no files), so unit tests check every rule directly. Machine tags are
recorded in phototag's own XMP namespace (``exiftool.config``): it lists the exact values
phototag added to each keyword field, so a re-run or a model change replaces those and
never touches a keyword the user set, and a machine value the user deleted in another app
(listed there, gone from the field) is seen as rejected.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from phototag.types import Tag

IPTC_KEYWORD_MAX_BYTES = 64
# -G1 keys of what we read; without -n so CodedCharacterSet reads "UTF8"
SUBJECT = "XMP-dc:Subject"
HIERARCHY = "XMP-lr:HierarchicalSubject"
TAGSLIST = "XMP-digiKam:TagsList"
LASTKW = "XMP-microsoft:LastKeywordXMP"
IPTC = "IPTC:Keywords"
XPKW = "IFD0:XPKeywords"
NS = "XMP-phototag"
# named one by one: "XMP-phototag:all" costs exiftool 0.5 ms more per file
READ_TAGS = (
    SUBJECT, HIERARCHY, TAGSLIST, LASTKW, "IPTC:all", XPKW, "Photoshop:IPTCDigest",
    "File:CurrentIPTCDigest", f"{NS}:Keywords", f"{NS}:HierarchicalKeywords", f"{NS}:Tags",
    f"{NS}:Model", "IFD0:Orientation", "ExifIFD:DateTimeOriginal", "ExifTool:Error",
)  # fmt: skip
# list separator for writing ("-sep"): machine values never hold control characters
SEP = "\x1f"


def keyword_key(text: str) -> str:
    """Comparison key for keywords: NFC, case-folded, whitespace collapsed ("Café" == "café")."""
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return " ".join(folded.split())


@dataclass
class Fields:
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
    def from_json(cls, item: dict[str, Any]) -> Fields:
        xp = item.get(XPKW)
        tags = []
        for entry in _as_list(item.get(f"{NS}:Tags")):
            if isinstance(entry, dict):
                tags.append(
                    (_text(entry.get("Name", "")), _text(entry.get("Score", "")),
                     _text(entry.get("Hierarchy", "")))
                )  # fmt: skip
        return cls(
            subject=_strings(item.get(SUBJECT)),
            hierarchical=_strings(item.get(HIERARCHY)),
            tags_list=_strings(item.get(TAGSLIST)),
            last_keyword_xmp=_strings(item[LASTKW]) if LASTKW in item else None,
            iptc=_strings(item.get(IPTC)),
            xp_keywords=_split_xp(_text(xp)) if xp is not None else None,
            charset=_optional(item.get("IPTC:CodedCharacterSet")),
            iptc_digest=_optional(item.get("Photoshop:IPTCDigest")),
            current_iptc_digest=_optional(item.get("File:CurrentIPTCDigest")),
            owned_keywords=_strings(item.get(f"{NS}:Keywords")),
            owned_hierarchy=_strings(item.get(f"{NS}:HierarchicalKeywords")),
            machine_tags=tags,
            model=_optional(item.get(f"{NS}:Model")),
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


def latin_bytes(text: str) -> bytes:
    """The bytes behind text exiftool decoded as Latin (cp1252)."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            out += bytes([ord(ch)]) if ord(ch) < 256 else ch.encode("utf-8")
    return bytes(out)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _split_xp(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


@dataclass(frozen=True)
class Machine:
    """The machine tags to write, cleaned and de-duplicated."""

    keywords: tuple[str, ...]  # for dc:subject / IPTC
    hierarchy: tuple[str, ...]  # '|'-joined, machine parent first when configured
    tags: tuple[tuple[str, str, str], ...]  # (name, score, hierarchy) for phototag:Tags
    model: str


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: characters XMP (XML 1.0) cannot hold: such user values are not copied into XMP
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """NFC, no control characters, single spaces: safe and comparable keyword text."""
    return " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", text)).split())


def machine_tags(tags: Sequence[Tag], model: str, parent: str | None) -> Machine:
    keywords: dict[str, str] = {}
    hierarchy: dict[str, str] = {}
    records: dict[str, tuple[str, str, str]] = {}
    parent = clean(parent) if parent else None
    for tag in tags:
        name = clean(tag.tag)
        if not name:
            continue
        parts = [clean(p) for p in (tag.hierarchy or name).split("|")]
        path = "|".join(([parent] if parent else []) + [p for p in parts if p])
        keywords.setdefault(keyword_key(name), name)
        hierarchy.setdefault(keyword_key(path), path)
        score = min(max(float(tag.score), 0.0), 1.0)
        records.setdefault(keyword_key(name), (name, f"{score:.3f}", path))
    return Machine(
        tuple(keywords.values()), tuple(hierarchy.values()), tuple(records.values()),
        clean(model) or "unknown",
    )  # fmt: skip


def _pipe(value: str) -> str:
    """digiKam / Windows hierarchy ('/') in Lightroom form ('|')."""
    return value.replace("/", "|")


def leaf(value: str) -> str:
    return value.rsplit("|", 1)[-1]


def dedup(values: Iterable[str]) -> list[str]:
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

    ``drop`` holds keys of user keywords being removed (``phototag serve``): they count as
    machine values that are no longer wanted (a hierarchical value goes with its leaf).
    """

    def __init__(
        self, fields: Fields, parent: str | None, drop: frozenset[str] = frozenset()
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
        if self.drop and keyword_key(leaf(value)) in self.drop:
            return True
        return bool(self.parent) and (key == self.parent or key.startswith(f"{self.parent}|"))


def user_keywords(
    fields: Fields, parent: str | None, drop: frozenset[str] = frozenset()
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
class Plan:
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
        sep = SEP if not any(SEP in v for v in values) else None  # never, in practice
        args = ["-sep", SEP] if sep else []
        for change in self.lists:
            args += _list_args(f"-{change.tag}-=", change.remove, sep)
            args += _list_args(f"-{change.tag}+=", change.add, sep)
        if self.xp and (self.xp.add or self.xp.remove):
            args.append(f"-{XPKW}={';'.join(self.xp.desired)}")
        iptc = self._change("iptc")
        if iptc and (iptc.add or iptc.remove):
            args.append("-IPTC:CodedCharacterSet=UTF8")
        if self.iptc and (had_iptc or (iptc and iptc.add)):
            args.append("-Photoshop:IPTCDigest=new")
        if self.namespace_changed:
            if self.namespace is None:
                args.append(f"-{NS}:all=")
            else:
                args += _namespace_args(self.namespace, sep)
        return args

    def verify(self, after: Fields, before: Fields) -> str | None:
        """What differs between the written copy and the plan (None: all as planned)."""
        for change in self.lists + ([self.xp] if self.xp else []):
            got = Counter(normalise(v) for v in getattr(after, change.attr) or [])
            if got != Counter(normalise(v) for v in change.desired):
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
    args = [f"-{NS}:Model={model}", f"-{NS}:Date={date}"]
    for name, values in (("Keywords", owned_keywords), ("HierarchicalKeywords", owned_hierarchy)):
        args += _list_args(f"-{NS}:{name}=", values, sep) or [f"-{NS}:{name}="]
    records = []
    for name, score, hierarchy in tags:
        fields = [f"Name={_struct_value(name)}", f"Score={score}"]
        if hierarchy:
            fields.append(f"Hierarchy={_struct_value(hierarchy)}")
        records.append("{" + ",".join(fields) + "}")
    args.append(f"-{NS}:Tags=[{','.join(records)}]")
    return args


def plan(
    current: Fields,
    machine: Machine | None,
    *,
    parent: str | None,
    iptc: bool,
    in_place: bool,
    photo: Fields | None = None,
    add: Sequence[str] = (),
    drop: frozenset[str] = frozenset(),
) -> Plan:
    """Compare what the file holds with what it should hold; pure, so it is cheap to test.

    All fields end up consistent: a user keyword found in any field is kept where it is and
    mirrored into the fields missing it (readers like digiKam and Immich use only the first
    non-empty field). A sidecar also carries the photo's own keywords (``photo``), because
    apps reading a sidecar ignore the embedded ones. ``add`` are new user keywords (they
    cause a write like machine tags do); ``drop`` are keys of user keywords to remove.
    """
    owner = _Owner(current, parent, drop)
    user_flat, user_hier = user_keywords(current, parent, drop)
    if photo is not None:
        photo_flat, photo_hier = user_keywords(photo, parent, drop)
        user_flat, user_hier = user_flat + photo_flat, user_hier + photo_hier
    added = [v for v in (clean(a) for a in add) if v and keyword_key(v) not in drop]
    user_flat += added
    if drop and machine:
        machine = without(machine, set(drop))
    user_flat = [v for v in user_flat if not NOT_XML.search(v)]  # they stay where they are
    user_hier = [v for v in user_hier if not NOT_XML.search(v)]
    hier = dedup(user_hier)
    components = {keyword_key(part) for value in hier for part in value.split("|")}
    flat = dedup(user_flat + [leaf(v) for v in hier])
    hier = dedup(hier + [v for v in flat if keyword_key(v) not in components])

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
        _list_change(SUBJECT, "subject", current.subject, owner.keyword, want_flat, mflat),
        _list_change(
            HIERARCHY, "hierarchical", current.hierarchical, owner.hier, want_hier, mhier
        ),
        _list_change(TAGSLIST, "tags_list", current.tags_list, is_slash_machine, slashed, mslash),
    ]
    if current.last_keyword_xmp is not None:
        lists.append(
            _list_change(LASTKW, "last_keyword_xmp", current.last_keyword_xmp, is_slash_machine,
                         slashed, mslash)
        )  # fmt: skip
    if iptc:
        short = [v for v in want_flat if len(v.encode("utf-8")) <= IPTC_KEYWORD_MAX_BYTES]
        lists.append(_list_change(IPTC, "iptc", current.iptc, owner.keyword, short, mflat))
    xp = None
    if in_place and current.xp_keywords is not None:
        separable = [v for v in want_flat if ";" not in v]  # ';' separates XPKeywords
        xp = _list_change(
            XPKW, "xp_keywords", current.xp_keywords, owner.keyword, separable, mflat
        )

    namespace = None
    if machine and machine.tags:
        namespace = (sorted(add_flat), sorted(add_hier), sorted(machine.tags), machine.model)
    return Plan(
        lists, xp, namespace, namespace != current.namespace(), iptc,
    )  # fmt: skip


# -- rejected tags, snapshots and restoring them (undo) ---------------------------------------

#: the list fields a snapshot holds, with their ExifTool names
SNAPSHOT_LISTS = (
    ("subject", SUBJECT), ("hierarchical", HIERARCHY), ("tags_list", TAGSLIST),
    ("last_keyword_xmp", LASTKW), ("iptc", IPTC),
)  # fmt: skip


def rejected(fields: Fields) -> list[str]:
    """Machine keywords phototag wrote that are gone from dc:subject: the user removed them.

    phototag's namespace still lists them (other apps leave it alone), so a value listed
    there and missing from the field was deleted by someone else, on purpose.
    """
    if not fields.owned_keywords:
        return []
    present = {keyword_key(v) for v in fields.subject}
    return [v for v in fields.owned_keywords if keyword_key(v) not in present]


def without(machine: Machine, keys: set[str]) -> Machine:
    """``machine`` minus the tags whose keyword key is in ``keys`` (rejected ones)."""
    if not keys:
        return machine
    return Machine(
        tuple(k for k in machine.keywords if keyword_key(k) not in keys),
        tuple(h for h in machine.hierarchy if keyword_key(leaf(h)) not in keys),
        tuple(t for t in machine.tags if keyword_key(t[0]) not in keys),
        machine.model,
    )


def snapshot(fields: Fields | None) -> dict[str, Any]:
    """The keyword fields of a file as JSON-able data (None: the file did not exist)."""
    if fields is None:
        return {"exists": False}
    snap: dict[str, Any] = {"exists": True}
    for attr, _tag in SNAPSHOT_LISTS:
        snap[attr] = getattr(fields, attr)
    snap["xp_keywords"] = fields.xp_keywords
    ns = fields.namespace()
    snap["namespace"] = None if ns is None else [ns[0], ns[1], [list(t) for t in ns[2]], ns[3]]
    return snap


def same_snapshot(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal keyword content, after ExifTool's normalising (order inside a list ignored)."""

    def norm(snap: dict[str, Any]) -> Any:
        if not snap.get("exists"):
            return None
        out = []
        for attr, _tag in SNAPSHOT_LISTS:
            out.append(Counter(normalise(v) for v in snap.get(attr) or []))
        out.append(Counter(normalise(v) for v in snap.get("xp_keywords") or []))
        out.append(repr(snap.get("namespace")))
        return out

    return norm(a) == norm(b)


def restore_args(snap: dict[str, Any], *, iptc: bool) -> list[str]:
    """ExifTool arguments that make a file's keyword fields exactly ``snap`` again."""
    values = [v for attr, _ in SNAPSHOT_LISTS for v in snap.get(attr) or []]
    sep = SEP if not any(SEP in v for v in values) else None
    args = ["-sep", SEP] if sep else []
    for attr, tag in SNAPSHOT_LISTS:
        if attr == "iptc" and not iptc:
            continue
        wanted = snap.get(attr) or []
        args += _list_args(f"-{tag}=", wanted, sep) or [f"-{tag}="]
    xp = snap.get("xp_keywords")
    args.append(f"-{XPKW}={';'.join(xp)}" if xp else f"-{XPKW}=")
    if iptc:
        args += ["-IPTC:CodedCharacterSet=UTF8"] if snap.get("iptc") else []
        args.append("-Photoshop:IPTCDigest=new")
    ns = snap.get("namespace")
    args.append(f"-{NS}:all=")
    if ns is not None:
        args += _namespace_args((ns[0], ns[1], [tuple(t) for t in ns[2]], ns[3]), sep)
    return args


def normalise(value: str) -> str:
    """A value as ExifTool stores it: surrounding whitespace is not kept by every writer."""
    return unicodedata.normalize("NFC", value).strip()
