"""POST /tts: speech from text, as JSON or multipart (with a voice sample for cloning)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from facecast.errors import ErrorCode, VoiceSampleError
from facecast.options import LANG_PATTERN
from facecast.service.deps import BaseUrlDep, PrincipalDep, ServiceDep, SubmitterDep
from facecast.service.errors import JobFailedError, ServiceError
from facecast.service.forms import TtsFields, chosen_options, speech_form, speech_upload_form
from facecast.service.idempotency import idempotency_scope
from facecast.service.inputs import check_fields
from facecast.service.jobs import JobService
from facecast.service.routes import IDEMPOTENCY_KEY, error_responses
from facecast.service.schemas import (
    JobState,
    JobStatus,
    LanguageList,
    LanguageView,
    NormalizeRequest,
    NormalizeResult,
    TtsResult,
    VoiceList,
    VoiceView,
)
from facecast.service.storage import AUDIO
from facecast.service.submission import TtsSubmission, build_options
from facecast.speech import registry, script

router = APIRouter(tags=["speech"])

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
FAILED_STATUS = {JobStatus.REJECTED: 400, JobStatus.CANCELED: 409, JobStatus.ERROR: 400}
SERVICE_FAILURES = {
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.TIMEOUT: 500,
    ErrorCode.WORKER_LOST: 500,
    ErrorCode.QUEUE_UNAVAILABLE: 503,
    ErrorCode.STORAGE_UNAVAILABLE: 503,
    ErrorCode.STORAGE_FULL: 507,
}
"""Job error codes that are the service's fault; any other error code is the input's (400)."""
TtsRequest = speech_form()
TtsForm = speech_upload_form()
FORM_FIELDS = frozenset({*TtsForm.model_fields})
TTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TtsRequest.model_json_schema()},
            "multipart/form-data": {"schema": TtsForm.model_json_schema()},
        },
    }
}


class UnsupportedMediaTypeError(ServiceError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    status = 415


async def _parse(request: Request) -> tuple[TtsFields, UploadFile | None]:
    """The body as JSON or multipart; validation errors answer 422 like any other route."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            return TtsRequest.model_validate_json(await request.body()), None
        if content_type.startswith(FORM_TYPES):
            form = await request.form()
            check_fields((name for name, _ in form.multi_items()), FORM_FIELDS)
            sample = form.get("voice_clone_wav")
            if sample is not None and not isinstance(sample, UploadFile):
                raise VoiceSampleError(
                    "voice_clone_wav must be an uploaded audio file.",
                    ErrorCode.VOICE_SAMPLE_MISSING,
                )
            fields = {
                k: v for k, v in form.items() if isinstance(v, str) and k != "voice_clone_wav"
            }
            return TtsRequest.model_validate(fields), sample if isinstance(
                sample, UploadFile
            ) else None
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    raise UnsupportedMediaTypeError("Send application/json or multipart/form-data.")


def _answer(service: JobService, state: JobState, reused: bool, base_url: str) -> JSONResponse:
    """200 with the audio when done, 202 with the job while it runs, the job's error otherwise."""
    if state.status in FAILED_STATUS:
        error = state.error
        code = error.code if error else ErrorCode(state.status.value)
        raise JobFailedError(
            code,
            error.message if error else f"The speech job was {state.status.value}.",
            SERVICE_FAILURES.get(code, FAILED_STATUS[state.status]),
        )
    done = state.status is JobStatus.DONE
    view = service.view(state, base_url)
    result = TtsResult(
        job_id=state.job_id,
        status=state.status,
        audio_id=state.job_id,
        audio_url=view.audio_url if done else None,
        reused=reused,
    )
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if done else 202)


@router.post(
    "/tts",
    response_model=TtsResult,
    responses={
        202: {"model": TtsResult, "description": "Still synthesising: poll GET /jobs/{job_id}."},
        **error_responses(400, 401, 409, 413, 415, 422, 429, 500, 503, 507),
    },
    openapi_extra=TTS_BODY,
    summary="Synthesise speech; reuse it in POST /animate via audio_id",
)
async def tts(
    request: Request,
    service: ServiceDep,
    base_url: BaseUrlDep,
    submitter: SubmitterDep,
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> JSONResponse:
    """Synthesis runs in a worker; the request waits up to FACECAST_TTS_WAIT_SECONDS for it.

    A retry with the same `Idempotency-Key` header answers with the job of the first request.
    """
    body, sample = await _parse(request)
    options = await run_in_threadpool(
        build_options, service.settings, chosen_options(body), speaks=sample is None
    )
    submission = TtsSubmission(
        text=body.text,
        options=options,
        voice_sample=sample.file if sample else None,
        webhook=body.webhook or None,
        client_ref=body.client_ref or None,
        idempotency=idempotency_scope(submitter.id, "tts", idempotency_key),
        owner=submitter,
    )
    submitted = await run_in_threadpool(service.submit_tts, submission)
    state = submitted.state
    if not state.status.final:
        state = await service.wait(state.job_id, service.settings.tts_wait_seconds)
    return await run_in_threadpool(_answer, service, state, submitted.reused, base_url)


@router.post(
    "/text/normalize",
    response_model=NormalizeResult,
    responses=error_responses(400, 401, 422),
    summary="What a voice will say for a text: numbers, dates, your lexicon, pauses",
)
def normalize_text(body: NormalizeRequest, service: ServiceDep, _: PrincipalDep) -> NormalizeResult:
    """The text as the voices will read it, without synthesising anything."""
    script.check_length(body.text, service.settings.max_text_chars)
    prepared = script.prepare(body.text, body.lang or service.settings.default_lang, body.lexicon)
    return NormalizeResult(
        spoken=script.spoken_text(prepared),
        estimated_seconds=round(script.typical_seconds(prepared), 1),
    )


@router.get("/voices", response_model=VoiceList, responses=error_responses(401, 422))
def voices(
    _: PrincipalDep,
    lang: Annotated[
        str | None,
        Query(pattern=LANG_PATTERN, description="Only voices that speak this language."),
    ] = None,
    gender: Annotated[
        Literal["male", "female", "neutral"] | None,
        Query(description="Only voices of this gender presentation."),
    ] = None,
) -> VoiceList:
    """Every voice this server speaks with: pass `id` (or the plain `voice`) as `voice`, or
    `male` / `female` for the best voice of that kind in the language."""
    defaults: dict[str, list[str]] = {}
    for code, choice in registry.languages().items():
        defaults.setdefault(choice.id, []).append(code)
    return VoiceList(
        voices=[
            VoiceView(
                id=voice.id,
                backend=voice.backend,
                voice=voice.name,
                languages=list(voice.languages),
                gender=voice.gender,
                natural=voice.natural,
                cloning=voice.cloning,
                phoneme_timings=voice.timings,
                licence=voice.licence,
                commercial_use=voice.commercial_use,
                default_for=defaults.get(voice.id, []),
            )
            for voice in registry.catalogue()
            if (lang is None or registry.speaks(voice, lang))
            and (gender is None or voice.gender == gender)
        ]
    )


@router.get("/languages", response_model=LanguageList, responses=error_responses(401))
def languages(_: PrincipalDep) -> LanguageList:
    """Every language some voice speaks, with the voice a request without `voice` gets."""
    counts: dict[str, int] = {}
    for voice in registry.catalogue():
        for code in voice.languages:
            counts[code] = counts.get(code, 0) + 1
    return LanguageList(
        languages=[
            LanguageView(code=code, default_voice=choice.id, voices=counts.get(code, 0))
            for code, choice in registry.languages().items()
        ]
    )


__all__ = ["AUDIO", "router"]
