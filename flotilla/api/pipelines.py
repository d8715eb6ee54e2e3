"""Pipeline (`flotilla.dev/v1alpha1`): a multi-stage workflow as a resource, applied, listed and
described like any other; the pipeline controller in `flotilla up` runs it.

The one template today is `speech-to-summary` (the study's workflow): recordings in `spec.audio`
are transcribed by one queued batch Job each (`spec.transcribe`), and each transcript is summarized
by LLM replicas behind the inference gateway (`spec.summarize`); outputs go under `spec.output`.

    apiVersion: flotilla.dev/v1alpha1
    kind: Pipeline
    metadata: {name: meetings, namespace: speech}
    spec:
      template: speech-to-summary
      audio: /srv/recordings              # absolute paths: the control plane reads and writes them
      output: /srv/meetings-out
      transcribe: {model: whisper-tiny.en, slices: mig-1g.5gb, backoffLimit: 2}
      summarize: {model: smollm2-135m, replicas: 2, maxTokens: 160}

`status` says how far it got: `phase` (Pending, Running, Succeeded, Failed), counts per stage, and
one entry per recording (`status.recordings[]`: its stage, state, Job and message).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from flotilla.api.base import Condition, KubeModel, Resource

GROUP = "flotilla.dev"
VERSION = "v1alpha1"
Phase = Literal["Pending", "Running", "Succeeded", "Failed"]
SliceChoice = Literal["mig-1g.5gb", "mig-2g.10gb", "mig-3g.20gb", "mig-4g.20gb", "mig-7g.40gb", "whole-gpu", "none"]
RecordingState = Literal["Pending", "Queued", "Running", "Transcribed", "Summarizing", "Done", "Failed", "Skipped"]
DEFAULT_SYSTEM_PROMPT = (
    "You summarize meeting transcripts for busy colleagues. Write three to five short bullet points: "
    "the decisions, the action items with their owners, and the dates. Use only facts from the transcript."
)


def _absolute(value: str, field: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{field} must be an absolute path (the control plane resolves it), got {value!r}")
    return value


class TranscribeStage(KubeModel):
    """Stage 1: one batch Job per recording, queued through a Kueue LocalQueue."""

    model: str = "whisper-tiny.en"
    slices: SliceChoice = "mig-1g.5gb"  # what each Job asks for: a MIG slice, a whole GPU, or none (CPU)
    # LocalQueue in the pipeline's namespace (created, with a ClusterQueue, if absent); default
    # `asr-<slices>` (asr-mig-1g-5gb), one per slice choice, since a queue covers given resources only
    queue: str | None = None
    backoffLimit: int = Field(default=2, ge=0, le=20)
    cpu: str = "500m"
    memory: str = "1Gi"


def queue_name(stage: TranscribeStage) -> str:
    """The LocalQueue the transcription Jobs go to."""
    if stage.queue:
        return stage.queue
    return "asr-" + "".join(c if c.isalnum() else "-" for c in stage.slices.lower())


class SummarizeStage(KubeModel):
    """Stage 2: LLM replicas (a Deployment and its InferencePool) behind the inference gateway."""

    model: str = "smollm2-135m"
    replicas: int = Field(default=2, ge=1, le=64)
    maxTokens: int = Field(default=160, ge=16, le=4096)
    systemPrompt: str = DEFAULT_SYSTEM_PROMPT
    gateway: str | None = None  # the gateway's URL (default: the control plane's own gateway)
    profile: str | None = None  # the gateway's scheduling profile for this pool (default: the gateway's)
    timeoutSeconds: float = Field(default=600.0, gt=0)  # per summary, waiting for replicas included


class PipelineSpec(KubeModel):
    template: Literal["speech-to-summary"] = "speech-to-summary"
    audio: str
    output: str
    transcribe: TranscribeStage = Field(default_factory=TranscribeStage)
    summarize: SummarizeStage = Field(default_factory=SummarizeStage)

    @field_validator("audio")
    @classmethod
    def _audio_absolute(cls, value: str) -> str:
        return _absolute(value, "spec.audio")

    @field_validator("output")
    @classmethod
    def _output_absolute(cls, value: str) -> str:
        return _absolute(value, "spec.output")


class RecordingStatus(KubeModel):
    name: str  # the recording's file name
    state: RecordingState = "Pending"
    job: str | None = None
    attempts: int | None = None  # pods the Job created
    message: str | None = None


class PipelineStatus(KubeModel):
    phase: Phase | None = None
    runId: str | None = None
    startTime: str | None = None
    completionTime: str | None = None
    recordingsTotal: int | None = None
    transcribed: int | None = None
    summarized: int | None = None
    failed: int | None = None
    skipped: int | None = None  # finished by an earlier run
    runDir: str | None = None
    message: str | None = None
    recordings: list[RecordingStatus] | None = None
    conditions: list[Condition] | None = None


class Pipeline(Resource):
    spec: PipelineSpec
    status: PipelineStatus | None = None
