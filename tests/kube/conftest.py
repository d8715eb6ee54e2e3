"""Fixtures of the Kubernetes-mode tests: the study's project, renderings, the validator (built once:
the CRD schemas take a second to load) and a Kubernetes API emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.loader import LoadedObject, load_paths
from flotilla.api.registry import Registry
from flotilla.kube import multikueue, schemas
from flotilla.kube.options import RenderOptions
from flotilla.kube.render import Rendering, render
from flotilla.kube.validate import Validator
from tests.conftest import REFERENCE
from tests.kube.kmock_cluster import ApplyingEmulator, emulated_cluster

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "flotilla" / "examples" / "demo"
STUDY = Path(__file__).parent / "data" / "study"
GOLDEN = Path(__file__).parent / "golden"
# Fixed, so the golden files do not change with Flotilla's version.
GOLDEN_OPTIONS = RenderOptions(image="localhost/flotilla:golden")


def study_objects(registry: Registry) -> list[LoadedObject]:
    """The study's scenario: the demo's namespace, queues and Whisper Jobs, plus the LLM stage."""
    return load_paths([DEMO, STUDY], registry)


@pytest.fixture(scope="session")
def kube_registry() -> Registry:
    return build_registry()


@pytest.fixture(scope="session")
def validator(kube_registry: Registry) -> Validator:
    crds = [REFERENCE / "kueue" / "crds", REFERENCE / "gaie" / "crds"]
    index = schemas.CrdIndex.load(crds).with_versions(multikueue.SCHEMAS)
    return Validator(index, kube_registry)


@pytest.fixture(scope="session")
def study_rendering(kube_registry: Registry) -> Rendering:
    return render(study_objects(kube_registry), GOLDEN_OPTIONS, kube_registry)


@pytest.fixture
def api_server() -> Iterator[tuple[str, ApplyingEmulator]]:
    """(URL, emulator) of an emulated cluster with Kueue, GAIE, Gateway API and Prometheus Operator CRDs."""
    with emulated_cluster() as served:
        yield served
