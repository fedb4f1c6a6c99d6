"""`phototag serve`: pages and JSON API through Starlette's test client over real catalogs."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from phototag.library import Library
from phototag.web.app import MAX_UPLOAD_BYTES, create_app
from phototag.web.server import needs_token
from phototag.web.thumbnails import Thumbnails
from tests.conftest import INTERIORS, SKIMAGE_DATA, env_for_subprocess, exif_keywords, run_cli

BASE = "http://127.0.0.1:8765"
#: any URL that leaves the app: absolute http(s) or protocol-relative in src/href/url()
EXTERNAL = re.compile(
    r"""(?:src|href|action)\s*=\s*["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//"""
)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Sample photos indexed once with the real model (catalog only), in two folders."""
    folder = tmp_path_factory.mktemp("library")
    (folder / "rooms").mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "horse.png"):
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    for src in sorted(INTERIORS.glob("*.jpg"))[:6]:
        shutil.copy(src, folder / "rooms" / src.name)
    catalog = tmp_path_factory.mktemp("cat") / "catalog.db"
    code, out, err = run_cli("index", "--no-write", "--json", str(folder), catalog=catalog)
    assert code == 0, err
    assert json.loads(out)["new"] == 11
    return folder, catalog


@pytest.fixture
def client(indexed: tuple[Path, Path], tmp_path: Path) -> Iterator[TestClient]:
    _folder, catalog = indexed
    library = Library(catalog)
    app = create_app(library, write="none", thumbnails=Thumbnails(tmp_path / "thumbs"))
    with TestClient(app, base_url=BASE) as c:
        yield c
    library.close()


def _testids(html: str, testid: str, attr: str) -> list[str]:
    pattern = rf'data-testid="{testid}"[^>]*?{attr}="([^"]*)"'
    return re.findall(pattern, html)


def test_every_page_renders_with_its_hooks_and_no_external_url(
    client: TestClient, indexed: tuple[Path, Path]
) -> None:
    folder, _ = indexed
    pages = {
        "/": ['data-testid="word"', 'data-testid="search"', 'data-testid="image"'],
        "/?word=cat": ['data-testid="hit"'],
        "/browse": ['data-testid="photo"'],
        f"/browse?folder={folder / 'rooms'}": ['data-testid="photo"'],
        "/tags": ['data-testid="tag-count"'],
        "/tags/cat": ['data-testid="photo"'],
        "/status": ['data-testid="stat-photos"'],
        "/photos/1": ['data-testid="tag"', 'data-testid="keyword"', 'data-testid="reject"'],
    }
    for url, hooks in pages.items():
        page = client.get(url)
        assert page.status_code == 200, (url, page.text[:300])
        assert page.headers["content-type"].startswith("text/html")
        for hook in hooks:
            assert hook in page.text, (url, hook)
        assert not EXTERNAL.search(page.text), url
    for asset in ("/static/style.css", "/static/app.js"):
        body = client.get(asset)
        assert body.status_code == 200 and not EXTERNAL.search(body.text)


def test_search_page_ranks_the_cat_first_with_path_and_score(
    client: TestClient, indexed: tuple[Path, Path]
) -> None:
    folder, _ = indexed
    page = client.get("/", params={"word": "cat"})
    paths = _testids(page.text, "hit", "data-path")
    scores = [
        float(s) for s in re.findall(r'data-testid="hit"[^>]*data-score="([^"]+)"', page.text)
    ]
    assert paths[0] == str(folder / "chelsea.png")
    assert len(scores) == len(paths) and scores == sorted(scores, reverse=True)


def test_api_find_has_the_cli_shape(client: TestClient, indexed: tuple[Path, Path]) -> None:
    _, catalog = indexed
    api = client.get("/api/find", params={"word": "espresso cup", "limit": 3}).json()
    code, out, err = run_cli("find", "--word", "espresso cup", "--limit", "3", "--json",
                             catalog=catalog)  # fmt: skip
    assert code == 0, err
    cli = json.loads(out)
    assert [{k: v for k, v in h.items() if k not in ("id", "thumbnail")} for h in api] == cli
    assert all(isinstance(h["id"], int) and h["thumbnail"].startswith("/thumbs/") for h in api)


def test_api_status_and_photo(client: TestClient, indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    code, out, _ = run_cli("status", "--json", catalog=catalog)
    assert client.get("/api/status").json() == json.loads(out)
    hit = client.get("/api/find", params={"word": "cat", "limit": 1}).json()[0]
    photo = client.get(f"/api/photos/{hit['id']}").json()
    assert photo["path"] == str(folder / "chelsea.png")
    assert photo["width"] == 451 and photo["objects"][0]["label"] == "cat"
    assert {"tag", "score", "source"} <= set(photo["tags"][0])


def test_upload_similar_and_tags_leave_nothing_behind(
    client: TestClient, indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, _ = indexed
    img = Image.open(folder / "chelsea.png").convert("RGB")
    crop = tmp_path / "crop.jpg"
    img.crop((40, 30, 420, 280)).save(crop, quality=85)
    before = set(Path(tempfile.gettempdir()).glob("phototag-upload-*"))
    with crop.open("rb") as f:
        hits = client.post("/api/similar", files={"image": ("crop.jpg", f, "image/jpeg")},
                           data={"limit": "3"}).json()  # fmt: skip
    assert [h["path"] for h in hits][0] == str(folder / "chelsea.png") and len(hits) == 3
    with crop.open("rb") as f:
        tags = client.post("/api/tags", files={"image": ("crop.jpg", f, "image/jpeg")},
                           data={"limit": "2"}).json()  # fmt: skip
    assert tags["path"] == "crop.jpg" and len(tags["tags"]) <= 2
    assert "cat" in [t["tag"] for t in tags["tags"]]
    with crop.open("rb") as f:
        page = client.post("/", files={"image": ("crop.jpg", f, "image/jpeg")},
                           data={"mode": "tags", "count": "5"})  # fmt: skip
    assert page.status_code == 200 and 'data-tag="cat"' in page.text
    assert set(Path(tempfile.gettempdir()).glob("phototag-upload-*")) == before
    assert client.get("/api/status").json()["photos"] == 11  # never added to the library


def test_errors_are_json_one_line_and_never_tracebacks(client: TestClient) -> None:
    cases = [
        (client.get("/api/find", params={"word": "kitteh"}), 400, "unknown word 'kitteh'"),
        (client.get("/api/find"), 400, "give a word"),
        (client.get("/api/find", params={"word": "cat", "limit": "many"}), 400, "limit"),
        (client.get("/api/photos/9999"), 404, "no photo 9999 in the catalog"),
        (client.post("/api/similar", data={"limit": "3"}), 400, "choose a photo"),
        (client.post("/api/tags", files={"image": ("x.jpg", b"not a photo", "image/jpeg")}),
         422, "not a readable image"),
        (client.post("/api/photos/1/keywords", content=b"{", headers={
            "content-type": "application/json"}), 400, "not valid json"),
        (client.post("/api/photos/1/keywords", json={"remove": ["x"]}), 400, "unknown field"),
        (client.get("/api/nothing"), 404, "not found"),
    ]  # fmt: skip
    for response, status, text in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert text in error and "\n" not in error and "Traceback" not in error
    page = client.get("/photos/9999")
    assert page.status_code == 404 and "no photo 9999 in the catalog" in page.text


def test_uploads_over_50_mb_are_refused(client: TestClient) -> None:
    big = b"\0" * (MAX_UPLOAD_BYTES + 512 * 1024)
    sized = client.post("/api/tags", files={"image": ("big.jpg", big, "image/jpeg")})
    assert sized.status_code == 413 and "50 MB" in sized.json()["error"]

    def chunks() -> Iterator[bytes]:  # no content-length: counted while it streams
        yield b"--b\r\nContent-Disposition: form-data; name=image; filename=big.jpg\r\n\r\n"
        for _ in range(52):
            yield b"\0" * (1024 * 1024)

    streamed = client.post("/api/tags", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=b"})  # fmt: skip
    assert streamed.status_code == 413


def test_cross_site_posts_and_foreign_hosts_are_refused(client: TestClient) -> None:
    evil = client.post("/api/photos/1/keywords", json={"add": ["x"]},
                       headers={"origin": "http://evil.example"})  # fmt: skip
    assert evil.status_code == 403 and evil.json()["error"] == "cross-site request refused"
    fetch = client.post("/photos/1/keywords", data={"add": "x"},
                        headers={"sec-fetch-site": "cross-site"})  # fmt: skip
    assert fetch.status_code == 403
    rebinding = client.get("/api/status", headers={"host": "evil.example:8765"})
    assert rebinding.status_code == 400
    assert "x" not in [t["tag"] for t in client.get("/api/photos/1").json()["tags"]]


def test_a_token_is_asked_once_and_kept_in_a_cookie(indexed: tuple[Path, Path]) -> None:
    _, catalog = indexed
    library = Library(catalog)
    app = create_app(library, write="none", token="s3cret-token")
    with TestClient(app, base_url="http://192.168.1.20:8765") as c:
        assert c.get("/api/status").status_code == 401
        login = c.get("/status", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"].startswith("/login")
        assert c.get("/login").status_code == 401
        assert c.post("/login", data={"token": "wrong", "next": "/"}).status_code == 401
        assert (
            c.post("/login", data={"token": "s3cret-token", "next": "/status"}).status_code == 200
        )
        assert c.get("/api/status").status_code == 200  # the cookie
    with TestClient(app, base_url="http://192.168.1.20:8765") as c:
        assert c.get("/status?token=s3cret-token").status_code == 200
        c.cookies.clear()
        bearer = {"authorization": "Bearer s3cret-token"}
        assert c.get("/api/status", headers=bearer).status_code == 200
    library.close()
    assert needs_token("127.0.0.1", None) is None and needs_token("localhost", None) is None
    assert len(needs_token("0.0.0.0", None) or "") >= 20
    assert needs_token("::1", "given-token") == "given-token"


def test_thumbnails_are_upright_small_cached_and_broken_photos_get_a_placeholder(
    tmp_path: Path, catalog_path: Path
) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    img = Image.open(SKIMAGE_DATA / "rocket.jpg")  # 640 x 427, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees
    img.save(folder / "sideways.jpg", exif=exif.tobytes(), quality=90)
    shutil.copy(SKIMAGE_DATA / "coffee.png", folder / "coffee.png")
    shutil.copy(SKIMAGE_DATA / "chelsea.png", folder / "broken.png")
    code, _, err = run_cli("--backend", "fake", "index", "--no-write", str(folder),
                           catalog=catalog_path)  # fmt: skip
    assert code == 0, err
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken after indexing")
    (folder / "coffee.png").unlink()
    library = Library(catalog_path, backend="fake")
    ids = {p.path.name: p.id for p in library.catalog.photos_under(1, "").values()}
    app = create_app(library, write="none", thumbnails=Thumbnails(tmp_path / "thumbs"))
    with TestClient(app, base_url=BASE) as c:
        card = c.get(f"/api/photos/{ids['sideways.jpg']}").json()
        first = c.get(card["thumbnail"])
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        assert first.headers["cache-control"] == "no-cache"  # unversioned URL
        hit = c.get("/browse").text
        versioned = re.search(rf'src="(/thumbs/{ids["sideways.jpg"]}\.jpg\?v=[0-9a-f]+)"', hit)
        assert versioned, hit
        again = c.get(versioned.group(1))
        assert "immutable" in again.headers["cache-control"] and again.content == first.content
        thumb = Image.open(io.BytesIO(first.content))
        assert thumb.size == (214, 320)  # upright (portrait now), at most 320 px
        big = c.get(f"/previews/{ids['sideways.jpg']}.jpg").content
        assert Image.open(io.BytesIO(big)).size == (427, 640)  # upright, never enlarged
        for name in ("broken.png", "coffee.png"):
            placeholder = c.get(f"/thumbs/{ids[name]}.jpg")
            assert placeholder.status_code == 200
            assert placeholder.headers["content-type"].startswith("image/svg+xml")
            assert placeholder.headers["cache-control"] == "no-store"
        missing = c.get(f"/photos/{ids['coffee.png']}")
        assert missing.status_code == 200 and "the file is missing or unreadable" in missing.text
        assert c.get("/thumbs/4242.jpg").status_code == 404
    library.close()


def test_detected_objects_are_drawn_from_the_catalog(
    client: TestClient, indexed: tuple[Path, Path]
) -> None:
    _, catalog = indexed
    conn = sqlite3.connect(catalog)
    (pid,) = conn.execute(
        "select p.id from photos p where p.relpath = 'chelsea.png'"
    ).fetchone()
    rows = conn.execute(
        "select label, x1, y1, x2, y2 from objects where photo_id = ? order by score desc",
        [pid],
    ).fetchall()
    conn.close()
    assert rows and rows[0][0] == "cat"  # the detector found the cat when indexing
    page = client.get(f"/photos/{pid}").text
    assert page.count('data-testid="object"') == len(rows) and 'data-label="cat"' in page
    label, x1, y1, x2, y2 = rows[0]
    assert f"left: {round(x1 * 100, 2)}%; top: {round(y1 * 100, 2)}%" in page
    api = client.get(f"/api/photos/{pid}").json()["objects"]
    assert api[0]["label"] == "cat" and api[0]["box"] == pytest.approx([x1, y1, x2, y2], abs=1e-3)


def test_photos_indexed_while_serving_show_up_without_a_restart(
    tmp_path: Path, catalog_path: Path
) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(SKIMAGE_DATA / "coffee.png", folder / "coffee.png")
    assert run_cli("--backend", "fake", "index", "--no-write", str(folder),
                   catalog=catalog_path)[0] == 0  # fmt: skip
    library = Library(catalog_path, backend="fake")
    with TestClient(create_app(library, write="none"), base_url=BASE) as c:
        assert c.get("/api/status").json()["photos"] == 1
        shutil.copy(SKIMAGE_DATA / "chelsea.png", folder / "chelsea.png")
        assert run_cli("--backend", "fake", "index", "--no-write", str(folder),
                       catalog=catalog_path)[0] == 0  # fmt: skip
        assert c.get("/api/status").json()["photos"] == 2
        assert str(folder / "chelsea.png") in c.get("/browse", params={"folder": str(folder)}).text
        hits = c.get("/api/find", params={"word": "cat", "limit": 5}).json()
        assert str(folder / "chelsea.png") in [h["path"] for h in hits]
    library.close()


# -- corrections written into files ------------------------------------------------------


@pytest.fixture
def tagged_jpegs(tmp_path: Path, catalog_path: Path) -> Path:
    """JPEGs indexed with the real model's tags written into them."""
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for src in sorted(INTERIORS.glob("*.jpg"))[:3]:
        shutil.copy(src, folder / src.name)
    code, _, err = run_cli("index", str(folder), catalog=catalog_path)
    assert code == 0, err
    return folder


def richest(library: Library, folder: Path) -> int:
    """The photo with the most machine tags."""
    ids = [library.catalog.photo_at(p).id for p in sorted(folder.glob("*.jpg"))]  # type: ignore[union-attr]
    return max(ids, key=lambda i: sum(t.source == "machine" for t in library.photo(i).tags))


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_accept_reject_add_reach_the_file_and_the_catalog(
    tagged_jpegs: Path, catalog_path: Path
) -> None:
    library = Library(catalog_path)
    photo = library.photo(richest(library, tagged_jpegs))
    with TestClient(create_app(library, write="embed"), base_url=BASE) as c:
        before = c.get(f"/api/photos/{photo.id}").json()
        machine = [t["tag"] for t in before["tags"] if t["source"] == "machine"]
        assert len(machine) >= 2, before
        keep, drop = machine[0], machine[1]
        assert {keep, drop} <= set(exif_keywords(photo.path)["Subject"])
        changes = {"accept": [keep], "reject": [drop], "add": ["Zanzibar 2019"]}
        after = c.post(f"/api/photos/{photo.id}/keywords", json=changes)
        assert after.status_code == 200, after.text
        tags = {t["tag"]: t["source"] for t in after.json()["tags"]}
        assert tags[keep] == "user" and tags["Zanzibar 2019"] == "user" and drop not in tags
        assert after.json()["rejected"] == [drop.casefold()]
        fields = exif_keywords(photo.path)
        for field in ("Subject", "Keywords"):
            assert keep in fields[field] and "Zanzibar 2019" in fields[field]
            assert drop not in fields[field]
        # the page's form does the same through the same writer
        form = c.post(f"/photos/{photo.id}/keywords", data={"reject": "Zanzibar 2019"},
                      follow_redirects=False)  # fmt: skip
        assert form.status_code == 303 and form.headers["location"] == f"/photos/{photo.id}"
        assert "Zanzibar 2019" not in exif_keywords(photo.path)["Subject"]
        bad = c.post(f"/api/photos/{photo.id}/keywords", json={"add": ["x" * 300]})
        assert bad.status_code == 400 and "longer than 200" in bad.json()["error"]
    library.close()
    # phototag's own write is not a change to the next index run ...
    code, out, _ = run_cli("index", "--json", str(tagged_jpegs), catalog=catalog_path)
    assert json.loads(out)["unchanged"] == 3
    # ... an accepted tag is the user's now: untag keeps it
    code, _, err = run_cli("untag", str(photo.path), catalog=catalog_path)
    assert code == 0, err
    assert keep in exif_keywords(photo.path)["Subject"]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_a_rejected_tag_is_never_written_again_for_that_photo(
    tagged_jpegs: Path, catalog_path: Path
) -> None:
    library = Library(catalog_path)
    photo = library.photo(richest(library, tagged_jpegs))
    path = photo.path
    machine = [t.tag for t in photo.tags if t.source == "machine"]
    with library.open_writer("embed") as writer:
        library.edit_keywords(photo.id, reject=[machine[0]], writer=writer)
    library.close()
    # new pixels: re-embedded and re-tagged, the same tags come out of the model
    img = Image.open(path)
    img.putpixel((0, 0), (255, 0, 0))
    img.save(path, quality=95)
    code, out, err = run_cli("index", "--json", str(tagged_jpegs), catalog=catalog_path)
    assert code == 0 and json.loads(out)["changed"] == 1, err
    assert machine[0] not in exif_keywords(path).get("Subject", [])
    library = Library(catalog_path)
    again = [t.tag for t in library.photo(photo.id).tags]
    assert machine[0] not in again and set(machine[1:]) <= set(again)
    # adding it back by hand lifts the rejection
    with library.open_writer("embed") as writer:
        info = library.edit_keywords(photo.id, add=[machine[0]], writer=writer)
    assert info.rejected == [] and machine[0] in exif_keywords(path)["Subject"]
    library.close()


def test_catalog_only_edits_with_no_write(tagged_jpegs: Path, catalog_path: Path) -> None:
    library = Library(catalog_path)
    photo = library.photo(richest(library, tagged_jpegs))
    before = photo.path.read_bytes()
    with TestClient(create_app(library, write="none"), base_url=BASE) as c:
        after = c.post(f"/api/photos/{photo.id}/keywords", json={"add": ["only here"]}).json()
    assert "only here" in [t["tag"] for t in after["tags"]]
    assert photo.path.read_bytes() == before
    library.close()


# -- the command -------------------------------------------------------------------------


def _start_serving(catalog: Path, *extra: str) -> tuple[subprocess.Popen[str], str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "phototag", "--catalog", str(catalog), "serve", "--port", "0",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for_subprocess(),
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - started
    found = re.search(r"at (http://\S+/)", line)
    assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, found.group(1), elapsed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_url_quickly_and_stops_cleanly(
    indexed: tuple[Path, Path], sig: signal.Signals
) -> None:
    from urllib.request import urlopen

    _, catalog = indexed
    proc, url, elapsed = _start_serving(catalog)
    try:
        assert url.startswith("http://127.0.0.1:")
        # the issue asks for 1.5 s (bench/bench_serve.py measures it); loaded CI machines are slower
        assert elapsed < 6.0, f"took {elapsed:.2f} s to start"
        with urlopen(url + "api/status", timeout=10) as response:
            assert json.loads(response.read())["photos"] == 11
        with urlopen(url, timeout=10) as response:
            assert b"phototag" in response.read()
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out.strip().endswith("stopped") and "Traceback" not in err


def test_serve_on_a_busy_port_is_a_one_line_error(indexed: tuple[Path, Path]) -> None:
    import socket

    _, catalog = indexed
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        code, _, err = run_cli("serve", "--port", port, catalog=catalog)
    assert code == 1 and err.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1


def test_queries_do_not_import_the_web_frameworks(indexed: tuple[Path, Path]) -> None:
    folder, catalog = indexed
    probe = (
        "import sys\nfrom phototag.cli import main\n"
        "for args in (['find', '--word', 'dog'], ['status'], ['serve', '--help']):\n"
        "    try:\n        main(['--catalog', sys.argv[1], *args])\n"
        "    except SystemExit as e:\n        assert not e.code, e.code\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'jinja2', 'multipart') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(catalog)], capture_output=True,
                         text=True, env=env_for_subprocess())  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("HEAVY []")
