"""`flotilla report RUN_DIR`: where it writes, and exit 2 with one line naming the file for a bad run."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flotilla.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def test_report_writes_into_the_run_directory(batch_run: Path) -> None:
    code, out, err = invoke(str(batch_run))
    assert code == 0, err
    assert f"wrote {batch_run / 'report.html'}" in out and f"wrote {batch_run / 'report.md'}" in out
    assert f"plots in {batch_run / 'plots'}: job_timeline.png" in out


def test_report_format_and_output(pipeline_run: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, _, err = invoke(str(pipeline_run), "--format", "md", "--output", str(out_dir))
    assert code == 0, err
    assert (out_dir / "report.md").exists() and not (out_dir / "report.html").exists()
    assert (out_dir / "plots" / "job_timeline.png").exists() and not (pipeline_run / "report.md").exists()


def test_report_of_an_empty_run_says_there_are_no_plots(empty_run: Path) -> None:
    code, out, _ = invoke(str(empty_run))
    assert code == 0 and "no plots" in out


def test_a_directory_without_run_json(tmp_path: Path) -> None:
    code, _, err = invoke(str(tmp_path))
    assert code == 2
    assert err == f"error: {tmp_path / 'run.json'}: no run.json here; give the directory a run wrote\n"
    code, _, err = invoke(str(tmp_path / "missing"))
    assert code == 2 and err.startswith("error: ") and "not a directory" in err


def test_a_corrupted_middle_line_is_named(batch_run: Path) -> None:
    jobs = batch_run / "jobs.jsonl"
    lines = jobs.read_text().splitlines()
    lines[1] = lines[1][:20] + "garbage"
    jobs.write_text("\n".join(lines) + "\n")
    code, _, err = invoke(str(batch_run))
    assert code == 2
    assert err.startswith(f"error: {jobs}:2: ") and err.count("\n") == 1
    assert not (batch_run / "report.html").exists()  # nothing written from a run that cannot be read


def test_an_unknown_format(batch_run: Path) -> None:
    code, _, err = invoke(str(batch_run), "--format", "pdf")
    assert code == 2 and err.startswith("error: --format 'pdf'")


def test_report_is_in_the_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "report" in result.stdout
