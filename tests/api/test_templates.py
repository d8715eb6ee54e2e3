"""The Go text/template subset and kube-burner config rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.api.batch import Job
from flotilla.api.catalog import build_registry
from flotilla.api.kube_burner import KubeBurnerConfigError, render_kube_burner_config
from flotilla.api.loader import load_sources
from flotilla.api.templates import Template, TemplateError, render_template

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
KUEUE_BURNER = REFERENCE / "icpe26" / "kueue" / "kube-burner"
DAS = REFERENCE / "icpe26" / "das" / "manifests"


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE} (the shared/ folder beside the repo)")
    return REFERENCE


# -- rendering ----------------------------------------------------------------------------------

RENDER_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("field", "name-{{.Iteration}}", {"Iteration": 3}, "name-3"),
    ("field-with-spaces", "{{ .JobName }}", {"JobName": "whisper-scale"}, "whisper-scale"),
    ("nested-field", "{{ .pool.name }}", {"pool": {"name": "p"}}, "p"),
    ("bool-true", "{{.x}}", {"x": True}, "true"),
    ("bool-false", "{{.x}}", {"x": False}, "false"),
    ("zero", "{{.x}}", {"x": 0}, "0"),
    ("float", "{{.x}}", {"x": 0.5}, "0.5"),
    ("whole-float", "{{.x}}", {"x": 2.0}, "2"),
    ("large-float", "{{.x}}", {"x": 1e6}, "1e+06"),
    ("small-float", "{{.x}}", {"x": 0.00001}, "1e-05"),
    ("float-below-1e6", "{{.x}}", {"x": 123456.0}, "123456"),
    ("negative-float", "{{.x}}", {"x": -1.25}, "-1.25"),
    ("if-true", "a{{if .x}}b{{end}}c", {"x": True}, "abc"),
    ("if-false", "a{{if .x}}b{{end}}c", {"x": False}, "ac"),
    ("if-else", "{{ if .x }}yes{{ else }}no{{ end }}", {"x": False}, "no"),
    ("else-if", "{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"a": 0, "b": "x"}, "B"),
    ("nested-if", "{{if .a}}[{{if .b}}ab{{else}}a{{end}}]{{end}}", {"a": 1, "b": 0}, "[a]"),
    ("untaken-branch-may-name-anything", "{{if .a}}{{.undefined}}{{end}}ok", {"a": False}, "ok"),
    ("trim-left", "a  \n {{- .x }} b", {"x": 1}, "a1 b"),
    ("trim-right", "a {{ .x -}} \n\t b", {"x": 1}, "a 1b"),
    ("trim-both", "a {{- .x -}} b", {"x": 1}, "a1b"),
    ("trim-around-if", "x:\n{{- if .on }}\n  on: true\n{{- end }}\n", {"on": True}, "x:\n  on: true\n"),
    ("dash-without-space-is-not-trim", "{{.x}}-", {"x": 1}, "1-"),
    ("comment", "a{{/* a note */}}b", {}, "ab"),
    ("comment-with-braces", "a{{/* {{ not an action }} */}}b", {}, "ab"),
    ("trimmed-comment", "a \n{{- /* note */ -}}\n b", {}, "ab"),
    ("plain-text", "no actions here: ${HOME} {x}", {}, "no actions here: ${HOME} {x}"),
    ("multi-line", "l1\n{{ .a }}\nl3 {{ .b }}\n", {"a": 1, "b": 2}, "l1\n1\nl3 2\n"),
]


@pytest.mark.parametrize(
    ("text", "values", "expected"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES]
)
def test_render(text: str, values: dict[str, Any], expected: str) -> None:
    assert render_template(text, values) == expected


FALSY = [False, 0, 0.0, "", None, [], {}]
TRUTHY = [True, 1, -1, 0.1, "false", "0", [0], {"a": 0}]


@pytest.mark.parametrize("value", FALSY, ids=repr)
def test_go_falsy_values(value: Any) -> None:
    assert render_template("{{if .v}}T{{else}}F{{end}}", {"v": value}) == "F"


@pytest.mark.parametrize("value", TRUTHY, ids=repr)
def test_go_truthy_values(value: Any) -> None:
    assert render_template("{{if .v}}T{{else}}F{{end}}", {"v": value}) == "T"


ERROR_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("unknown-variable", "a\nb\n  name: {{ .kueue }}\n", {"Iteration": 0}, "t.yml:3: variable .kueue is not defined"),
    ("unknown-in-condition", "{{ if .gpu }}x{{ end }}", {}, "t.yml:1: variable .gpu is not defined (defined: none)"),
    ("unknown-nested", "{{ .a.b }}", {"a": {"c": 1}}, "t.yml:1: variable .a.b is not defined (defined: c)"),
    ("field-of-scalar", "{{ .a.b }}", {"a": 1}, "t.yml:1: cannot read .a.b: .a is not a mapping"),
    ("print-null", "{{ .a }}", {"a": None}, "t.yml:1: .a is null; a template can print only strings"),
    ("print-list", "{{ .a }}", {"a": [1]}, "t.yml:1: .a is list; a template can print only"),
    ("range", "{{ range .xs }}x{{ end }}", {}, 't.yml:1: unsupported template action "{{range .xs}}"'),
    ("with", "{{ with .x }}x{{ end }}", {}, 'unsupported template action "{{with .x}}"'),
    ("pipeline", "{{ .x | quote }}", {}, 'unsupported template action "{{.x | quote}}"'),
    ("function", '{{ printf "%d" .x }}', {}, "unsupported template action"),
    ("variable", "{{ $x := .y }}", {}, "unsupported template action"),
    ("dot", "{{ . }}", {}, 'unsupported template action "{{.}}"'),
    ("not", "{{ if not .x }}y{{ end }}", {}, 'unsupported template action "{{if not .x}}"'),
    ("define", '{{ define "x" }}y{{ end }}', {}, "unsupported template action"),
    ("number-is-not-trim", "{{-3}}", {}, 'unsupported template action "{{-3}}"'),
    ("empty-action", "{{ }}", {}, "t.yml:1: empty action"),
    ("unclosed-if", "a\n{{ if .x }}\nb\n", {}, "t.yml:2: {{if}} is never closed; add {{end}}"),
    ("stray-end", "a\n{{ end }}", {}, "t.yml:2: {{end}} without a matching {{if}}"),
    ("stray-else", "{{ else }}", {}, "t.yml:1: {{else}} outside {{if}}"),
    ("else-after-else", "{{if .a}}{{else}}{{else}}{{end}}", {}, "{{else}} after {{else}}"),
    ("unclosed-action", "a {{ .x", {}, "t.yml:1: action is never closed"),
    ("unclosed-comment", "{{/* note }}", {}, "t.yml:1: action is never closed; end it with */}}"),
]


@pytest.mark.parametrize(("text", "values", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_render_errors(text: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(text, "t.yml").render(values)
    assert message in str(info.value)


def test_unknown_variable_error_names_what_is_defined() -> None:
    with pytest.raises(TemplateError, match=r"variable \.kueue is not defined \(defined: Iteration, JobName\)"):
        render_template("{{.kueue}}", {"JobName": "j", "Iteration": 0})


def test_template_reports_its_variables() -> None:
    template = Template("{{ .a }}{{ if .b }}{{ .c.d }}{{ else if .e }}{{ end }}{{/* .f */}}")
    assert template.variables == {"a", "b", "c", "e"}
    assert template.condition_variables == {"b", "e"}


def test_a_template_renders_many_times() -> None:
    template = Template("job-{{.Iteration}}")
    assert [template.render({"Iteration": i}) for i in range(3)] == ["job-0", "job-1", "job-2"]


# -- the study's object templates ------------------------------------------------------------------


def test_whisper_job_template_switches(reference: Path) -> None:
    template = Template((KUEUE_BURNER / "whisper-job-medium.yml").read_text(), "whisper-job-medium.yml")
    assert template.condition_variables == {"kueue", "gpu"}
    assert template.variables == {"Iteration", "kueue", "gpu"}
    on = yaml.safe_load(template.render({"Iteration": 3, "kueue": True, "gpu": True}))
    off = yaml.safe_load(template.render({"Iteration": 3, "kueue": False, "gpu": False}))
    assert on["metadata"] == {
        "name": "whisper-transcription-medium-3",
        "labels": {"kueue.x-k8s.io/queue-name": "local-queue-medium"},
    }
    assert on["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert off["metadata"] == {"name": "whisper-transcription-medium-3"}
    assert off["spec"]["template"]["spec"]["containers"][0]["resources"] is None
    env = on["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ITERATION", "value": "3"} in env


def test_whisper_job_template_names_a_missing_switch(reference: Path) -> None:
    template = Template((KUEUE_BURNER / "whisper-job-large.yml").read_text(), "whisper-job-large.yml")
    with pytest.raises(TemplateError, match=r"whisper-job-large\.yml:6: variable \.kueue is not defined"):
        template.render({"Iteration": 0})


@pytest.mark.parametrize(("das", "resource"), [(True, "nvidia.com/mig-1g.5gb"), (False, "nvidia.com/gpu")])
def test_das_template_if_else(reference: Path, das: bool, resource: str) -> None:
    text = render_template(
        (DAS / "whisper-transcription-medium.yml").read_text(),
        {"Iteration": 0, "JobName": "whisper-scale", "das": das},
        "whisper-transcription-medium.yml",
    )
    doc = yaml.safe_load(text)
    assert doc["metadata"]["name"] == "whisper-transcription-medium-whisper-scale-0"
    limits = doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"memory": "8Gi", resource: 1}


# -- kube-burner configs ---------------------------------------------------------------------------


def test_kueue_whisper_config_renders_the_batch_scenario(reference: Path) -> None:
    rendered = render_kube_burner_config(KUEUE_BURNER / "kueue-whisper.yml")
    prerequisites = [d for d in rendered.documents if d.job == "pre-requisites"]
    jobs = [d for d in rendered.documents if d.job == "whisper-scale"]
    assert [d.source for d in prerequisites] == [
        "resource-flavor.yml[iteration=0]",
        "cluster-queue.yml[iteration=0]",
        "local-queue-medium.yml[iteration=0]",
        "local-queue-large.yml[iteration=0]",
        "download-script-configmap.yml[iteration=0]",
    ]
    assert len(jobs) == 32
    assert jobs[6].source == "whisper-job-medium.yml[iteration=3]"
    assert jobs[7].source == "whisper-job-large.yml[iteration=3]"
    assert [str(m) for m in rendered.missing] == [
        f'job "pre-requisites": objectTemplate github-token-secret.yml not found at '
        f"{KUEUE_BURNER / 'github-token-secret.yml'}; skipped"
    ]
    # namespacedIterations: false, so every iteration goes to the job's namespace.
    assert {d.namespace for d in rendered.documents} == {"whisper-scale"}

    loaded = load_sources(rendered.sources(), build_registry())
    assert len(loaded) == 37
    kinds = [o.kind.kind for o in loaded]
    assert kinds[:5] == ["ResourceFlavor", "ClusterQueue", "LocalQueue", "LocalQueue", "ConfigMap"]
    whisper = [o.obj for o in loaded if isinstance(o.obj, Job)]
    assert sorted(j.name for j in whisper) == sorted(
        f"whisper-transcription-{size}-{i}" for size in ("medium", "large") for i in range(16)
    )
    for j in whisper:
        size = "medium" if "-medium-" in j.name else "large"
        assert j.labels == {"kueue.x-k8s.io/queue-name": f"local-queue-{size}"}
        container = j.spec.template.spec.containers[0]
        assert container.resources is not None and container.resources.limits is not None
        assert str(container.resources.limits["nvidia.com/gpu"]) == "1"


def _das_vars(**overrides: Any) -> dict[str, Any]:
    return {"ES_SERVER": "", "ES_INDEX": "", "LOCAL_INDEXING": True, "ITERATIONS": 16, "DAS": True} | overrides


@pytest.mark.parametrize(
    ("das", "resources"), [(True, {"nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb"}), (False, {"nvidia.com/gpu"})]
)
def test_das_config_renders_with_its_variables(reference: Path, das: bool, resources: set[str]) -> None:
    rendered = render_kube_burner_config(DAS / "kube-burner-whisper.yml", _das_vars(DAS=das))
    assert len(rendered.documents) == 1 + 1 + 32
    assert [m.template for m in rendered.missing] == ["github-token-secret.yml"]
    first = rendered.documents[0]
    assert (first.source, first.job, first.namespace) == ("namespace.yml[iteration=0]", "create-namespace", None)
    loaded = load_sources(rendered.sources(), build_registry())
    jobs = [o.obj for o in loaded if isinstance(o.obj, Job)]
    assert jobs[0].name == "whisper-transcription-medium-whisper-scale-0"
    used = {
        name
        for j in jobs
        for c in j.spec.template.spec.containers
        for name in ((c.resources.limits or {}) if c.resources else {})
        if name.startswith("nvidia.com/")
    }
    assert used == resources


def test_das_config_needs_its_variables(reference: Path) -> None:
    with pytest.raises(TemplateError, match=r"kube-burner-whisper\.yml:8: variable \.ES_SERVER is not defined"):
        render_kube_burner_config(DAS / "kube-burner-whisper.yml", {})


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder / "config.yml"


def test_replicas_uuid_and_input_vars(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        {
            "config.yml": "jobs:\n- name: load\n  namespace: ns\n  jobIterations: 2\n"
            "  inputVars: {size: small, tag: job}\n"
            "  objects:\n  - objectTemplate: cm.yml\n    replicas: 2\n    inputVars: {size: large}\n",
            "cm.yml": "{{.JobName}}/{{.Iteration}}/{{.Replica}}/{{.UUID}}/{{.size}}/{{.tag}}",
        },
    )
    rendered = render_kube_burner_config(config)
    assert [(d.source, d.text, d.namespace) for d in rendered.documents] == [
        ("cm.yml[iteration=0,replica=1]", "load/0/1/flotilla/large/job", "ns-0"),
        ("cm.yml[iteration=0,replica=2]", "load/0/2/flotilla/large/job", "ns-0"),
        ("cm.yml[iteration=1,replica=1]", "load/1/1/flotilla/large/job", "ns-1"),
        ("cm.yml[iteration=1,replica=2]", "load/1/2/flotilla/large/job", "ns-1"),
    ]
    again = render_kube_burner_config(config, {"UUID": "run-7"})
    assert again.documents[0].text == "load/0/1/run-7/large/job"


def test_config_is_itself_a_template(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        {
            "config.yml": "jobs:\n- name: j\n  jobIterations: {{.N}}\n  objects:\n"
            "{{ if .withCm }}  - {objectTemplate: cm.yml, replicas: 1}\n{{ end }}",
            "cm.yml": "x",
        },
    )
    assert len(render_kube_burner_config(config, {"N": 3, "withCm": True}).documents) == 3
    assert render_kube_burner_config(config, {"N": 3, "withCm": False}).documents == ()


def test_other_job_types_are_skipped(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        {
            "config.yml": "jobs:\n- name: clean\n  jobType: delete\n  objects: [{kind: Job, labelSelector: {a: b}}]\n",
        },
    )
    assert render_kube_burner_config(config).documents == ()


def test_object_template_error_names_the_job_and_iteration(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        {
            "config.yml": "jobs:\n- name: j\n  jobIterations: 1\n  objects: [{objectTemplate: t.yml, replicas: 1}]\n",
            "t.yml": "a\n{{ .gpu }}\n",
        },
    )
    with pytest.raises(TemplateError) as info:
        render_kube_burner_config(config)
    message = str(info.value)
    assert message.startswith("t.yml:2: variable .gpu is not defined (defined: Iteration, JobName, Replica, UUID)")
    assert 'rendering job "j" iteration 0' in message and "inputVars" in message


CONFIG_ERRORS = [
    ("no-jobs", "global: {gc: false}\n", "config.yml: jobs: required field is missing"),
    ("not-a-mapping", "- a\n", "config.yml: expected a kube-burner config with jobs:"),
    ("malformed", "jobs: [\n", "config.yml: malformed YAML at line 2"),
    (
        "missing-iterations",
        "jobs:\n- name: j\n  objects: [{objectTemplate: t.yml, replicas: 1}]\n",
        "config.yml: jobs[0].jobIterations: required for a create job; set it",
    ),
    (
        "missing-replicas",
        "jobs:\n- name: j\n  jobIterations: 1\n  objects: [{objectTemplate: t.yml}]\n",
        "config.yml: jobs[0].objects[0].replicas: required field is missing",
    ),
    (
        "negative-iterations",
        "jobs:\n- name: j\n  jobIterations: -1\n",
        "config.yml: jobs[0].jobIterations: -1 must be greater than or equal to 0",
    ),
]


@pytest.mark.parametrize(("config", "message"), [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors(tmp_path: Path, config: str, message: str) -> None:
    path = _write(tmp_path, {"config.yml": config, "t.yml": "x"})
    with pytest.raises(KubeBurnerConfigError) as info:
        render_kube_burner_config(path)
    assert message in str(info.value)
