"""MultiKueue: a manager and N workers from a short cluster list (AdmissionCheck, MultiKueueConfig,
MultiKueueCluster per worker, the manager's ClusterQueues waiting for the check)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flotilla.api.registry import Registry
from flotilla.cli import app
from flotilla.kube.multikueue import ClusterList, MultiKueueError, Worker, load_cluster_list, multikueue_objects
from flotilla.kube.options import RenderOptions
from flotilla.kube.render import render
from flotilla.kube.validate import Validator
from tests.kube.conftest import DEMO, study_objects

CLUSTERS = """
admissionCheck: vela
config: vela
workers:
- name: worker-eu
  kubeconfigSecret: worker-eu-kubeconfig
- name: worker-us
  kubeconfigSecret: worker-us-kubeconfig
"""


def test_objects_per_kueue_version() -> None:
    clusters = ClusterList(workers=[Worker(name="w1", kubeconfigSecret="w1-secret")])
    check, config, worker = multikueue_objects(clusters, "v1beta2")
    assert check["spec"] == {
        "controllerName": "kueue.x-k8s.io/multikueue",
        "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": "multikueue"},
    }
    assert config["spec"] == {"clusters": ["w1"]}
    assert worker["spec"] == {"clusterSource": {"kubeConfig": {"location": "w1-secret", "locationType": "Secret"}}}
    old = multikueue_objects(clusters, "v1beta1")[2]
    assert old["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    assert old["spec"] == {"kubeConfig": {"location": "w1-secret", "locationType": "Secret"}}


@pytest.mark.parametrize("version", ["v1beta2", "v1beta1"])
def test_manager_rendering_is_valid_and_its_queues_wait_for_the_check(
    tmp_path: Path, kube_registry: Registry, validator: Validator, version: str
) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(CLUSTERS)
    options = RenderOptions(kueue_version=version)  # type: ignore[arg-type]
    rendering = render(study_objects(kube_registry), options, kube_registry, load_cluster_list(path))
    kinds = [o["kind"] for o in rendering.objects("cluster") if o["apiVersion"].startswith("kueue.x-k8s.io/")]
    assert sorted(kinds) == ["AdmissionCheck", "MultiKueueCluster", "MultiKueueCluster", "MultiKueueConfig"]
    cq = next(o for o in rendering.objects() if o["kind"] == "ClusterQueue")
    assert cq["spec"]["admissionChecksStrategy"] == {"admissionChecks": [{"name": "vela"}]}  # both versions
    report = validator.validate_sources((p, t) for p, t in rendering.files().items() if p.endswith(".yaml"))
    assert report.errors == []
    assert any("multikueueclusters" in c or "MultiKueueCluster" in c for c in report.checked)


def test_only_the_named_cluster_queues_get_the_check(kube_registry: Registry) -> None:
    clusters = ClusterList(clusterQueues=["other"], workers=[Worker(name="w", kubeconfigSecret="s")])
    rendering = render(study_objects(kube_registry), RenderOptions(), kube_registry, clusters)
    cq = next(o for o in rendering.objects() if o["kind"] == "ClusterQueue")
    assert "admissionChecksStrategy" not in cq["spec"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("workers: []\n", "workers: must have at least 1 item"),
        ("workers: [{name: Worker_1, kubeconfigSecret: s}]\n", "workers[0].name"),
        ("workers: [{name: w, kubeconfig: s}]\n", "workers[0].kubeconfig"),
        ("workers: [{name: w, kubeconfigSecret: a}, {name: w, kubeconfigSecret: b}]\n", "names must be unique"),
        ("workers: [\n", "malformed YAML at line"),
    ],
    ids=["no-workers", "bad-name", "unknown-field", "duplicate", "bad-yaml"],
)
def test_bad_cluster_lists_name_file_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    with pytest.raises(MultiKueueError) as caught:
        load_cluster_list(path)
    assert str(caught.value).startswith(str(path)) and problem in str(caught.value)


def test_cli_render_with_multikueue(tmp_path: Path) -> None:
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(CLUSTERS)
    out = tmp_path / "manager"
    result = CliRunner().invoke(app, ["kube", "render", "-f", str(DEMO), "-o", str(out), "--multikueue", str(clusters)])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all((out / "cluster" / "13-multikueueclusters.yaml").read_text()))
    assert [d["metadata"]["name"] for d in docs] == ["worker-eu", "worker-us"]
