"""`flotilla pipeline run`'s input errors (no control plane needed) and a Pipeline through `flotilla apply`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.server.runner import ControlPlane

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["pipeline", "run", *args])
    return result.exit_code, result.stdout + result.stderr


def test_missing_folders_unknown_templates_and_bad_flags_are_named(tmp_path: Path) -> None:
    code, out = run("--audio", str(tmp_path))
    assert code == 2 and "give --audio DIR and --out DIR" in out
    code, out = run("speech-to-video", "--audio", str(tmp_path), "--out", str(tmp_path))
    assert code == 2 and "unknown pipeline 'speech-to-video'" in out
    code, out = run("--audio", str(tmp_path), "--out", str(tmp_path), "--replicas", "0")
    assert code == 2 and "--replicas" in out and "greater than or equal to 1" in out
    code, out = run("--audio", str(tmp_path), "--out", str(tmp_path), "--slices", "mig-9g.99gb")
    assert code == 2 and "--slices" in out


def test_a_pipeline_file_with_a_wrong_field_names_file_document_and_path(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p, namespace: speech}\n"
        "spec:\n  audio: /a\n  output: /o\n  transcribe: {modle: whisper-tiny.en}\n"
    )
    code, out = run("-f", str(path))
    assert code == 2 and str(path) in out and "spec.transcribe.modle" in out
    path.write_text(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec: {audio: rec, output: /o}\n"
    )
    code, out = run("-f", str(path))
    assert code == 2 and "spec.audio must be an absolute path" in out
    code, out = run("-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in out


def test_a_pipeline_applied_as_yaml_is_listed_and_described(control_plane: ControlPlane, tmp_path: Path) -> None:
    """The object alone (the fixture's plane runs no controllers): apply, get, describe like any kind."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: meetings, namespace: default}\n"
        f"spec:\n  audio: {tmp_path}\n  output: {tmp_path / 'out'}\n  summarize: {{replicas: 3}}\n"
    )
    server = ["--server", control_plane.url]
    result = runner.invoke(app, ["apply", "-f", str(path), *server])
    assert result.exit_code == 0 and "pipeline.flotilla.dev/meetings created" in result.stdout, result.stdout
    result = runner.invoke(app, ["get", "pipelines", *server])
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "TEMPLATE", "PHASE", "RECORDINGS"]
    assert row.split()[:3] == ["meetings", "speech-to-summary", "Pending"]
    result = runner.invoke(app, ["describe", "pipeline", "meetings", *server])
    assert result.exit_code == 0 and "replicas" in result.stdout.lower() and "3" in result.stdout
