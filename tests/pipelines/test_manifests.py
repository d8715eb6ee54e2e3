"""The objects a speech-to-summary pipeline creates."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flotilla.api.catalog import build_registry
from flotilla.api.loader import load_text
from flotilla.api.pipelines import PipelineSpec
from flotilla.pipelines import manifests

SPEC = PipelineSpec(audio="/srv/audio", output="/srv/out")


def test_job_names_are_dns_labels_unique_per_file_and_short() -> None:
    names = {manifests.job_name("meetings", f) for f in ("Team Sync.wav", "team-sync.flac", "x" * 200 + ".wav")}
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert manifests.job_name("meetings", "standup.flac").startswith("meetings-asr-standup-")


def test_the_queue_quota_is_what_the_nodes_can_hold() -> None:
    nodes = [
        {"status": {"allocatable": {"nvidia.com/mig-1g.5gb": "14", "cpu": "2"}}},
        {"status": {"allocatable": {"nvidia.com/mig-1g.5gb": 7}}},
    ]
    flavor, cq, lq = manifests.queue_objects(SPEC, "speech", nodes)
    assert flavor["spec"]["nodeLabels"] == {"nvidia.com/gpu.present": "true"}
    quotas = {r["name"]: r["nominalQuota"] for r in cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"]}
    assert quotas["nvidia.com/mig-1g.5gb"] == "21"
    assert cq["spec"]["resourceGroups"][0]["coveredResources"] == list(quotas)
    assert lq["metadata"] == {"name": "asr-mig-1g-5gb", "namespace": "speech"}
    assert lq["spec"]["clusterQueue"] == cq["metadata"]["name"]
    cpu_only = PipelineSpec(audio="/a", output="/o", transcribe={"slices": "none"})
    flavor, cq, _ = manifests.queue_objects(cpu_only, "speech", nodes)
    assert flavor["spec"] == {} and "nvidia.com/mig-1g.5gb" not in str(cq)


def test_a_transcription_job_asks_for_its_slice_and_mounts_its_folders_at_their_own_paths() -> None:
    job = manifests.transcription_job("meetings", "speech", "run1", SPEC, Path("/srv/audio/a.flac"), Path("/srv/out/t"))
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "asr-mig-1g-5gb" and labels[manifests.RUN_LABEL] == "run1"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["flotilla", "asr", "transcribe"]
    assert container["args"][:3] == ["/srv/audio/a.flac", "--model", "whisper-tiny.en"]
    assert container["resources"]["limits"]["nvidia.com/mig-1g.5gb"] == 1
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/srv/audio", "/srv/out/t"}
    assert {v["hostPath"]["path"] for v in pod["volumes"]} == {"/srv/audio", "/srv/out/t"}
    assert job["spec"]["backoffLimit"] == 2 and pod["restartPolicy"] == "Never"
    whole = PipelineSpec(audio="/a", output="/o", transcribe={"slices": "whole-gpu"})
    limits = manifests.transcription_job("p", "n", "r", whole, Path("/a/x.wav"), Path("/o/t"))["spec"]["template"]
    assert limits["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    # what the pipeline creates passes the same validation as `flotilla apply`
    registry = build_registry()
    import yaml

    objects = [job, *manifests.llm_objects(SPEC, "speech"), *manifests.queue_objects(SPEC, "speech", [])]
    loaded = load_text(yaml.safe_dump_all(objects), registry)
    assert [o.kind.kind for o in loaded] == [
        "Job",
        "Deployment",
        "InferencePool",
        "ResourceFlavor",
        "ClusterQueue",
        "LocalQueue",
    ]


def test_the_llm_replicas_are_a_deployment_and_its_inference_pool() -> None:
    spec = PipelineSpec(audio="/a", output="/o", summarize={"replicas": 3})
    deployment, pool = manifests.llm_objects(spec, "speech")
    assert deployment["spec"]["replicas"] == 3
    assert pool["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pool["metadata"]["annotations"][manifests.MODELS_ANNOTATION] == "smollm2-135m"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "$(POD_IP)"
    assert manifests.PROFILE_ANNOTATION not in pool["metadata"]["annotations"]  # the gateway's own profile
    routed = PipelineSpec(audio="/a", output="/o", summarize={"profile": "round-robin"})
    _, pool = manifests.llm_objects(routed, "speech")
    assert pool["metadata"]["annotations"][manifests.PROFILE_ANNOTATION] == "round-robin"


def test_a_pipeline_spec_names_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match=r"spec\.audio must be an absolute path"):
        PipelineSpec(audio="recordings", output="/o")
    with pytest.raises(ValidationError, match="replicas"):
        PipelineSpec(audio="/a", output="/o", summarize={"replicas": 0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        PipelineSpec(audio="/a", output="/o", transcribe={"slice": "mig-1g.5gb"})
