"""End-to-end tests of the two clients in real headless Chromium against a real API and worker.

The playground page (GET / on the API) and the Flet app (`python -m clients.app`, its prebuilt
Flutter web client served offline) each: upload the astronaut photo, type a German sentence,
tick consent, submit, watch the progress rise and the video play for as long as the speech.
Screenshots land in test-artifacts/; FACECAST_UPDATE_DOCS_IMG=1 also refreshes the README's
pictures in docs/img/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, ViewportSize, sync_playwright

from conftest import astronaut_photo
from conftest_service import LiveService, free_port, service_env, spawn, stop_process

pytestmark = [pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMG = ROOT / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]
GERMAN = {
    "playground": "Guten Tag! Ich bin Astronautin und erzähle heute von meinem Flug ins All.",
    "app": "Hallo zusammen! Vom Weltraum aus sieht die Erde wunderschön und sehr ruhig aus.",
}
"""One sentence per client: the service reuses the video of an identical request."""
PHONE: ViewportSize = {"width": 412, "height": 915}
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
VIDEO_SIZE = "256"
FLET_READY_S = 60.0
JOB_S = 120.0
DURATION_TOLERANCE_S = 0.25
PROGRESS = re.compile(r"\((\d{1,3})%\)")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`facecast serve` with one worker, server-less (file queue and state in the data dir)."""
    root = tmp_path_factory.mktemp("clients")
    env = service_env(root / "data", None)
    port = free_port()
    logs = {"serve": root / "serve.log"}
    service = LiveService(f"http://127.0.0.1:{port}", root / "data", logs)
    try:
        command = [sys.executable, "-m", "facecast.cli", "serve", "--host", "127.0.0.1"]
        service.processes["serve"] = spawn(
            [*command, "--port", str(port), "--workers", "1"], env, logs["serve"]
        )
        service.wait_ready()
        yield service
    finally:
        service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def no_face(tmp_path: Path) -> Path:
    """A photo without a face: a smooth colour gradient."""
    image = Image.linear_gradient("L").convert("RGB").resize((384, 384))
    path = tmp_path / "gradient.png"
    image.save(path)
    return path


def shot(page: Page, name: str, docs_name: str | None = None) -> Path:
    """Screenshot to test-artifacts/; with FACECAST_UPDATE_DOCS_IMG=1 also to docs/img/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs_name and os.environ.get("FACECAST_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / docs_name)
    return path


def spoken_seconds(text: str) -> float:
    """How long the service's default German voice takes to say `text`."""
    from facecast.pipeline import synthesize

    return synthesize(text, "de").audio.duration


def watch_progress(
    read: Callable[[], int | None], done: Callable[[], bool], timeout: float = JOB_S
) -> list[int]:
    """Progress values seen (deduplicated, in order) until `done()` is true."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        if done():
            return seen
        time.sleep(0.05)
    raise AssertionError(f"not done after {timeout} s; progress seen: {seen}")


def assert_plays(video: Locator, speech: float) -> float:
    """The <video> has the speech's duration and its playhead moves."""
    video.wait_for(state="attached", timeout=30_000)
    video.evaluate(
        "v => new Promise(ok => { if (v.readyState >= 1) ok(); else v.onloadedmetadata = ok; })"
    )
    duration = float(video.evaluate("v => v.duration"))
    assert abs(duration - speech) < DURATION_TOLERANCE_S, (duration, speech)
    video.evaluate(
        "v => new Promise((ok, fail) => { v.muted = true; v.play().catch(fail);"
        " const t = setInterval(() => {"
        "   if (v.currentTime > 0.3) { clearInterval(t); ok(); } }, 50);"
        " })"
    )
    return duration


def assert_rose(progress: list[int]) -> None:
    """Progress was seen between the ends and never went back."""
    assert any(0 < p < 100 for p in progress), progress
    assert progress == sorted(progress), progress


# --------------------------------------------------------------------------- playground page


def open_playground(browser: Browser, api: LiveService, viewport: ViewportSize) -> Page:
    """A fresh tab on GET /."""
    page = browser.new_context(viewport=viewport).new_page()
    answer = page.goto(api.base_url + "/")
    assert answer is not None and answer.ok
    return page


def playground_progress(page: Page) -> int | None:
    """The <progress> value while it shows."""
    value = page.eval_on_selector("#progress", "p => p.hidden ? null : p.value")
    return None if value is None else int(value)


def test_playground_renders_german_text(api: LiveService, browser: Browser) -> None:
    page = open_playground(browser, api, DESKTOP)
    page.set_input_files("#photo", astronaut_photo())
    page.fill("#text", GERMAN["playground"])
    page.select_option("#lang", "de")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")
    voices = page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
    assert voices[0] == "" and "pico:de-DE" in voices and "espeak:default" in voices, voices
    assert "Default (pico:de-DE)" in page.inner_text("#voice")
    page.select_option("#lang", "en")  # the list follows the language
    english = page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
    assert "pico:en-US" in english and "pico:de-DE" not in english, english
    page.select_option("#lang", "de")
    page.select_option("#voice", "pico:de-DE")
    page.check("#consent")
    shot(page, "playground-form")
    page.click("#submit")
    result, error = page.locator("#result"), page.locator("#error")
    # The result shows while the live stream plays; the MP4 replaces it when the job is done.
    progress = watch_progress(
        lambda: playground_progress(page),
        lambda: page.inner_text("#stage") == "Done." or error.is_visible(),
    )
    assert not error.is_visible(), error.inner_text()
    assert result.is_visible()
    assert_rose(progress)
    video_url = page.eval_on_selector("#video", "v => v.src")
    assert page.get_attribute("#download", "href") == video_url
    assert_plays(page.locator("#video"), spoken_seconds(GERMAN["playground"]))
    shot(page, "playground-done", "playground.png")
    phone = open_playground(browser, api, PHONE)
    shot(phone, "playground-phone")


def test_playground_explains_a_photo_without_a_face(
    api: LiveService, browser: Browser, no_face: Path
) -> None:
    page = open_playground(browser, api, PHONE)
    page.set_input_files("#photo", no_face)
    page.fill("#text", "Hallo.")
    page.check("#consent")
    page.click("#submit")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=JOB_S * 1000)
    assert "No face was found" in error.inner_text()
    assert page.input_value("#text") == "Hallo."  # the form keeps what was entered
    shot(page, "playground-no-face")


def test_playground_filters_voices_by_gender_and_checks_speed(
    api: LiveService, browser: Browser
) -> None:
    page = open_playground(browser, api, DESKTOP)
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")
    page.select_option("#gender", "male")
    voices = page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
    assert voices[0] == "male" and "pico:de-DE-male" in voices and "pico:de-DE" not in voices
    page.select_option("#lang", "fr")  # the list follows the language
    french = page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
    assert "pico:fr-FR-male" in french and "pico:de-DE-male" not in french, french
    page.select_option("#lang", "de")
    page.set_input_files("#photo", astronaut_photo())
    page.fill("#text", "Hallo.")
    page.fill("#rate", "3")  # out of bounds: the server says which field
    page.check("#consent")
    shot(page, "playground-voices")
    page.click("#submit")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=JOB_S * 1000)
    assert "rate" in error.inner_text().lower(), error.inner_text()


def test_playground_shows_captions_in_a_portrait_video(api: LiveService, browser: Browser) -> None:
    page = open_playground(browser, api, DESKTOP)
    page.set_input_files("#photo", astronaut_photo())
    page.fill("#text", "Guten Abend. Hier kommen die Untertitel.")
    page.select_option("#framing", "portrait")
    # The first frame in that framing comes from POST /preview before anything is rendered.
    page.wait_for_selector("#preview[data-frame='portrait']", timeout=JOB_S * 1000)
    natural = page.eval_on_selector("#preview", "i => [i.naturalWidth, i.naturalHeight]")
    assert natural[0] == 256 and natural[1] / natural[0] == pytest.approx(16 / 9, abs=0.02)
    page.select_option("#captions", "vtt")
    page.check("#consent")
    page.click("#submit")
    error = page.locator("#error")
    page.wait_for_function(
        "document.querySelector('#stage').textContent === 'Done.' || "
        "!document.querySelector('#error').hidden",
        timeout=JOB_S * 1000,
    )
    assert not error.is_visible(), error.inner_text()
    link = page.get_attribute("#captions-download", "href") or ""
    assert link.split("?")[0].endswith("/video.vtt") and page.is_visible("#captions-download")
    # The captions are the video's own track: its cues loaded, the first one's words.
    cues = page.eval_on_selector(
        "#video",
        "v => new Promise(ok => { const t = v.textTracks[0]; t.mode = 'showing';"
        " const check = () => t.cues && t.cues.length ? ok(Array.from(t.cues, c => c.text))"
        " : setTimeout(check, 50); check(); })",
    )
    assert cues[0].startswith("Guten") and "Abend." in cues[0], cues
    width, height = page.eval_on_selector(
        "#video",
        "v => new Promise(ok => { const go = () => ok([v.videoWidth, v.videoHeight]);"
        " if (v.readyState >= 1) go(); else v.onloadedmetadata = go; })",
    )
    assert height / width == pytest.approx(16 / 9, abs=0.02), (width, height)
    shot(page, "playground-captions")


# --------------------------------------------------------------------------- Flet app


@pytest.fixture(scope="module")
def flet_app(api: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m clients.app` serving the offline Flutter web client, pointed at the API."""
    root = tmp_path_factory.mktemp("app")
    env = service_env(root / "unused", None, FLET_SECRET_KEY="test-secret", FLET_WEB_NO_CDN="1")
    env["PYTHONPATH"] = f"{ROOT}:{env['PYTHONPATH']}"
    port = free_port()
    log = root / "app.log"
    command = [sys.executable, "-m", "clients.app", "--port", str(port), "--server", api.base_url]
    process = spawn(command, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + FLET_READY_S
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"app not up:\n{log.read_text()}")
        yield url
    finally:
        stop_process(process)


def open_app(browser: Browser, url: str, viewport: ViewportSize) -> Page:
    """A tab on the Flet app, its Flutter client started and its accessibility tree on."""
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(url)
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=FLET_READY_S * 1000)
    placeholder.evaluate("p => p.click()")
    page.get_by_role("button", name="Choose photo").wait_for(timeout=FLET_READY_S * 1000)
    return page


def app_pick(page: Page, button: str, path: Path) -> None:
    """Pick a file through the app's FilePicker (a browser file chooser)."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=button).click()
    chooser.value.set_files(path)
    page.get_by_text(path.name).wait_for(timeout=30_000)


def app_fill_form(page: Page, photo: Path, text: str) -> None:
    """Photo, German text, consent."""
    app_pick(page, "Choose photo", photo)
    field = page.get_by_role("textbox", name="Text to say")
    field.click()
    page.keyboard.type(text)
    page.get_by_role("checkbox").click()


def app_progress(page: Page) -> int | None:
    """The percentage in the stage line while a job runs."""
    texts = page.get_by_text(PROGRESS).all_inner_texts()
    found = PROGRESS.search(" ".join(texts))
    return int(found.group(1)) if found else None


def test_app_renders_german_text(flet_app: str, browser: Browser) -> None:
    page = open_app(browser, flet_app, DESKTOP)
    app_fill_form(page, astronaut_photo(), GERMAN["app"])
    # The voice picker (the third dropdown: language, size, voice) lists the German voices
    # from GET /voices, the default first.
    page.get_by_role("button", name="", exact=True).nth(2).click()
    options = page.get_by_role("button", name="(", exact=False)
    page.get_by_role("button", name="Default (pico:de-DE)").wait_for(timeout=10_000)
    labels = options.all_inner_texts() + [
        options.nth(i).get_attribute("aria-label") or "" for i in range(options.count())
    ]
    assert any("espeak:default" in label for label in labels), labels
    page.get_by_role("button", name="pico:de-DE (natural)").click()
    shot(page, "app-form")
    page.get_by_role("button", name="Make the video").click()
    video, done = page.locator("video"), page.get_by_text("Done.")
    progress = watch_progress(lambda: app_progress(page), lambda: done.count() > 0)
    assert_rose(progress)
    assert_plays(video, spoken_seconds(GERMAN["app"]))
    shot(page, "app-done", "app.png")


def test_app_explains_a_photo_without_a_face(
    flet_app: str, browser: Browser, no_face: Path
) -> None:
    page = open_app(browser, flet_app, PHONE)
    app_fill_form(page, no_face, "Hallo.")
    page.get_by_role("button", name="Make the video").click()
    error = page.get_by_text("No face was found")
    error.wait_for(timeout=JOB_S * 1000)
    assert page.get_by_text(no_face.name).count() > 0  # the form keeps the chosen photo
    shot(page, "app-no-face")


def test_app_asks_for_captions_and_a_framing(
    flet_app: str, browser: Browser, api: LiveService
) -> None:
    page = open_app(browser, flet_app, DESKTOP)
    text = "Guten Abend. Die App zeigt Untertitel."
    app_fill_form(page, astronaut_photo(), text)
    # The dropdowns in order: language, size, voice, kind of voice, mouth, framing, captions.
    dropdowns = page.get_by_role("button", name="", exact=True)
    dropdowns.nth(5).click()
    page.get_by_role("button", name="Portrait 9:16").click()
    dropdowns.nth(6).click()
    page.get_by_role("button", name="Subtitles (WebVTT)").click()
    page.get_by_role("button", name="Make the video").click()
    page.get_by_text("Done.").wait_for(timeout=JOB_S * 1000)
    manifests = [json.loads(p.read_text()) for p in api.data_dir.glob("*/job.json")]
    asked = [m for m in manifests if m["request"].get("text") == text]
    assert asked, "the app's job did not reach the service"
    options = asked[0]["request"]["options"]
    assert options["framing"] == "portrait" and options["captions"] == "vtt"
    video = page.locator("video")
    video.wait_for(state="attached", timeout=30_000)
    width, height = video.evaluate(
        "v => new Promise(ok => { const go = () => ok([v.videoWidth, v.videoHeight]);"
        " if (v.readyState >= 1) go(); else v.onloadedmetadata = go; })"
    )
    assert height / width == pytest.approx(16 / 9, abs=0.02), (width, height)
    shot(page, "app-captions")
