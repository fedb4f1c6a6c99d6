"""`phototag serve` in a real browser: headless Chromium driven by Selenium, a real server
process, the shipped model, and ExifTool reading the files afterwards.

Screenshots of every page land in the test's tmp dir (``screenshots/``).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import INTERIORS, SKIMAGE_DATA, env_for_subprocess, exif_keywords, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A library indexed with tags written into the files, served by `phototag serve`."""
    folder = tmp_path / "library"
    folder.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"):
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    for src in sorted(INTERIORS.glob("*.jpg"))[:4]:
        shutil.copy(src, folder / src.name)
    catalog = tmp_path / "catalog.db"
    code, _, err = run_cli("index", str(folder), catalog=catalog)
    assert code == 0, err
    proc = subprocess.Popen(
        [sys.executable, "-m", "phototag", "--catalog", str(catalog), "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for_subprocess(),
    )  # fmt: skip
    assert proc.stdout is not None
    found = re.search(r"at (http://\S+/)", proc.stdout.readline())
    assert found, proc.stderr.read() if proc.poll() is not None else "no url printed"
    try:
        yield found.group(1), folder
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_search_upload_read_accept_reject_add_in_chromium(
    server: tuple[str, Path], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    url, folder = server
    driver: WebDriver = browser  # type: ignore[assignment]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    wait = WebDriverWait(driver, 30)

    def testid(name: str) -> str:
        return f'[data-testid="{name}"]'

    def shot(name: str) -> None:
        driver.save_screenshot(str(shots / f"{name}.png"))

    def all_loaded() -> bool:
        return bool(driver.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        ))  # fmt: skip

    # search a word
    driver.get(url)
    driver.find_element(By.CSS_SELECTOR, testid("word")).send_keys("cat")
    driver.find_element(By.CSS_SELECTOR, testid("search")).click()
    hits = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, testid("hit")))
    assert hits[0].get_attribute("data-path") == str(folder / "chelsea.png")
    scores = [float(h.get_attribute("data-score") or "nan") for h in hits]
    assert scores == sorted(scores, reverse=True)
    wait.until(lambda d: all_loaded())
    shot("search")

    # upload a photo from outside the library: its tags
    crop = tmp_path / "outside" / "my-cat.jpg"
    crop.parent.mkdir()
    Image.open(folder / "chelsea.png").convert("RGB").crop((30, 20, 430, 290)).save(crop)
    driver.get(url)
    driver.find_element(By.CSS_SELECTOR, testid("mode-tags")).click()
    count = driver.find_element(By.CSS_SELECTOR, testid("limit"))
    count.clear()
    count.send_keys("5")
    driver.find_element(By.CSS_SELECTOR, testid("image")).send_keys(str(crop))
    tags = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, testid("tag")))
    words = [t.get_attribute("data-tag") for t in tags]
    assert "cat" in words and len(words) <= 5
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".upload-preview").is_displayed())
    shot("upload-tags")

    # upload it again: photos like it
    driver.get(url)
    driver.find_element(By.CSS_SELECTOR, testid("image")).send_keys(str(crop))
    hits = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, testid("hit")))
    assert hits[0].get_attribute("data-path") == str(folder / "chelsea.png")
    wait.until(lambda d: all_loaded())
    shot("upload-similar")

    # the photo page: read its tags, accept one, reject one, add a keyword
    hits[0].find_element(By.TAG_NAME, "a").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, testid("tag")))

    def tags_now() -> dict[str, str]:
        return {
            t.get_attribute("data-tag") or "": t.get_attribute("data-source") or ""
            for t in driver.find_elements(By.CSS_SELECTOR, testid("tag"))
        }

    machine = [tag for tag, source in tags_now().items() if source == "machine"]
    assert len(machine) >= 2, tags_now()
    keep, drop = machine[0], machine[1]

    def press(tag: str, button: str) -> None:
        element = driver.find_element(By.CSS_SELECTOR, f'{testid("tag")}[data-tag="{tag}"]')
        element.find_element(By.CSS_SELECTOR, testid(button)).click()
        wait.until(lambda d: _stale(element))

    press(keep, "accept")
    assert tags_now()[keep] == "user"
    press(drop, "reject")
    assert drop not in tags_now()
    box = driver.find_element(By.CSS_SELECTOR, testid("keyword"))
    box.send_keys("garden cat", Keys.ENTER)
    wait.until(lambda d: "garden cat" in tags_now())
    assert tags_now()["garden cat"] == "user"
    wait.until(lambda d: all_loaded())
    shot("photo")

    fields = exif_keywords(folder / "chelsea.png")
    assert keep in fields["Subject"] and "garden cat" in fields["Subject"]
    assert drop not in fields["Subject"]
    assert drop not in fields.get("HierarchicalSubject", [])

    # the other pages
    for name, path in (("browse", "browse"), ("tags", "tags"), ("status", "status")):
        driver.get(url + path)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "main h1"))
        wait.until(lambda d: all_loaded())
        shot(name)
    assert driver.find_element(By.CSS_SELECTOR, testid("stat-photos")).text.startswith("8")
    assert {p.name for p in shots.iterdir()} == {
        "search.png", "upload-tags.png", "upload-similar.png", "photo.png", "browse.png",
        "tags.png", "status.png",
    }  # fmt: skip
    print(json.dumps({"screenshots": str(shots)}))


def _stale(element: object) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()  # type: ignore[attr-defined]
    except WebDriverException:  # stale, or (mid-navigation) "node does not belong to the document"
        return True
    return False
