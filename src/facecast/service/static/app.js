// facecast playground: POST /animate, follow the job over WebSocket (polling as fallback),
// play its live HLS stream from the first segment (hls.js, served by the API; Safari plays
// HLS natively), then switch to the finished MP4 and offer it. No build step.
"use strict";

const FINAL = new Set(["done", "error", "canceled", "rejected"]);
const POLL_MS = 700;
const PLAIN_WORDS = {
  no_face: "No face was found in the photo. Try a clear, front-facing portrait.",
  invalid_image: "The photo could not be read. Use a JPEG, PNG or WebP image.",
  invalid_audio: "The audio file could not be read. Try a WAV or MP3 file.",
  audio_too_long: "The audio is too long for one video. Use a shorter clip.",
  invalid_text: "Please type something for the person to say.",
  unsupported_language: "That language is not supported.",
  unknown_voice: "That voice does not speak this language; pick another one.",
  consent_required: "Please confirm that the person in the photo agreed.",
  unauthorized: "The server wants an API key: open \u201cAPI key\u201d below the form and enter it.",
  payload_too_large: "The file is too large.",
  queue_unavailable: "The service is busy or not running. Try again in a moment.",
};

const $ = (id) => document.getElementById(id);
const form = $("form");
const progress = $("progress");
const stage = $("stage");
const errorBox = $("error");

function plain(error) {
  if (!error) return "Something went wrong.";
  return PLAIN_WORDS[error.code] || error.message || "Something went wrong.";
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  progress.hidden = true;
  stage.textContent = "";
  $("submit").disabled = false;
}

function showProgress(job) {
  progress.hidden = false;
  progress.value = job.progress;
  stage.textContent = `${job.status === "queued" ? "Waiting" : "Working"}: ${job.stage} (${job.progress}%)`;
}

let live = null; // { url, hls } while the live stream plays

function stopStream() {
  if (live && live.hls) live.hls.destroy();
  live = null;
}

function playStream(job) {
  if (live || !job.stream_url || job.status === "done") return;
  const video = $("video");
  live = { url: job.stream_url, hls: null };
  video.dataset.source = "stream";
  $("download").hidden = true;
  $("result").hidden = false;
  if (window.Hls && window.Hls.isSupported()) {
    // The playlist is an EVENT stream: start at its beginning, not at the live edge.
    const key = $("apikey").value.trim();
    const hls = new window.Hls({
      startPosition: 0,
      xhrSetup: (xhr) => { if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`); },
    });
    live.hls = hls;
    hls.loadSource(job.stream_url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = job.stream_url; // Safari, iOS
  } else {
    live = null; // no way to play HLS here: wait for the MP4
    return;
  }
  video.play().catch(() => { /* autoplay may be blocked; the controls are there */ });
}

function showResult(job) {
  progress.value = 100;
  stage.textContent = "Done.";
  $("submit").disabled = false;
  const video = $("video");
  // Carry on from where the stream was, in the finished MP4 (seekable, downloadable).
  const resume = live ? video.currentTime : 0;
  const playing = !live || !video.paused;
  stopStream();
  video.dataset.source = "mp4";
  video.src = job.video_url;
  if (resume > 0) video.currentTime = resume;
  $("download").href = job.video_url;
  $("download").hidden = false;
  showCaptions(job);
  $("result").hidden = false;
  if (playing) video.play().catch(() => { /* autoplay may be blocked; the controls are there */ });
}

function showCaptions(job) {
  // WebVTT plays as the video's own track; SRT (which browsers do not read) is offered only.
  const video = $("video");
  for (const track of video.querySelectorAll("track")) track.remove();
  const link = $("captions-download");
  link.hidden = !job.captions_url;
  if (!job.captions_url) return;
  link.href = job.captions_url;
  if (!job.captions_url.split("?")[0].endsWith(".vtt") || $("captions").value === "burn") return;
  const track = document.createElement("track");
  Object.assign(track, { kind: "captions", label: "Captions", srclang: $("lang").value });
  track.src = job.captions_url;
  track.default = true;
  video.append(track);
}

function finish(job) {
  if (job.status === "done") showResult(job);
  else { stopStream(); $("result").hidden = true; showError(plain(job.error)); }
}

function authHeaders() {
  const key = $("apikey").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function poll(jobId) {
  const timer = setInterval(async () => {
    try {
      const answer = await fetch(`/jobs/${jobId}`, { headers: authHeaders() });
      const job = await answer.json();
      if (!answer.ok) { clearInterval(timer); showError(plain(job.error)); return; }
      showProgress(job);
      playStream(job);
      if (FINAL.has(job.status)) { clearInterval(timer); finish(job); }
    } catch {
      clearInterval(timer);
      showError("The server cannot be reached. Is `facecast serve` running?");
    }
  }, POLL_MS);
}

function follow(jobId) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let ended = false;
  let socket;
  try {
    const key = $("apikey").value.trim();
    const token = key ? `?access_token=${encodeURIComponent(key)}` : "";
    socket = new WebSocket(`${scheme}://${location.host}/ws/jobs/${jobId}${token}`);
  } catch {
    poll(jobId);
    return;
  }
  socket.onmessage = (event) => {
    const job = JSON.parse(event.data);
    if (job.error && !job.status) { ended = true; showError(plain(job.error)); return; }
    showProgress(job);
    playStream(job);
    if (FINAL.has(job.status)) { ended = true; socket.close(); finish(job); }
  };
  socket.onclose = () => { if (!ended) { ended = true; poll(jobId); } };
}

function toggleMode() {
  const audio = form.elements.mode.value === "audio";
  $("text-fields").hidden = audio;
  $("audio-fields").hidden = !audio;
}

function validate() {
  if (!$("photo").files.length) return "Please choose a photo.";
  const audio = form.elements.mode.value === "audio";
  if (audio && !$("audio").files.length) return "Please choose an audio file.";
  if (audio && $("captions").value && !$("transcript").value.trim()) {
    return "Captions for a recording need its transcript: type what it says.";
  }
  if (!audio && !$("text").value.trim()) return "Please type something for the person to say.";
  if (!$("consent").checked) return PLAIN_WORDS.consent_required;
  return null;
}

async function submit(event) {
  event.preventDefault();
  errorBox.hidden = true;
  const problem = validate();
  if (problem) { showError(problem); return; }
  const body = new FormData();
  body.append("source_image", $("photo").files[0]);
  if (form.elements.mode.value === "audio") {
    body.append("audio", $("audio").files[0]);
    if ($("transcript").value.trim()) body.append("transcript", $("transcript").value.trim());
  } else {
    body.append("text", $("text").value.trim());
    body.append("lang", $("lang").value);
    if ($("voice").value) body.append("voice", $("voice").value);
    // Only what differs from the defaults (the server checks the bounds and says which).
    for (const [name, standard] of [["rate", "1"], ["pitch", "0"], ["volume", "0"]]) {
      const value = $(name).value.trim();
      if (value !== "" && Number(value) !== Number(standard)) body.append(name, value);
    }
  }
  body.append("consent", "true");
  body.append("size", "256");
  body.append("expression", $("expression").value);
  body.append("framing", $("framing").value);
  body.append("format", $("format").value);
  if ($("captions").value) body.append("captions", $("captions").value);
  $("submit").disabled = true;
  stopStream();
  $("result").hidden = true;
  showProgress({ status: "queued", stage: "uploading", progress: 0 });
  try {
    const answer = await fetch("/animate", { method: "POST", body, headers: authHeaders() });
    const created = await answer.json();
    if (!answer.ok) { showError(plain(created.error)); return; }
    follow(created.job_id);
  } catch {
    showError("The server cannot be reached. Is `facecast serve` running?");
  }
}

let previewsAsked = 0;

async function showPreview() {
  // The video's first frame in the chosen framing (POST /preview); the photo itself until it
  // comes, or when the server cannot make one (no face: the submit says so). Only the latest
  // request shows; `data-frame` names the framing once its picture has loaded.
  const asked = ++previewsAsked;
  const framing = $("framing").value;
  const file = $("photo").files[0];
  const preview = $("preview");
  preview.hidden = !file;
  if (!file) return;
  if (!preview.dataset.frame) preview.src = URL.createObjectURL(file);
  const body = new FormData();
  body.append("source_image", file);
  body.append("size", "256");
  body.append("framing", framing);
  body.append("expression", $("expression").value);
  try {
    const answer = await fetch("/preview", { method: "POST", body, headers: authHeaders() });
    const picture = answer.ok ? await answer.blob() : file;
    if (asked !== previewsAsked) return;
    delete preview.dataset.frame;
    preview.onload = () => { if (answer.ok) preview.dataset.frame = framing; };
    preview.src = URL.createObjectURL(picture);
  } catch { /* offline: the photo stays */ }
}

$("photo").addEventListener("change", () => { delete $("preview").dataset.frame; showPreview(); });
$("framing").addEventListener("change", showPreview);
$("expression").addEventListener("change", showPreview);
let catalogue = [];

function speaks(voice, lang) {
  return voice.languages.includes(lang) || voice.languages.includes(lang.split("-")[0]);
}

function fillVoices() {
  // Natural voices first (GET /voices lists the preferred backends first); of espeak-ng's
  // many variants only its plain voice, to keep the list short (asked for a gender, the
  // first variant of it where no natural voice has it).
  const lang = $("lang").value;
  const gender = $("gender").value;
  const select = $("voice");
  const speaking = catalogue.filter((v) => speaks(v, lang));
  let fitting = speaking.filter((v) => v.natural || v.voice === "default");
  if (gender) {
    fitting = fitting.filter((v) => v.gender === gender);
    if (!fitting.length) fitting = speaking.filter((v) => v.gender === gender).slice(0, 1);
  }
  const standard = fitting.find((v) => v.default_for.includes(lang));
  const first = gender
    ? new Option(`Best ${gender} voice`, gender)  // the server picks it (voice=male|female)
    : new Option(standard ? `Default (${standard.id})` : "Default voice", "");
  select.replaceChildren(first);
  for (const voice of fitting) {
    const kind = voice.natural ? "natural" : "synthetic";
    const note = voice.commercial_use ? "" : ", non-commercial";
    select.append(new Option(`${voice.id} (${voice.gender}, ${kind}${note})`, voice.id));
  }
}

async function loadVoices() {
  try {
    const answer = await fetch("/voices", { headers: authHeaders() });
    if (!answer.ok) return;  // the default voice still works
    catalogue = (await answer.json()).voices;
    fillVoices();
  } catch { /* offline: keep "Default voice" */ }
}

for (const radio of form.elements.mode) radio.addEventListener("change", toggleMode);
$("lang").addEventListener("change", fillVoices);
$("gender").addEventListener("change", fillVoices);
$("apikey").addEventListener("change", loadVoices);
loadVoices();
form.addEventListener("submit", submit);
