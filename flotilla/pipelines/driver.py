"""Runs one speech-to-summary Pipeline: `reconcile()` is level-triggered, called every poll.

Each call reads the store and the output folder and moves every recording on:

    transcript on disk?  no -> its Job (created if absent; a Job of an earlier run is replaced)
                                 queued (Kueue) -> running (a MIG slice) -> Complete | Failed
                                 Failed after backoffLimit retries: the recording fails, reported
                         yes -> summary on disk?  no -> one request through the gateway (a worker thread)
                                                  yes -> Done (Skipped when an earlier run did it)

The LLM Deployment and InferencePool are created (if absent) when the run starts, so the replicas
load while the transcription Jobs run. The queueing objects are created if absent. Nothing here
keeps state that the store and the output folder do not: after a crash (the control plane killed
at any moment) a new driver finds the Jobs, the transcripts and the summaries, and goes on; only
the timings it had observed are lost (the Jobs' own timestamps stand in, at 1-s resolution).

The run's records go to OUTPUT/run (flotilla/runs): jobs.jsonl and queue.jsonl (what the driver saw
of the Jobs and the ClusterQueue), requests.jsonl (one line per summary request), summary.json
(per recording: audio length, queue wait, transcription time, WER against `<stem>.txt` beside the
audio when there is one, TTFT, summary length) and, when `flotilla.reports` renders it, the report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flotilla.api.pipelines import PipelineSpec, RecordingStatus, queue_name
from flotilla.pipelines import manifests, recordings
from flotilla.pipelines.recordings import RUN, SUMMARIES, TRANSCRIPTS, Recording
from flotilla.pipelines.replicas import ReplicaSampler
from flotilla.pipelines.summarize import SummaryResult, summarize, write_summary
from flotilla.queue.jobs import finished as job_finished
from flotilla.queue.jobs import owner_uid
from flotilla.queue.workloads import parse_time
from flotilla.runs import JobRecord, QueueSample, RequestRecord, RunDir, RunInfo
from flotilla.runs.stats import itl, percentile
from flotilla.store import AlreadyExists, NotFound
from flotilla.store.service import ResourceService

log = logging.getLogger("flotilla.pipelines")
JSON = dict[str, Any]
Summarizer = Callable[..., SummaryResult]
STAGES = ["transcribe", "summarize"]


@dataclass
class Observed:
    """What the driver saw of one Job, in run-relative seconds (None: not seen)."""

    created_at: float
    admitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    node: str = ""
    gpu: str = ""
    slice: str = ""
    placement: str = ""


@dataclass
class Progress:
    states: dict[str, RecordingStatus] = field(default_factory=dict)


class SpeechToSummary:
    """The driver of one Pipeline object (see the module docstring)."""

    def __init__(
        self,
        service: ResourceService,
        pipeline: JSON,
        gateway: str | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        summarizer: Summarizer = summarize,
        workers: int | None = None,
        render_report: Callable[[Path], object] | None = None,
    ) -> None:
        self.service = service
        meta = pipeline["metadata"]
        self.name, self.namespace, self.uid = meta["name"], meta.get("namespace") or "default", meta["uid"]
        self.spec = PipelineSpec.model_validate(pipeline["spec"])
        self.gateway = self.spec.summarize.gateway or gateway
        self.output = Path(self.spec.output)
        self.audio = Path(self.spec.audio)
        self.run_id = self.uid.replace("-", "")[:12]
        self.run = RunDir(self.output / RUN)
        self._clock = clock
        self._summarize = summarizer
        self._render = render_report
        self._origin = clock()
        self._k = {n: service.registry.resolve(n) for n in _KINDS}
        self._observed: dict[str, Observed] = {}
        self._futures: dict[str, Future[SummaryResult]] = {}
        self._summary_errors: dict[str, str] = {}
        self._done_before: set[str] = set()
        self._transcribed: set[str] = set()  # recordings whose transcript this driver has read
        self._done: set[str] = set()  # ... and whose summary too
        self._recordings: list[Recording] = []
        self._closing = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=workers or 2 * self.spec.summarize.replicas, thread_name_prefix="s2s"
        )
        self._started = False
        self.done = False
        self._last_status: JSON | None = None
        self._cluster_queue = ""
        self._sampler: ReplicaSampler | None = None
        self._resumed = (pipeline.get("status") or {}).get("runId") == self.run_id

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop: in-flight summaries are abandoned (a later driver sends them again)."""
        self._closing.set()
        if self._sampler is not None:
            self._sampler.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def now(self) -> float:
        return self._clock() - self._origin

    def reconcile(self) -> bool:
        """One pass; True when the pipeline has finished (Succeeded or Failed)."""
        if self.done:
            return True
        if not self._started and not self._start():
            return self.done
        states = self._advance()
        self._sample_queue()
        terminal = all(s.state in ("Done", "Skipped", "Failed") for s in states.values())
        if terminal:
            self._finish(states)
        else:
            self._write_status(states, "Running")
        return self.done

    def _start(self) -> bool:
        problem = self._check_paths()
        if problem:
            self._fail(problem)
            return False
        try:
            self._recordings = recordings.discover(self.audio)
        except (OSError, ValueError) as exc:
            self._fail(f"spec.audio: {exc}")
            return False
        if not self._recordings:
            self._fail(f"spec.audio: {self.audio} holds no recording ({', '.join(recordings.AUDIO_SUFFIXES)})")
            return False
        for r in self._recordings:
            if recordings.transcript(self.output, r.stem) and recordings.summary(self.output, r.stem):
                self._done_before.add(r.name)
        (self.output / TRANSCRIPTS).mkdir(parents=True, exist_ok=True)
        (self.output / SUMMARIES).mkdir(parents=True, exist_ok=True)
        if not self._resumed:
            self._fresh_run_dir()
        self._ensure_queue()
        if len(self._done_before) < len(self._recordings):
            self._ensure_llm()
            self._sampler = ReplicaSampler(self._replica_addresses, self.run.append, self.now)
            self._sampler.start()
        self._started = True
        log.info(
            "pipeline %s/%s: %d recordings (%d done before), run %s",
            self.namespace,
            self.name,
            len(self._recordings),
            len(self._done_before),
            self.run_id,
        )
        return True

    def _check_paths(self) -> str:
        if not self.audio.is_dir():
            return f"spec.audio: {self.audio} is not a directory; give the folder of recordings"
        try:
            self.output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"spec.output: cannot create {self.output} ({exc.strerror})"
        if not os.access(self.output, os.W_OK):
            return f"spec.output: {self.output} is not writable"
        return ""

    def _fresh_run_dir(self) -> None:
        if self.run.path.exists():
            shutil.rmtree(self.run.path)
        config = {
            "pipeline": f"{self.namespace}/{self.name}",
            "audio": str(self.audio),
            "output": str(self.output),
            "transcribe": self.spec.transcribe.model_dump(),
            "summarize": self.spec.summarize.model_dump(exclude={"systemPrompt"}),
            "recordings": len(self._recordings),
            "done_before": len(self._done_before),
        }
        machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
        info = RunInfo(
            kind="pipeline",
            name=f"speech-to-summary {self.namespace}/{self.name}",
            started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            stages=STAGES,
            config=config,
            machine=machine,
        )
        self.run.start(info)

    # -- creating what the run needs ------------------------------------------------------------
    def _create_if_absent(self, obj: JSON) -> None:
        with contextlib.suppress(AlreadyExists):
            self.service.create(obj)

    def _ensure_queue(self) -> None:
        """The LocalQueue (and a ClusterQueue and ResourceFlavor for it) unless the queue exists."""
        try:
            self.service.get(self._k["localqueues"], queue_name(self.spec.transcribe), self.namespace)
            return
        except NotFound:
            pass
        self.service.ensure_namespace(self.namespace)
        nodes, _ = self.service.list_objects(self._k["nodes"])
        for obj in manifests.queue_objects(self.spec, self.namespace, nodes):
            self._create_if_absent(obj)

    def _replica_addresses(self) -> list[str]:
        """`ip:port` of the LLM Deployment's running pods."""
        app = manifests.llm_name(self.spec.summarize.model)
        pods, _ = self.service.list_objects(self._k["pods"], self.namespace, lambda labels: labels.get("app") == app)
        return [
            f"{pod['status']['podIP']}:{manifests.LLM_PORT}"
            for pod in pods
            if (pod.get("status") or {}).get("phase") == "Running" and (pod.get("status") or {}).get("podIP")
        ]

    def _ensure_llm(self) -> None:
        """The model's Deployment and InferencePool: created if absent; an existing Deployment is scaled
        to `spec.summarize.replicas`, an existing pool gets `spec.summarize.profile`."""
        deployment, pool = manifests.llm_objects(self.spec, self.namespace)
        for obj in (deployment, pool):
            self._create_if_absent(obj)
        name = deployment["metadata"]["name"]
        with contextlib.suppress(NotFound):
            current = self.service.get(self._k["deployments"], name, self.namespace)
            if (current.get("spec") or {}).get("replicas") != self.spec.summarize.replicas:
                scale: JSON = {"spec": {"replicas": self.spec.summarize.replicas}}
                self.service.patch(self._k["deployments"], name, self.namespace, scale)
        with contextlib.suppress(NotFound):
            current = self.service.get(self._k["inferencepools"], name, self.namespace)
            wanted = manifests.pool_annotations(self.spec)
            have = current["metadata"].get("annotations") or {}
            if any(have.get(k) != v for k, v in wanted.items()):
                annotate: JSON = {"metadata": {"annotations": wanted}}
                self.service.patch(self._k["inferencepools"], name, self.namespace, annotate)

    # -- moving recordings on -------------------------------------------------------------------
    def _advance(self) -> dict[str, RecordingStatus]:
        jobs = {
            j["metadata"]["name"]: j
            for j in self.service.list_objects(self._k["jobs"], self.namespace)[0]
            if (j["metadata"].get("labels") or {}).get(manifests.PIPELINE_LABEL) == manifests.slug(self.name, 63)
        }
        workloads = {owner_uid(w): w for w in self.service.list_objects(self._k["workloads"], self.namespace)[0]}
        pods: dict[str, list[JSON]] = {}
        for pod in self.service.list_objects(self._k["pods"], self.namespace)[0]:
            job = (pod["metadata"].get("labels") or {}).get("job-name")
            if job:
                pods.setdefault(job, []).append(pod)
        claims = {
            (c["spec"].get("podRef") or {}).get("uid"): c
            for c in self.service.list_objects(self._k["allocationclaims"], self.namespace)[0]
        }
        states: dict[str, RecordingStatus] = {}
        for rec in self._recordings:
            states[rec.name] = self._advance_one(rec, jobs, workloads, pods, claims)
        return states

    def _advance_one(
        self,
        rec: Recording,
        jobs: dict[str, JSON],
        workloads: dict[str | None, JSON],
        pods: dict[str, list[JSON]],
        claims: dict[str | None, JSON],
    ) -> RecordingStatus:
        name = manifests.job_name(self.name, rec.name)
        if rec.name in self._done_before:
            return RecordingStatus(name=rec.name, state="Skipped", message="done by an earlier run")
        job = jobs.get(name)
        if job is not None:
            self._observe(name, job, workloads.get(job["metadata"].get("uid")), pods.get(name, []), claims)
        if rec.name in self._done:  # its outputs were read once: no file is read again on every pass
            return RecordingStatus(name=rec.name, state="Done", job=name, attempts=_attempts(job))
        if rec.name not in self._transcribed:
            if recordings.transcript(self.output, rec.stem) is None:
                workload = workloads.get(job["metadata"].get("uid")) if job is not None else None
                return self._transcription_state(rec, name, job, pods.get(name, []), workload)
            self._transcribed.add(rec.name)
        if recordings.summary(self.output, rec.stem) is not None:
            self._futures.pop(rec.name, None)
            self._done.add(rec.name)
            return RecordingStatus(name=rec.name, state="Done", job=name, attempts=_attempts(job))
        if rec.name in self._summary_errors:
            return RecordingStatus(
                name=rec.name, state="Failed", job=name, message=f"summary: {self._summary_errors[rec.name]}"
            )
        future = self._futures.get(rec.name)
        if future is None:
            text = recordings.transcript(self.output, rec.stem)  # read once more, to send it
            if text is not None:
                self._futures[rec.name] = self._pool.submit(self._summarize_one, rec, str(text["text"]))
        elif future.done():
            self._futures.pop(rec.name)
            with contextlib.suppress(Exception):
                future.result()  # errors were recorded by _summarize_one
        return RecordingStatus(name=rec.name, state="Summarizing", job=name, attempts=_attempts(job))

    def _transcription_state(
        self, rec: Recording, name: str, job: JSON | None, job_pods: list[JSON], workload: JSON | None = None
    ) -> RecordingStatus:
        if job is not None and (job["metadata"].get("labels") or {}).get(manifests.RUN_LABEL) != self.run_id:
            with contextlib.suppress(NotFound):  # an earlier run's Job: this run makes its own
                self.service.delete(self._k["jobs"], name, self.namespace)
            return RecordingStatus(name=rec.name, state="Pending", job=name, message="replacing an earlier run's Job")
        if job is None:
            obj = manifests.transcription_job(
                self.name, self.namespace, self.run_id, self.spec, rec.path, self.output / TRANSCRIPTS
            )
            obj["metadata"]["ownerReferences"] = [self._owner()]
            with contextlib.suppress(AlreadyExists):
                self.service.create(obj)
            self._observed.setdefault(name, Observed(created_at=self.now()))
            return RecordingStatus(name=rec.name, state="Queued", job=name)
        message, ok, done = job_finished(job)
        attempts = _attempts(job)
        if done and ok:  # Complete without a readable transcript: the transcriber wrote nothing usable
            return RecordingStatus(
                name=rec.name,
                state="Failed",
                job=name,
                attempts=attempts,
                message=f"the Job succeeded but {TRANSCRIPTS}/{rec.stem}.json is missing or unreadable",
            )
        if done:
            return RecordingStatus(
                name=rec.name, state="Failed", job=name, attempts=attempts, message=_failure(message, job_pods)
            )
        running = any((p.get("status") or {}).get("phase") == "Running" for p in job_pods)
        if running:
            return RecordingStatus(name=rec.name, state="Running", job=name, attempts=attempts)
        return RecordingStatus(name=rec.name, state="Queued", job=name, attempts=attempts, message=_waiting(workload))

    def _owner(self) -> JSON:
        return {
            "apiVersion": "flotilla.dev/v1alpha1",
            "kind": "Pipeline",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
        }

    def _observe(
        self, name: str, job: JSON, workload: JSON | None, job_pods: list[JSON], claims: dict[str | None, JSON]
    ) -> None:
        now = self.now()
        obs = self._observed.get(name)
        if obs is None:  # a Job this driver did not create (a restart): its own timestamps, 1-s resolution
            obs = self._observed[name] = Observed(created_at=self._stamp(job["metadata"].get("creationTimestamp"), now))
        if obs.admitted_at is None and workload is not None and _quota_reserved(workload):
            obs.admitted_at = now
        for pod in job_pods:
            if obs.started_at is None and (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed"):
                obs.started_at = now
            obs.node = (pod.get("spec") or {}).get("nodeName") or obs.node
            claim = claims.get(pod["metadata"].get("uid"))
            if claim is not None:
                spec = claim["spec"]
                place = spec.get("migPlacement") or {}
                start, size = int(place.get("start", 0)), int(place.get("size", 1))
                obs.gpu = str(spec.get("gpuUUID") or "")
                obs.slice = f"mig-{spec.get('profile')}"
                obs.placement = f"{start}-{start + size - 1}"
        if obs.slice == "" and self.spec.transcribe.slices == "whole-gpu":
            obs.slice = "gpu"
        _, _, done = job_finished(job)
        if done and obs.finished_at is None:
            obs.finished_at = now
            obs.admitted_at = now if obs.admitted_at is None else obs.admitted_at

    def _stamp(self, value: Any, default: float) -> float:
        """An RFC 3339 timestamp as run-relative seconds."""
        if not isinstance(value, str):
            return default
        try:
            return parse_time(value) - time.time() + self.now()
        except ValueError:
            return default

    # -- summaries -----------------------------------------------------------------------------
    def _summarize_one(self, rec: Recording, text: str) -> SummaryResult:
        if not self.gateway:
            self._summary_errors[rec.name] = (
                "no gateway: start `flotilla up` with --gateway-port, or set spec.summarize.gateway"
            )
            raise RuntimeError(self._summary_errors[rec.name])
        result = self._summarize(
            self.gateway, self.spec.summarize, rec.name, rec.stem, text, clock=self.now, cancelled=self._closing.is_set
        )
        if self._closing.is_set():
            return result
        record = RequestRecord(
            id=f"{self.run_id}-{rec.stem}",
            sent_at=result.sent_at,
            status=result.status,
            first_token_at=result.first_token_at,
            finished_at=result.finished_at,
            prompt_tokens=result.prompt_tokens,
            output_tokens=result.output_tokens,
            endpoint=result.endpoint,
            item=rec.name,
            session=rec.stem,
            error=result.error,
        )
        self.run.append(record.model_copy(update={"itl_mean": itl(record)}))
        if result.ok:
            write_summary(self.output / SUMMARIES, rec.stem, self.spec.summarize.model, result)
        else:
            self._summary_errors[rec.name] = result.error or f"HTTP {result.status}"
        return result

    # -- records and status ----------------------------------------------------------------------
    def _sample_queue(self) -> None:
        try:
            lq = self.service.get(self._k["localqueues"], queue_name(self.spec.transcribe), self.namespace)
            cq_name = self._cluster_queue = lq["spec"]["clusterQueue"]
            cq = self.service.get(self._k["clusterqueues"], cq_name)
        except (NotFound, KeyError):
            return
        status = cq.get("status") or {}
        running = sum(1 for o in self._observed.values() if o.started_at is not None and o.finished_at is None)
        self.run.append(
            QueueSample(
                t=self.now(),
                queue=cq_name,
                pending=int(status.get("pendingWorkloads") or 0),
                admitted=int(status.get("admittedWorkloads") or status.get("reservingWorkloads") or 0),
                running=running,
            )
        )

    def _job_records(self, states: dict[str, RecordingStatus]) -> list[JobRecord]:
        out = []
        for rec in self._recordings:
            name = manifests.job_name(self.name, rec.name)
            obs = self._observed.get(name)
            state = states[rec.name]
            if obs is None:
                continue
            failed_here = state.state == "Failed" and not (state.message or "").startswith("summary:")
            out.append(
                JobRecord(
                    name=f"{self.namespace}/{name}",
                    queue=queue_name(self.spec.transcribe),
                    cluster_queue=self._cluster_queue,
                    item=rec.name,
                    created_at=obs.created_at,
                    admitted_at=obs.admitted_at,
                    started_at=obs.started_at,
                    finished_at=obs.finished_at,
                    status="failed" if failed_here else "succeeded" if obs.finished_at is not None else "running",
                    attempts=state.attempts or 1,
                    node=obs.node,
                    gpu=obs.gpu,
                    slice=obs.slice,
                    placement=obs.placement,
                    message=state.message or "" if failed_here else "",
                )
            )
        return out

    def items(self, states: dict[str, RecordingStatus]) -> list[JSON]:
        """One row per recording for summary.json and the report."""
        rows = []
        for rec in self._recordings:
            state = states[rec.name]
            obs = self._observed.get(manifests.job_name(self.name, rec.name))
            text = recordings.transcript(self.output, rec.stem)
            summ = recordings.summary(self.output, rec.stem)
            reference = rec.reference()
            wer = None
            if text is not None and reference:
                from flotilla.serving.asr.wer import word_error_rate

                wer = word_error_rate([reference], [str(text["text"])])
            rows.append(
                {
                    "recording": rec.name,
                    "state": state.state,
                    "audio_s": recordings.audio_seconds(text) if text else None,
                    "queue_wait_s": None
                    if obs is None or obs.admitted_at is None
                    else obs.admitted_at - obs.created_at,
                    "transcription_s": _run_time(obs),
                    "attempts": state.attempts,
                    "wer": wer,
                    "ttft_s": summ.get("ttft_s") if summ else None,
                    "summary_words": len(str(summ["summary"]).split()) if summ else None,
                    "summary_tokens": summ.get("output_tokens") if summ else None,
                    "replica": summ.get("endpoint") if summ else None,
                    "message": state.message or "",
                }
            )
        return rows

    def _finish(self, states: dict[str, RecordingStatus]) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        failed = [s for s in states.values() if s.state == "Failed"]
        items = self.items(states)
        jobs = self._job_records(states)
        self.run.write_records(jobs, JobRecord)
        self.run.write_summary(_summary(items, jobs, self.now()))
        ok = not failed
        message = (
            f"{len(states) - len(failed)} of {len(states)} recordings summarized"
            if ok
            else f"{len(failed)} of {len(states)} recordings failed: "
            + "; ".join(f"{s.name}: {s.message}" for s in failed)
        )
        self.run.finish("succeeded" if ok else "failed", message)
        if self._render is not None:
            try:
                self._render(self.run.path)
            except Exception as exc:  # the report is a view; the run's outcome stands without it
                log.warning("pipeline %s/%s: the report was not rendered: %s", self.namespace, self.name, exc)
        self._write_status(states, "Succeeded" if ok else "Failed", message, final=True)
        self.done = True
        self.close()

    def _fail(self, message: str) -> None:
        log.warning("pipeline %s/%s failed: %s", self.namespace, self.name, message)
        self._write_status({}, "Failed", message, final=True)
        self.done = True
        self.close()

    def _write_status(
        self, states: dict[str, RecordingStatus], phase: str, message: str = "", final: bool = False
    ) -> None:
        counts = [s.state for s in states.values()]
        status: JSON = {
            "phase": phase,
            "runId": self.run_id,
            "recordingsTotal": len(states),
            "transcribed": sum(1 for s in counts if s in ("Summarizing", "Done", "Skipped"))
            + sum(1 for s in states.values() if s.state == "Failed" and (s.message or "").startswith("summary:")),
            "summarized": sum(1 for s in counts if s in ("Done", "Skipped")),
            "failed": counts.count("Failed"),
            "skipped": counts.count("Skipped"),
            "runDir": str(self.run.path),
            "message": message or None,
            "recordings": [s.model_dump(exclude_none=True) for s in states.values()],
        }
        if status == self._last_status and not final:
            return
        self._last_status = dict(status)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            current = self.service.get(self._k["pipelines"], self.name, self.namespace)
        except NotFound:
            self.close()
            self.done = True
            return
        old = current.get("status") or {}
        status["startTime"] = (
            old.get("startTime") if old.get("runId") == self.run_id and old.get("startTime") else stamp
        )
        if final:
            status["completionTime"] = stamp
        current["status"] = status
        with contextlib.suppress(NotFound):
            self.service.update_status(current, self._k["pipelines"])


_KINDS = (
    "jobs",
    "workloads",
    "pods",
    "allocationclaims",
    "nodes",
    "localqueues",
    "clusterqueues",
    "pipelines",
    "deployments",
    "inferencepools",
)


def _attempts(job: JSON | None) -> int | None:
    if job is None:
        return None
    status = job.get("status") or {}
    total = int(status.get("failed") or 0) + int(status.get("succeeded") or 0) + int(status.get("active") or 0)
    return total or None


def _quota_reserved(workload: JSON) -> bool:
    return any(
        c.get("type") in ("QuotaReserved", "Admitted") and c.get("status") == "True"
        for c in (workload.get("status") or {}).get("conditions") or []
    )


def _waiting(workload: JSON | None) -> str | None:
    """Why Kueue has not admitted the Job's Workload yet (its QuotaReserved=False message)."""
    for c in ((workload or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "QuotaReserved" and c.get("status") == "False" and c.get("message"):
            return f"waiting for quota: {c['message']}"
    return None


def _failure(message: str, job_pods: list[JSON]) -> str:
    """The Job's failure and, when a pod says more (its container's exit), that too."""
    for pod in job_pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("exitCode"):
                detail = term.get("message") or term.get("reason") or ""
                return f"{message} (exit code {term['exitCode']}{': ' + detail.strip()[-200:] if detail else ''})"
    return message


def _run_time(obs: Observed | None) -> float | None:
    if obs is None or obs.finished_at is None:
        return None
    start = obs.started_at if obs.started_at is not None else obs.admitted_at
    return None if start is None else obs.finished_at - start


def _stats(values: list[float]) -> JSON:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
    }


def _summary(items: list[JSON], jobs: list[JobRecord], elapsed: float) -> JSON:
    finished = [j for j in jobs if j.finished_at is not None]
    makespan = max((j.finished_at or 0.0) for j in finished) - min(j.created_at for j in finished) if finished else None
    wers = [i["wer"] for i in items if i["wer"] is not None]
    return {
        "recordings": len(items),
        "done": sum(1 for i in items if i["state"] in ("Done", "Skipped")),
        "failed": sum(1 for i in items if i["state"] == "Failed"),
        "skipped": sum(1 for i in items if i["state"] == "Skipped"),
        "elapsed_s": elapsed,
        "transcription_makespan_s": makespan,
        "job_completion_time_s": _stats([j.completion_time for j in jobs if j.completion_time is not None]),
        "queue_wait_s": _stats([j.queue_wait for j in jobs if j.queue_wait is not None]),
        "ttft_s": _stats([i["ttft_s"] for i in items if i["ttft_s"] is not None]),
        "mean_wer": statistics.fmean(wers) if wers else None,
        "items": items,
    }
