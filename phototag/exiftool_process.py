"""The ExifTool process: one ``exiftool -stay_open`` child serving a whole run.

Per-file cost drops from ~150 ms of Perl start-up to a few ms. This module only runs
commands and parses what ExifTool prints; what to write is ``keywords``' business and
how a file is replaced is ``replace``'s.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phototag.errors import ExifToolMissing
from phototag.keywords import READ_TAGS, Fields, is_utf8, latin_bytes

log = logging.getLogger(__name__)

CONFIG_FILE = Path(__file__).with_name("exiftool.config")
#: the program run unless told otherwise (``PHOTOTAG_EXIFTOOL`` names another)
DEFAULT_EXECUTABLE = "exiftool"
# IPTC is UTF-8 for us, given on each command: common args come last and would override
# the Latin read that recognises legacy 8-bit IPTC
UTF8 = ("-charset", "iptc=UTF8")
# -fast: no scan for trailers after the image data (keywords are never there)
READ_ARGS = ("-fast", "-j", "-G1", "-struct", *(f"-{tag}" for tag in READ_TAGS))
# explicit: pyexiftool's default (-G -n) would change the names and values we parse
COMMON_ARGS = ["-charset", "filename=UTF8"]


class ExifToolDied(Exception):
    """The child process stopped mid-command; a fresh one serves the next file."""


def executable_name(name: str | None = None) -> str:
    return name or os.environ.get("PHOTOTAG_EXIFTOOL") or DEFAULT_EXECUTABLE


def find_executable(name: str | None = None) -> str:
    """The ExifTool program's full path, or ``ExifToolMissing``."""
    found = shutil.which(executable_name(name))
    if found is None:
        raise ExifToolMissing()
    return found


def encode_arg(arg: str | bytes) -> bytes:
    """One argument line for ``-@ -``; a line break inside becomes a C-string line."""
    data = arg if isinstance(arg, bytes) else arg.encode("utf-8", "surrogateescape")
    if b"\n" in data or b"\r" in data:
        escaped = data.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        return b"#[CSTR]" + escaped
    return data


def json_items(out: str) -> list[dict[str, Any]]:
    """exiftool's -j output; numbers stay text ("1.50" is a keyword, not 1.5)."""
    if not out.strip():
        return []
    try:
        items = json.loads(out, parse_int=str, parse_float=str)
    except ValueError:
        log.warning("exiftool printed something that is not JSON: %.200s", out)
        return []
    return [item for item in items if isinstance(item, dict)]


def exiftool_reason(stderr: str, names: Sequence[str]) -> str:
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


class ExifToolProcess:
    """A stay-open ExifTool; started on first use and again after it dies."""

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable_name(executable)
        self._et: Any = None
        self.lock = threading.RLock()

    @property
    def pid(self) -> int | None:
        """The child's process id (benchmarks read its CPU time)."""
        process = getattr(self._et, "_process", None)
        return None if process is None else int(process.pid)

    def _alive(self) -> bool:
        """Whether the child still runs; pyexiftool's "died" UserWarning is not the user's news."""
        if self._et is None:
            return False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            alive = bool(self._et.running)
        for warning in caught:
            log.debug("exiftool: %s", warning.message)
        return alive

    def start(self) -> None:
        with self.lock:
            if not self._alive():
                self._et = None
                self._start()

    def close(self) -> None:
        with self.lock:
            et, self._et = self._et, None
            if et is None:
                return
            # pyexiftool warns (UserWarning, with its own file path) when the child is already
            # gone; that is no news to the user, so it goes to the debug log instead
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    if et.running:
                        et.terminate()
                except Exception:  # noqa: BLE001 - the process is going away either way
                    log.debug("exiftool did not stop cleanly", exc_info=True)
            for warning in caught:
                log.debug("exiftool: %s", warning.message)

    def _start(self) -> None:
        executable = find_executable(self.executable)
        from exiftool import ExifToolHelper

        et = ExifToolHelper(
            executable=executable,
            common_args=list(COMMON_ARGS),
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

    def execute(self, args: Sequence[str | bytes]) -> tuple[str, str, int]:
        """Run one exiftool command: (stdout, stderr, exit status)."""
        from exiftool.exceptions import ExifToolException

        with self.lock:
            self.start()
            try:
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    out = self._et.execute(*(encode_arg(a) for a in args), raw_bytes=True)
                err, status = self._et.last_stderr, self._et.last_status
            except (ExifToolException, OSError, ValueError) as exc:
                self.close()  # a fresh process serves the next file
                raise ExifToolDied(str(exc)) from exc
        decode = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
        return decode(out), decode(err), int(status)

    def read(
        self, files: Sequence[Path], *, first: Sequence[str | bytes] = ()
    ) -> tuple[dict[Path, Fields], dict[Path, str], str]:
        """Fields of many files in one exiftool call: (fields, reason per failure, stderr).

        ``first`` is a command run just before, in the same round trip (a write whose copy
        is then read back): one call per file instead of two.
        """
        prefix = [*UTF8, *first, "-execute"] if first else []
        names = [os.fsencode(f) for f in files]
        out, err, _ = self.execute([*prefix, *UTF8, *READ_ARGS, *names])
        if first:
            out = out.partition("{ready}")[2]
        by_name = {str(f): f for f in files}
        fields: dict[Path, Fields] = {}
        errors: dict[Path, str] = {}
        for item in json_items(out):
            path = by_name.get(item.get("SourceFile", ""))
            if path is None:
                continue
            parsed = Fields.from_json(item)
            if parsed.error:
                errors[path] = "exiftool: " + parsed.error.lower()
            else:
                fields[path] = parsed
        for path in files:
            if path not in fields and path not in errors:
                errors[path] = exiftool_reason(err, [str(path)])
        suspects = [path for path, f in fields.items() if f.iptc_suspect]
        if suspects:
            self._resolve_legacy_iptc({path: fields[path] for path in suspects})
        return fields, errors, err

    def _resolve_legacy_iptc(self, fields: dict[Path, Fields]) -> None:
        """Read suspect IPTC again as Latin; bytes that are not UTF-8 make it legacy text.

        Declaring such IPTC UTF-8 would garble the user's keywords and captions, so it stays
        untouched and its keywords are taken as decoded here.
        """
        args = ["-charset", "iptc=Latin", "-j", "-G1", "-IPTC:all"]
        out, _, _ = self.execute([*args, *(os.fsencode(f) for f in fields)])
        by_name = {str(f): f for f in fields}
        for item in json_items(out):
            path = by_name.get(item.get("SourceFile", ""))
            if path is None:
                continue
            latin = Fields.from_json(item)
            if not all(is_utf8(latin_bytes(v)) for v in latin.iptc_text):
                fields[path].iptc = latin.iptc
                fields[path].iptc_legacy = True
