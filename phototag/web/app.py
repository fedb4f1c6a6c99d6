"""The ASGI app behind ``phototag serve``: server-rendered pages and a JSON API, one code path.

Every page and API call goes through the ``Library`` facade, one call at a time (the
catalog connection and the ExifTool process are shared). Photos are only ever served by
catalog id, never by a path from the request. Uploads go to a private temp folder and are
deleted after use.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phototag.catalog import Photo
from phototag.errors import (
    CatalogError,
    ExifToolMissing,
    InvalidKeyword,
    PhotoError,
    PhototagError,
    UnknownPhoto,
    UnknownWord,
    UnreadableImage,
    WriteError,
)
from phototag.library import Hit, Library, PhotoInfo
from phototag.scanner import display
from phototag.web.thumbnails import PREVIEW_SIZE, THUMB_SIZE, Thumbnails

log = logging.getLogger(__name__)
_T = TypeVar("_T")

HERE = Path(__file__).parent
#: an upload larger than this is refused before it is read
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: room for the multipart framing and the small fields around the photo
_BODY_SLACK = 256 * 1024
MAX_LIMIT = 500
PAGE_SIZE = 60
COOKIE = "phototag_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_IMMUTABLE = "public, max-age=31536000, immutable"


class RequestTooLarge(PhototagError):
    pass


class BadRequest(PhototagError):
    pass


def status_for(exc: BaseException) -> int:
    """HTTP status of a typed error: 4xx for what the user can fix, 5xx for the rest."""
    if isinstance(exc, HTTPException):
        return exc.status_code
    table: list[tuple[type[BaseException], int]] = [
        (UnknownPhoto, 404), (RequestTooLarge, 413), (UnknownWord, 400),
        (InvalidKeyword, 400), (BadRequest, 400), (UnreadableImage, 422), (WriteError, 409),
        (PhotoError, 409), (ExifToolMissing, 503), (CatalogError, 500),
    ]  # fmt: skip
    return next((code for cls, code in table if isinstance(exc, cls)), 500)


def message_for(exc: BaseException) -> str:
    """One lowercase line, as the CLI prints it (never a traceback)."""
    if isinstance(exc, HTTPException):
        return str(exc.detail).lower() if exc.detail else "request refused"
    if isinstance(exc, PhotoError):
        return f"{display(exc.path)}: {exc.reason}"
    if isinstance(exc, PhototagError):
        return str(exc)
    return "internal error; the server log has the details"


# -- view models -------------------------------------------------------------------------


@dataclass
class Card:
    """One picture in a grid."""

    id: int
    path: Path
    thumb: str
    score: float | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "thumbnail": self.thumb}


def thumb_url(photo_id: int, content_hash: str | None, kind: str = "thumbs") -> str:
    version = f"?v={content_hash[:16]}" if content_hash else ""
    return f"/{kind}/{photo_id}.jpg{version}"


def _unique(tags: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for tag in tags:
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            out.append(tag)
    return out


# -- shared state ------------------------------------------------------------------------


class WebState:
    """The library, one lock around it, the lazily started writer and the thumbnail cache."""

    def __init__(
        self,
        library: Library,
        *,
        write: str,
        token: str | None,
        thumbnails: Thumbnails,
    ) -> None:
        self.library = library
        self.write = write
        self.token = token
        self.thumbnails = thumbnails
        self.lock = threading.RLock()
        self._stack = ExitStack()
        self._writer: Any = None
        self._cache: dict[str, tuple[tuple[int, int], Any]] = {}

    def call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        with self.lock:
            return fn(*args, **kwargs)

    def cached(self, name: str, fn: Callable[[], _T]) -> _T:
        """``fn()`` computed once per catalog state: whole-library listings (folders, months,
        tag counts) cost a scan of every row, and most page views change nothing."""
        with self.lock:
            version = self.library.catalog.data_version()
            hit = self._cache.get(name)
            if hit is not None and hit[0] == version:
                return hit[1]  # type: ignore[no-any-return]
            value = fn()
            self._cache[name] = (self.library.catalog.data_version(), value)
            return value

    def writer(self) -> Any:
        """The metadata writer for edits (one ExifTool process, started on the first edit)."""
        with self.lock:
            if self._writer is None and self.write != "none":
                self._writer = self._stack.enter_context(self.library.open_writer(self.write))
            return self._writer

    def close(self) -> None:
        with self.lock:
            self._stack.close()
            self._writer = None

    def cards(self, hits: Sequence[Hit]) -> list[Card]:
        """Grid cards for search hits (thumbnail URLs carry the content hash)."""
        ids = [h.id for h in hits if h.id is not None]
        photos = self.library.catalog.photos_by_id(ids)
        return [
            Card(h.id, h.path, thumb_url(h.id, photos[h.id].hash), h.score, _unique(h.tags)[:4])
            for h in hits
            if h.id is not None and h.id in photos
        ]

    def photo_cards(self, photos: Sequence[Photo]) -> list[Card]:
        tags = self.library.catalog.tags_of(p.id for p in photos)
        return [
            Card(p.id, p.path, thumb_url(p.id, p.hash), None,
                 _unique([t.tag for t, _ in tags.get(p.id, [])])[:4])
            for p in photos
        ]  # fmt: skip


def _state(request: Request) -> WebState:
    return request.app.state.web  # type: ignore[no-any-return]


async def _run(request: Request, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """A library call in a worker thread, under the library lock."""
    return await run_in_threadpool(_state(request).call, fn, *args, **kwargs)


def _limit(value: str | None, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        limit = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise BadRequest(f"limit must be a whole number, not '{value}'") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _page(value: str | None) -> int:
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1


# -- uploads -----------------------------------------------------------------------------


async def _save_upload(upload: Any) -> Path:
    """The uploaded photo in a private temp folder (never in the library); caller deletes it."""
    if not isinstance(upload, UploadFile):
        raise BadRequest("choose a photo to upload (form field 'image')")
    folder = Path(tempfile.mkdtemp(prefix="phototag-upload-"))
    suffix = Path(upload.filename or "").suffix.lower()
    suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""
    target = folder / f"upload{suffix}"
    written = 0
    try:
        with open(target, "wb") as out:
            while chunk := await upload.read(1 << 20):
                written += len(chunk)
                if written > MAX_UPLOAD_BYTES:
                    raise RequestTooLarge("upload larger than 50 MB; choose a smaller photo")
                out.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if written == 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise BadRequest("the uploaded file is empty")
    return target


@asynccontextmanager
async def uploaded(request: Request) -> AsyncIterator[tuple[Path, str, dict[str, str]]]:
    """(temp path, original name, the other form fields) of a multipart upload."""
    async with request.form(max_files=1, max_fields=20) as form:
        upload = form.get("image")
        name = getattr(upload, "filename", None) or "upload"
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        path = await _save_upload(upload)
    try:
        yield path, os.path.basename(name), fields
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def _tags_of_upload(library: Library, path: Path, limit: int) -> list[dict[str, Any]]:
    result = library.tags(path)
    return [{"tag": t.tag, "score": round(t.score, 6)} for t in result.tags[:limit]]


# -- JSON API ----------------------------------------------------------------------------


async def api_find(request: Request) -> Response:
    word = (request.query_params.get("word") or "").strip()
    if not word:
        raise BadRequest("give a word or phrase: /api/find?word=dog")
    limit = _limit(request.query_params.get("limit"), 20)
    hits = await _run(request, _state(request).library.find, word, limit=limit)
    return JSONResponse(await _hit_dicts(request, hits))


async def _hit_dicts(request: Request, hits: list[Hit]) -> list[dict[str, Any]]:
    cards = {c.id: c for c in await _run(request, _state(request).cards, hits)}
    return [
        {**h.as_dict(), "id": h.id, "thumbnail": cards[h.id].thumb} for h in hits if h.id in cards
    ]


async def api_similar(request: Request) -> Response:
    async with uploaded(request) as (path, _name, fields):
        limit = _limit(fields.get("limit") or request.query_params.get("limit"), 20)
        hits = await _run(request, _state(request).library.similar, path, limit=limit)
        return JSONResponse(await _hit_dicts(request, hits))


async def api_tags(request: Request) -> Response:
    async with uploaded(request) as (path, name, fields):
        limit = _limit(fields.get("limit") or request.query_params.get("limit"), 20)
        tags = await _run(request, _tags_of_upload, _state(request).library, path, limit)
        return JSONResponse({"path": name, "tags": tags})


async def api_status(request: Request) -> Response:
    return JSONResponse(await _run(request, _state(request).library.status))


async def api_photo(request: Request) -> Response:
    info = await _run(request, _state(request).library.photo, request.path_params["id"])
    return JSONResponse(_photo_dict(info))


def _photo_dict(info: PhotoInfo) -> dict[str, Any]:
    return {
        **info.as_dict(),
        "thumbnail": f"/thumbs/{info.id}.jpg",
        "preview": f"/previews/{info.id}.jpg",
    }


def _edit(state: WebState, photo_id: int, changes: dict[str, list[str]]) -> PhotoInfo:
    writer = state.writer()
    return state.library.edit_keywords(photo_id, writer=writer, **changes)


def _changes(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object: {"add": [...], "accept": [...], "reject": [...]}')
    unknown = sorted(set(body) - {"add", "accept", "reject"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; use add, accept, reject")
    changes = {}
    for key in ("add", "accept", "reject"):
        value = body.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{key} must be a list of keywords")
        changes[key] = value
    return changes


async def api_keywords(request: Request) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send the changes as application/json")
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the request body is not valid json") from None
    changes = _changes(body)
    photo_id = request.path_params["id"]
    info = await run_in_threadpool(_edit, _state(request), photo_id, changes)
    return JSONResponse(_photo_dict(info))


# -- pages -------------------------------------------------------------------------------


def _render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    context.setdefault("nav", name.split(".")[0])
    return templates.TemplateResponse(request, name, context, status_code=status)


async def search_page(request: Request) -> Response:
    word = (request.query_params.get("word") or "").strip()
    limit = _limit(request.query_params.get("limit"), 40)
    context: dict[str, Any] = {"word": word, "limit": limit, "mode": "word", "cards": None}
    if word:
        state = _state(request)
        try:
            hits = await _run(request, state.library.find, word, limit=limit)
        except UnknownWord as exc:
            return _render(request, "search.html", 400, error=str(exc), **context)
        context["cards"] = await _run(request, state.cards, hits)
    return _render(request, "search.html", **context)


async def search_upload(request: Request) -> Response:
    state = _state(request)
    async with uploaded(request) as (path, name, fields):
        mode = fields.get("mode", "similar")
        if mode not in ("similar", "tags"):
            raise BadRequest("mode must be 'similar' or 'tags'")
        if mode == "tags":  # the page's "number of tags" input
            limit = _limit(fields.get("count") or fields.get("limit"), 10)
        else:
            limit = _limit(fields.get("limit"), 40)
        context: dict[str, Any] = {
            "word": "", "limit": limit, "mode": mode, "upload": name, "cards": None,
        }  # fmt: skip
        try:
            if mode == "similar":
                hits = await _run(request, state.library.similar, path, limit=limit)
                context["cards"] = await _run(request, state.cards, hits)
            else:
                context["upload_tags"] = await _run(
                    request, _tags_of_upload, state.library, path, limit
                )
        except UnreadableImage as exc:
            return _render(request, "search.html", 422, error=f"{name}: {exc.reason}", **context)
    return _render(request, "search.html", **context)


async def photo_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    state = _state(request)
    photo_id = request.path_params["id"]
    info = await _run(request, state.library.photo, photo_id)
    similar = await _run(request, state.library.similar_to, photo_id, limit=12)
    cards = await _run(request, state.cards, similar)
    on_disk = info.status == "ok" and info.path.is_file()
    problem = None if on_disk else f"{display(info.path)}: the file is missing or unreadable"
    return _render(
        request, "photo.html", status, photo=info, cards=cards, error=error or problem,
        preview=thumb_url(info.id, None, "previews"), write=state.write,
    )  # fmt: skip


async def photo_keywords(request: Request) -> Response:
    """The page's form: add (text input), accept / reject (the buttons of a tag)."""
    async with request.form(max_files=0, max_fields=20) as form:
        changes = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in
                   ("add", "accept", "reject")}  # fmt: skip
    photo_id = request.path_params["id"]
    try:
        await run_in_threadpool(_edit, _state(request), photo_id, changes)
    except (InvalidKeyword, PhotoError, ExifToolMissing) as exc:
        return await photo_page(request, error=message_for(exc), status=status_for(exc))
    return RedirectResponse(f"/photos/{photo_id}", status_code=303)


async def browse_page(request: Request) -> Response:
    state = _state(request)
    catalog = state.library.catalog
    params = request.query_params
    page = _page(params.get("page"))
    folders = await _run(request, state.cached, "folders", catalog.folders)
    by_month = await _run(request, state.cached, "months", catalog.photos_by_month)
    folder, month = params.get("folder"), params.get("month")
    if not folder and not month and by_month:
        month = by_month[0][0]
    offset = (page - 1) * PAGE_SIZE
    if folder:
        photos, total = await _run(
            request, catalog.photos_in_folder, Path(folder), offset=offset, limit=PAGE_SIZE
        )
        title, query = display(folder), {"folder": folder}
    elif month:
        ids = dict(by_month).get(month, [])
        found = await _run(request, catalog.photos_by_id, ids[offset : offset + PAGE_SIZE])
        photos = [found[i] for i in ids[offset : offset + PAGE_SIZE] if i in found]
        total, title, query = len(ids), month, {"month": month}
    else:
        photos, total, title, query = [], 0, "", {}
    cards = await _run(request, state.photo_cards, photos)
    roots = await _run(request, catalog.roots)
    months = [(m, len(ids)) for m, ids in by_month]
    return _render(
        request, "browse.html", cards=cards, total=total, page=page, title=title,
        pages=_pager(query, page, total), folders=_folder_rows(folders, roots),
        years=_years(months), folder=folder, month=month,
    )  # fmt: skip


def _pager(query: dict[str, str], page: int, total: int) -> dict[str, str | None]:
    last = max(1, -(-total // PAGE_SIZE))

    def url(n: int) -> str:
        return "?" + urlencode({**query, "page": n})

    return {
        "prev": url(page - 1) if page > 1 else None,
        "next": url(page + 1) if page < last else None,
        "label": f"page {page} of {last}",
    }


def _folder_rows(folders: list[tuple[str, int]], roots: list[str]) -> list[dict[str, Any]]:
    """Folders indented under their library root, for the sidebar."""
    rows = []
    for path, count in folders:
        root = next((r for r in sorted(roots, key=len, reverse=True)
                     if path == r or path.startswith(r.rstrip("/") + "/")), None)  # fmt: skip
        rel = os.path.relpath(path, root) if root else path
        depth = 0 if rel == "." else rel.count("/") + 1
        label = display(path) if depth == 0 else os.path.basename(path)
        rows.append({"path": path, "label": label, "count": count, "depth": min(depth, 6)})
    return rows


def _years(months: list[tuple[str, int]]) -> list[dict[str, Any]]:
    years: dict[str, list[tuple[str, int]]] = {}
    for month, count in months:
        years.setdefault(month[:4], []).append((month, count))
    return [{"year": y, "months": m, "count": sum(c for _, c in m)} for y, m in years.items()]


async def tags_page(request: Request) -> Response:
    catalog = _state(request).library.catalog
    counts = await _run(request, _state(request).cached, "tags", lambda: catalog.tag_counts(None))
    top = max((c for _, c in counts), default=1)
    return _render(request, "tags.html", counts=counts, top=top)


async def tag_page(request: Request) -> Response:
    state = _state(request)
    tag = request.path_params["tag"]
    page = _page(request.query_params.get("page"))
    photos, total = await _run(
        request, state.library.catalog.photos_with_tag, tag,
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
    )  # fmt: skip
    cards = await _run(request, state.photo_cards, photos)
    return _render(
        request, "tag.html", nav="tags", tag=tag, cards=cards, total=total,
        pages=_pager({}, page, total),
    )  # fmt: skip


async def status_page(request: Request) -> Response:
    info = await _run(request, _state(request).library.status)
    return _render(request, "status.html", info=info)


# -- pictures ----------------------------------------------------------------------------


async def thumbnail(request: Request) -> Response:
    return await _picture(request, THUMB_SIZE)


async def preview(request: Request) -> Response:
    return await _picture(request, PREVIEW_SIZE)


async def _picture(request: Request, size: int) -> Response:
    """One worker-thread hop: the catalog row (only photos in the catalog are served), then
    the cached JPEG, made first when it is not there yet."""
    state = _state(request)
    found = await run_in_threadpool(_picture_bytes, state, request.path_params["id"], size)
    if isinstance(found, Response):
        return found
    data, content_hash = found
    versioned = bool(content_hash) and request.query_params.get("v") == content_hash[:16]
    headers = {"Cache-Control": _IMMUTABLE if versioned else "no-cache"}
    return Response(data, headers=headers, media_type="image/jpeg")


def _picture_bytes(state: WebState, photo_id: int, size: int) -> tuple[bytes, str] | Response:
    photo = state.call(state.library.catalog.photos_by_id, [photo_id]).get(photo_id)
    if photo is None:
        return _placeholder("not in the catalog", 404)
    if photo.status != "ok":
        return _placeholder(photo.error or "the file is missing")
    try:
        picture = state.thumbnails.get(photo.path, photo.hash, size)
        return picture.path.read_bytes(), photo.hash or ""
    except PhotoError as exc:
        return _placeholder(exc.reason)
    except OSError as exc:  # the cache folder is not writable: still a placeholder, not a 500
        log.warning("thumbnail cache: %s", exc)
        return _placeholder("thumbnail cache not writable")


@functools.lru_cache(maxsize=1)
def _placeholder_svg() -> bytes:
    return (HERE / "static" / "placeholder.svg").read_bytes()


def _placeholder(reason: str, status: int = 200) -> Response:
    body = _placeholder_svg()
    headers = {"Cache-Control": "no-store", "X-Phototag-Placeholder": reason[:200]}
    return Response(body, status, headers=headers, media_type="image/svg+xml")


# -- token -------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    return _render(request, "login.html", 401, next=request.query_params.get("next", "/"))


async def login(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=5) as form:
        given, target = str(form.get("token", "")), str(form.get("next", "/"))
    token = _state(request).token
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        return _render(request, "login.html", 401, next=target, error="wrong token")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, token)
    return response


def _set_cookie(response: Response, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")


# -- guard middleware --------------------------------------------------------------------


class Guard:
    """Token (when set), same-origin POSTs, and the upload size limit, before any route runs."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        if self.token and not path.startswith(("/static/", "/login")):
            response = self._check_token(request)
            if response is not None:
                await response(scope, receive, send)
                return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            refusal = _cross_site(request)
            if refusal:
                await _refuse(scope, receive, send, 403, refusal)
                return
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body:
                await _refuse(scope, receive, send, 413, "upload larger than 50 MB")
                return
            receive = self._counting(receive)
        await self.app(scope, receive, send)

    def _check_token(self, request: Request) -> Response | None:
        assert self.token
        given = request.cookies.get(COOKIE) or ""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        query = request.query_params.get("token")
        if query and hmac.compare_digest(query.encode(), self.token.encode()):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            url = request.url.path + ("?" + urlencode(rest) if rest else "")
            response = RedirectResponse(url, status_code=303)
            _set_cookie(response, self.token)
            return response
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"error": "this server needs its token"}, 401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise RequestTooLarge("upload larger than 50 MB; choose a smaller photo")
            return message

        return counted


def _cross_site(request: Request) -> str | None:
    """Why a state-changing request looks cross-site (None: it does not)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None:
        if origin != f"{request.url.scheme}://{host}":
            return "cross-site request refused"
        return None
    site = request.headers.get("sec-fetch-site")
    if site not in (None, "same-origin", "none"):
        return "cross-site request refused"
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    await JSONResponse({"error": message}, status)(scope, receive, send)


# -- errors ------------------------------------------------------------------------------


async def on_error(request: Request, exc: Exception) -> Response:
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, PhototagError):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    message = message_for(exc)
    if request.url.path.startswith("/api/") or request.method != "GET":
        if not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
            "accept", ""
        ):
            return _render(request, "error.html", status, nav="", message=message)
        return JSONResponse({"error": message}, status)
    return _render(request, "error.html", status, nav="", message=message)


# -- the app -----------------------------------------------------------------------------


def _filesize(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def create_app(
    library: Library,
    *,
    write: str | None = None,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    thumbnails: Thumbnails | None = None,
) -> Starlette:
    """The web app over ``library``.

    ``write`` is how keyword changes reach files ("embed", "sidecar", "none"; default: the
    library's config). ``allowed_hosts`` guards against DNS rebinding (the loopback names
    by default; ``["*"]`` when a token protects the server).
    """
    state = WebState(
        library, write=write or library.config.write, token=token,
        thumbnails=thumbnails or Thumbnails(),
    )  # fmt: skip
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["filesize"] = _filesize
    templates.env.filters["display"] = display
    templates.env.globals["token_required"] = bool(token)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await run_in_threadpool(state.close)

    hosts = list(allowed_hosts) if allowed_hosts else (["*"] if token else list(LOOPBACK_HOSTS))
    routes = [
        Route("/", search_page, methods=["GET"]),
        Route("/", search_upload, methods=["POST"]),
        Route("/photos/{id:int}", photo_page, methods=["GET"]),
        Route("/photos/{id:int}/keywords", photo_keywords, methods=["POST"]),
        Route("/browse", browse_page),
        Route("/tags", tags_page),
        Route("/tags/{tag:path}", tag_page),
        Route("/status", status_page),
        Route("/thumbs/{id:int}.jpg", thumbnail),
        Route("/previews/{id:int}.jpg", preview),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/api/find", api_find),
        Route("/api/similar", api_similar, methods=["POST"]),
        Route("/api/tags", api_tags, methods=["POST"]),
        Route("/api/status", api_status),
        Route("/api/photos/{id:int}", api_photo),
        Route("/api/photos/{id:int}/keywords", api_keywords, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        Middleware(Guard, token=token, max_body=MAX_UPLOAD_BYTES + _BODY_SLACK),
    ]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan,
        exception_handlers={PhototagError: on_error, HTTPException: on_error, Exception: on_error},
    )  # fmt: skip
    app.state.web = state
    app.state.templates = templates
    return app
