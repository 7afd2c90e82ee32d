"""The facecast Flet app: photo + text or audio in, a talking-head video out.

One screen: a form (server, photo, speech, consent) and a result panel (progress, player,
earlier results). Side by side on a wide window, stacked on a phone.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import flet as ft
import flet_video as fv
import uvicorn

from clients.app.api import AnimateRequest, ApiError, FacecastClient, Job, Upload, Voice
from clients.app.web import MediaProxy, build_web_app

DEFAULT_SERVER = "http://127.0.0.1:8000"
SERVER_KEY = "facecast.server_url"
API_KEY_KEY = "facecast.api_key"
UPLOAD_TTL_S = 600
UPLOAD_WAIT_S = 120.0
DEFAULT_VOICE = "default"
"""Dropdown key of "the server's default voice for the language" (no `voice` sent)."""
LANGUAGES = {"de": "German", "en": "English", "fr": "French", "es": "Spanish", "it": "Italian"}
ANY_GENDER = "any"
GENDERS = {ANY_GENDER: "Any voice", "female": "Female voices", "male": "Male voices"}
"""Filter of the voice picker: the gender presentation GET /voices gives each voice."""
PROSODY = (
    # field, label, min, max, default, choices offered
    ("rate", "Speed", 0.5, 2.0, 1.0, (0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0)),
    ("pitch", "Pitch (semitones)", -12.0, 12.0, 0.0, (-12, -7, -5, -3, -2, 0, 2, 3, 5, 7, 12)),
    ("volume", "Volume (dB)", -20.0, 10.0, 0.0, (-20, -12, -6, -3, 0, 3, 6, 10)),
)
"""The speech pickers. Their bounds and defaults are facecast.options' (the server checks
them; tests/test_voicing.py holds the two equal): the app is built without facecast. Pickers,
not sliders: Flet's web slider kept its semantics moving, so nothing near it could be tapped
reliably by the browser tests."""
SIZES = ("256", "512")
FRAMINGS = {
    "square": "Square, on the face",
    "portrait": "Portrait 9:16",
    "landscape": "Landscape 16:9",
    "full": "The whole photo",
}
ASPECTS = {"square": 1.0, "portrait": 9 / 16, "landscape": 16 / 9}
"""Width over height of each framing's video (the whole photo keeps the photo's: shown square)."""
NO_CAPTIONS = "none"
CAPTIONS = {
    NO_CAPTIONS: "No captions",
    "vtt": "Subtitles (WebVTT)",
    "srt": "Subtitles (SRT)",
    "burn": "Burned into the video",
}
PHONE_BREAK = "md"


@dataclass(frozen=True)
class AppConfig:
    """How the app was started: the server to preselect, where web uploads land, and (when
    served to browsers) the proxy that plays videos from the app's own origin."""

    server_url: str | None
    upload_dir: Path
    media: MediaProxy | None = None


class FileSlot:
    """One file the form needs (photo, audio, voice sample): a picker, a button, a label.

    On desktop and mobile the picked file has a path; in the browser it is uploaded to the
    Flet server's upload directory first (that needs FLET_SECRET_KEY) and read from there.
    """

    def __init__(self, page: ft.Page, config: AppConfig, label: str, kind: ft.FilePickerFileType):
        self.page = page
        self.config = config
        self.kind = kind
        self.upload: Upload | None = None
        self.picker = ft.FilePicker(on_upload=self._on_upload)
        self.name = ft.Text("No file chosen", italic=True)
        self.button = ft.OutlinedButton(label, icon=ft.Icons.UPLOAD_FILE, on_click=self.pick)
        self.row = ft.Row([self.button, self.name], wrap=True)
        self._uploaded: dict[str, asyncio.Event] = {}
        self.on_picked: Callable[[], None] | None = None

    async def pick(self, _: ft.Event[ft.OutlinedButton] | None = None) -> None:
        """Open the file dialog and load the chosen file."""
        files = await self.picker.pick_files(file_type=self.kind)
        if not files:
            return
        chosen = files[0]
        if chosen.path:
            self.upload = Upload.from_path(Path(chosen.path))
        else:
            self.upload = Upload(chosen.name, await self._upload(chosen))
        self.name.value = chosen.name
        self.name.italic = False
        if self.on_picked is not None:
            self.on_picked()
        self.page.update()

    async def _upload(self, chosen: ft.FilePickerFile) -> bytes:
        stored = f"{uuid.uuid4().hex}-{chosen.name}"
        done = self._uploaded[stored] = asyncio.Event()
        url = self.page.get_upload_url(stored, UPLOAD_TTL_S)
        await self.picker.upload([ft.FilePickerUploadFile(upload_url=url, id=chosen.id)])
        async with asyncio.timeout(UPLOAD_WAIT_S):
            await done.wait()
        path = self.config.upload_dir / stored
        data = path.read_bytes()
        path.unlink(missing_ok=True)
        return data

    def _on_upload(self, event: ft.FilePickerUploadEvent) -> None:
        if event.error:
            self.name.value = f"Upload failed: {event.error}"
        if event.progress == 1.0 or event.error:
            for stored, waiter in self._uploaded.items():
                if stored.endswith(event.file_name) or stored == event.file_name:
                    waiter.set()


class FacecastApp:
    """The app's state and controls for one page (one browser tab or window)."""

    def __init__(self, page: ft.Page, config: AppConfig) -> None:
        self.page = page
        self.config = config
        self.prefs = ft.SharedPreferences()
        self.launcher = ft.UrlLauncher()
        self.server = ft.TextField(
            label="Server URL", value=config.server_url or DEFAULT_SERVER, dense=True
        )
        self.api_key = ft.TextField(
            label="API key", password=True, can_reveal_password=True, dense=True, visible=False
        )
        self.photo = FileSlot(page, config, "Choose photo", ft.FilePickerFileType.IMAGE)
        self.photo.on_picked = self._show_preview
        self.preview = ft.Image(
            src=b"", width=96, height=96, fit=ft.BoxFit.COVER, visible=False, border_radius=8
        )
        self.photo.row.controls.append(self.preview)
        self.mode = ft.RadioGroup(
            value="text",
            content=ft.Row(
                [ft.Radio(value="text", label="Text"), ft.Radio(value="audio", label="Audio file")]
            ),
            on_change=self._mode_changed,
        )
        self.text = ft.TextField(label="Text to say", multiline=True, min_lines=2, max_lines=5)
        self.lang = ft.Dropdown(
            label="Language",
            value="de",
            dense=True,
            width=180,
            options=[ft.DropdownOption(key=k, text=v) for k, v in LANGUAGES.items()],
            on_select=self._lang_changed,
        )
        self.voice = ft.Dropdown(
            label="Voice",
            value=DEFAULT_VOICE,
            dense=True,
            width=320,
            options=[ft.DropdownOption(key=DEFAULT_VOICE, text="Default voice")],
        )
        self.gender = ft.Dropdown(
            label="Kind of voice",
            value=ANY_GENDER,
            dense=True,
            width=180,
            options=[ft.DropdownOption(key=k, text=v) for k, v in GENDERS.items()],
            on_select=self._lang_changed,
        )
        self.prosody = {
            name: ft.Dropdown(
                label=label,
                value=f"{default:g}",
                dense=True,
                width=150,
                options=[ft.DropdownOption(key=f"{c:g}", text=f"{c:g}") for c in choices],
            )
            for name, label, _, _, default, choices in PROSODY
        }
        self.speech_pickers = ft.Row(list(self.prosody.values()), wrap=True)
        self.catalogue: list[Voice] = []
        self.size = ft.Dropdown(
            label="Video size",
            value=SIZES[0],
            dense=True,
            width=140,
            options=[ft.DropdownOption(key=s, text=f"{s} px") for s in SIZES],
        )
        self.expression = ft.Dropdown(
            label="Mouth at rest",
            value="keep",
            dense=True,
            width=220,
            options=[
                ft.DropdownOption(key="keep", text="Keep the photo's smile"),
                ft.DropdownOption(key="neutral", text="Neutral, closed"),
            ],
        )
        self.framing = ft.Dropdown(
            label="Framing",
            value="square",
            dense=True,
            width=200,
            options=[ft.DropdownOption(key=k, text=v) for k, v in FRAMINGS.items()],
        )
        self.captions = ft.Dropdown(
            label="Captions",
            value=NO_CAPTIONS,
            dense=True,
            width=220,
            options=[ft.DropdownOption(key=k, text=v) for k, v in CAPTIONS.items()],
        )
        self.transcript = ft.TextField(
            label="Transcript (what the recording says)",
            multiline=True,
            min_lines=1,
            max_lines=4,
            visible=False,
        )
        self.audio = FileSlot(page, config, "Choose audio", ft.FilePickerFileType.AUDIO)
        self.audio.row.visible = False
        self.sample = FileSlot(page, config, "Voice sample (optional)", ft.FilePickerFileType.AUDIO)
        self.consent = ft.Checkbox(label="The person in the photo agreed to be animated.")
        self.submit = ft.FilledButton("Make the video", icon=ft.Icons.MOVIE, on_click=self.run)
        self.progress = ft.ProgressBar(value=0, visible=False)
        self.stage = ft.Text("")
        self.error = ft.Text("", color=ft.Colors.ERROR, weight=ft.FontWeight.BOLD, visible=False)
        self.player = ft.Container(
            aspect_ratio=1, visible=False, border_radius=8, bgcolor=ft.Colors.BLACK
        )
        self.video: fv.Video | None = None
        self.video_url: str | None = None
        self.captions_url: str | None = None
        """The finished video's captions, shown as the player's subtitle track."""
        self.aspect = 1.0
        self.actions = ft.Row(
            [
                ft.OutlinedButton("Replay", icon=ft.Icons.REPLAY, on_click=self.replay),
                ft.OutlinedButton("Download", icon=ft.Icons.DOWNLOAD, on_click=self.download),
            ],
            visible=False,
        )
        self.history = ft.Column(spacing=0)
        self.history_title = ft.Text("Earlier results", weight=ft.FontWeight.BOLD, visible=False)

    # ------------------------------------------------------------------ layout

    def build(self) -> ft.Control:
        """The whole screen."""
        form = ft.Column(
            [
                ft.Text("facecast", theme_style=ft.TextThemeStyle.HEADLINE_MEDIUM),
                self.server,
                self.api_key,
                self.photo.row,
                self.mode,
                self.text,
                ft.Row([self.lang, self.size], wrap=True),
                ft.Row([self.voice, self.gender], wrap=True),
                self.expression,
                ft.Row([self.framing, self.captions], wrap=True),
                self.speech_pickers,
                self.audio.row,
                self.transcript,
                self.sample.row,
                self.consent,
                self.submit,
            ],
            spacing=12,
            horizontal_alignment=ft.CrossAxisAlignment.STRETCH,
        )
        result = ft.Column(
            [
                self.progress,
                self.stage,
                self.error,
                self.player,
                self.actions,
                self.history_title,
                self.history,
            ],
            spacing=12,
        )
        return ft.ResponsiveRow(
            [
                ft.Container(form, padding=16, col={"xs": 12, PHONE_BREAK: 6}),
                ft.Container(result, padding=16, col={"xs": 12, PHONE_BREAK: 6}),
            ],
        )

    async def load_settings(self) -> None:
        """Restore the server URL and API key from the device's storage."""
        stored = await self.prefs.get(SERVER_KEY)
        if isinstance(stored, str) and stored and self.config.server_url is None:
            self.server.value = stored
        key = await self.prefs.get(API_KEY_KEY)
        if isinstance(key, str) and key:
            self.api_key.value = key
            self.api_key.visible = True
        self.page.update()

    async def load_voices(self) -> None:
        """Fill the voice picker from GET /voices; without it the default voice still works."""
        client = FacecastClient(self.server.value or DEFAULT_SERVER, self.api_key.value or None)
        try:
            self.catalogue = await client.voices()
        except ApiError:
            self.catalogue = []
        finally:
            await client.aclose()
        self._fill_voices()
        self.page.update()

    def _fill_voices(self) -> None:
        lang = self.lang.value or "de"
        gender = self.gender.value or ANY_GENDER
        # Natural voices first (the server lists them first); of espeak-ng only its plain
        # voice and, asked for a gender, the first variant of it.
        speaking = [v for v in self.catalogue if v.speaks(lang)]
        fitting = [v for v in speaking if v.natural or v.id.endswith(":default")]
        if gender != ANY_GENDER:
            fitting = [v for v in fitting if v.gender == gender]
            fitting = fitting or [v for v in speaking if v.gender == gender][:1]
        standard = next((v.id for v in fitting if lang in v.default_for), None)
        first = f"Default ({standard})" if standard else "Default voice"
        if gender != ANY_GENDER:  # the server picks its best voice of that kind
            first = f"Best {gender} voice"
        key = DEFAULT_VOICE if gender == ANY_GENDER else gender
        self.voice.options = [ft.DropdownOption(key=key, text=first)] + [
            ft.DropdownOption(key=v.id, text=v.label) for v in fitting
        ]
        self.voice.value = key

    def _lang_changed(self, _: ft.Event[ft.Dropdown]) -> None:
        self._fill_voices()
        self.page.update()

    def _show_preview(self) -> None:
        if self.photo.upload is not None:
            self.preview.src = self.photo.upload.data
            self.preview.visible = True

    def _mode_changed(self, _: ft.Event[ft.RadioGroup]) -> None:
        audio = self.mode.value == "audio"
        self.text.visible = self.lang.visible = self.sample.row.visible = not audio
        self.voice.visible = self.gender.visible = self.speech_pickers.visible = not audio
        self.audio.row.visible = self.transcript.visible = audio
        self.page.update()

    # ------------------------------------------------------------------ the job

    def _request(self) -> AnimateRequest:
        """The form as a request; raises ApiError with a plain message when something is missing."""
        if self.photo.upload is None:
            raise ApiError("missing_photo", "Please choose a photo.")
        audio = self.mode.value == "audio"
        if audio and self.audio.upload is None:
            raise ApiError("missing_audio", "Please choose an audio file.")
        text = (self.text.value or "").strip()
        if not audio and not text:
            raise ApiError("invalid_text", "Please type something for the person to say.")
        captions = None if self.captions.value in (None, NO_CAPTIONS) else self.captions.value
        transcript = (self.transcript.value or "").strip() or None
        if audio and captions and not transcript:
            raise ApiError(
                "missing_transcript",
                "Captions for a recording need its transcript: type what it says.",
            )
        if not self.consent.value:
            raise ApiError("consent_required", "Please tick the consent box.")
        return AnimateRequest(
            photo=self.photo.upload,
            text=None if audio else text,
            lang=self.lang.value or "de",
            voice=None if self.voice.value in (None, DEFAULT_VOICE) else self.voice.value,
            audio=self.audio.upload if audio else None,
            voice_sample=None if audio else self.sample.upload,
            size=int(self.size.value or SIZES[0]),
            expression=self.expression.value or "keep",
            prosody={} if audio else self._prosody(),
            framing=self.framing.value or "square",
            captions=captions,
            transcript=transcript if audio else None,
        )

    def _prosody(self) -> dict[str, str]:
        """The speech pickers set away from their defaults, as form fields."""
        return {
            name: str(self.prosody[name].value)
            for name, _, _, _, default, _ in PROSODY
            if self.prosody[name].value not in (None, f"{default:g}")
        }

    def _show_error(self, error: ApiError) -> None:
        self.error.value = error.plain
        self.error.visible = True
        self.progress.visible = False
        self.stage.value = ""
        if error.code == "unauthorized":
            self.api_key.visible = True

    def _show_job(self, job: Job) -> None:
        self.progress.visible = True
        self.progress.value = job.progress / 100
        waiting = "Waiting" if job.status == "queued" else "Working"
        self.stage.value = f"{waiting}: {job.stage} ({job.progress}%)"

    async def run(self, _: ft.Event[ft.FilledButton] | None = None) -> None:
        """Submit the form and follow the job to its end."""
        self.error.visible = False
        self.submit.disabled = True
        self.page.update()
        client = FacecastClient(self.server.value or DEFAULT_SERVER, self.api_key.value or None)
        try:
            request = self._request()
            await self.prefs.set(SERVER_KEY, client.base_url)
            if self.api_key.value:
                await self.prefs.set(API_KEY_KEY, self.api_key.value)
            self._show_job(Job("", "queued", 0, "uploading"))
            self.page.update()
            job_id = await client.animate(request)
            streaming = False
            async for job in client.follow(job_id):
                self._show_job(job)
                if job.stream_url and not streaming and not job.final and self.plays_hls:
                    streaming = True
                    self.play(job.stream_url)  # from the first segment; the MP4 follows
                self.page.update()
                if job.final:
                    self._finish(job, request)
        except ApiError as exc:
            self._show_error(exc)
        finally:
            await client.aclose()
            self.submit.disabled = False
            self.page.update()

    def _finish(self, job: Job, request: AnimateRequest) -> None:
        if job.status != "done" or not job.video_url:
            self._show_error(job.error or ApiError(job.status, f"The job was {job.status}."))
            return
        self.stage.value = "Done."
        self.captions_url = job.captions_url if request.captions != "burn" else None
        self.aspect = ASPECTS.get(request.framing, 1.0)
        self.play(job.video_url)
        label = request.text or (request.audio.name if request.audio else "video")
        url = job.video_url
        self.history_title.visible = True
        self.history.controls.insert(
            0,
            ft.ListTile(
                leading=ft.Icon(ft.Icons.PLAY_CIRCLE),
                title=ft.Text(label[:60]),
                subtitle=ft.Text(job.job_id),
                dense=True,
                on_click=lambda _: self.play(url),
            ),
        )

    # ------------------------------------------------------------------ the player

    @property
    def plays_hls(self) -> bool:
        """The native players (libmpv on desktop, ExoPlayer/AVPlayer on phones) play HLS;
        the browser build's HTML video element in Chromium does not, so it waits for the MP4."""
        return not self.page.web

    def play(self, url: str) -> None:
        """Show `url` in the player and start it."""
        self.video_url = url
        captions = self.captions_url if url != self.captions_url else None
        if self.page.web and self.config.media is not None:
            url = self.config.media.register(url)
            captions = captions and self.config.media.register(captions)
        self.video = fv.Video(
            playlist=[fv.VideoMedia(url)],
            autoplay=True,
            aspect_ratio=self.aspect,
            fill_color=ft.Colors.BLACK,
            wakelock=False,
            subtitle_track=fv.VideoSubtitleTrack(src=captions, title="Captions")
            if captions
            else None,
        )
        self.player.aspect_ratio = self.aspect
        self.player.content = self.video
        self.player.visible = self.actions.visible = True
        self.page.update()

    async def replay(self, _: ft.Event[ft.OutlinedButton] | None = None) -> None:
        """Start the current video from the beginning."""
        if self.video is not None:
            await self.video.seek(0)
            await self.video.play()

    async def download(self, _: ft.Event[ft.OutlinedButton] | None = None) -> None:
        """Open the MP4 link (the browser or the OS saves it)."""
        if self.video_url:
            await self.launcher.launch_url(self.video_url)


def make_main(config: AppConfig) -> ft.AppCallable:
    """The Flet entry point for one page."""

    async def main(page: ft.Page) -> None:
        page.title = "facecast"
        page.scroll = ft.ScrollMode.AUTO
        page.theme_mode = ft.ThemeMode.LIGHT
        page.theme = ft.Theme(color_scheme_seed=ft.Colors.INDIGO)
        app = FacecastApp(page, config)
        page.add(app.build())
        await app.load_settings()
        await app.load_voices()

    return main


def _exit_normally(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def facecast_app_main(
    host: str = "127.0.0.1", port: int = 8550, server_url: str | None = None, web: bool = True
) -> None:
    """Serve the app to browsers at http://host:port (the offline Flutter web client), or open
    it as a desktop window with `web=False` (needs the flet-desktop package)."""
    os.environ.setdefault("FLET_SECRET_KEY", secrets.token_hex(16))
    if not web:
        run_native(server_url)
        return
    media = MediaProxy()
    with tempfile.TemporaryDirectory(prefix="facecast-app-uploads-") as uploads:
        upload_dir = Path(uploads)
        main = make_main(AppConfig(server_url, upload_dir, media))
        print(f"facecast app on http://{host}:{port}", flush=True)
        app = build_web_app(main, upload_dir, media)
        # uvicorn re-raises SIGTERM after its shutdown: exit normally so the uploads are removed.
        signal.signal(signal.SIGTERM, _exit_normally)
        uvicorn.run(app, host=host, port=port, log_level="warning")


def run_native(server_url: str | None = None) -> None:
    """Run as a native app: a desktop window (flet-desktop), or the entry point of a
    `flet build apk|ipa` package. Picked files have paths there, so nothing is uploaded."""
    config = AppConfig(server_url, Path(tempfile.gettempdir()))
    ft.run(make_main(config), view=ft.AppView.FLET_APP)
