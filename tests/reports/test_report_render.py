"""`write_report`: the files, valid PNGs, HTML that names every stage and escapes what the run wrote."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

from flotilla.reports.report import PLOT_NAMES, parse_formats, write_report
from flotilla.runs import RunDir, RunInfo

from .builders import HOSTILE, STARTED, job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input"}
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class TagBalance(HTMLParser):
    """Every non-void element closed in order: enough of HTML5's well-formedness for a generated file."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def check_html(text: str) -> None:
    assert text.startswith('<!DOCTYPE html>\n<html lang="en">')
    parser = TagBalance()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == [] and parser.scripts == 0


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5_000, path
    height, width, channels = matplotlib.image.imread(path).shape
    assert height >= 200 and width >= 500 and channels in (3, 4)


def html_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("<tr><td>")]


def test_a_pipeline_report_has_every_section_and_plot(pipeline_run: Path) -> None:
    files = write_report(pipeline_run, rendered_at="T")
    assert files.reports == [pipeline_run / "report.html", pipeline_run / "report.md"]
    assert [p.name for p in files.plots] == [f"{n}.png" for n in PLOT_NAMES]
    for png in files.plots:
        check_png(png)
    html = (pipeline_run / "report.html").read_text()
    check_html(html)
    for stage in ("transcribe", "summarize", f"stage-{ESCAPED}"):
        assert f"<li>{stage}</li>" in html
    for name in PLOT_NAMES:
        assert f'<img src="plots/{name}.png"' in html
    # the items table: a row per item, floats to 3 significant digits, None as "-"
    rows = html_rows(html)
    assert '<tr><td>rec-a</td><td class="num">1.00</td><td class="num">18.5</td><td class="num">0.0523</td>' in html
    assert any(r.startswith(f"<tr><td>{ESCAPED}</td>") and "<td>-</td>" in r for r in rows)
    # nested dicts of scalars become tables; other scalars a key/value table
    assert "<h3>gates</h3>" in html and "<h3>benchmarks</h3>" in html and "<tr><td>poisson-4</td>" in html
    assert '<tr><td>wer_mean</td><td class="num">0.123</td></tr>' in html
    # batch, queue and request figures
    assert "4 jobs: 3 succeeded, 1 failed." in html and "OOMKilled" in html
    assert "5 requests: 4 ok, 1 error (1 with status 503)." in html
    assert "<td>10.0.0.1:8000</td>" in html and "<td>gpu-cq</td>" in html
    assert "<td>duration</td><td>1 min 42 s</td>" in html
    md = (pipeline_run / "report.md").read_text()
    assert "- transcribe" in md and "![Job timeline per GPU and slice](plots/job_timeline.png)" in md
    assert "| rec\\-a |" not in md and "| rec-a | 1.00 | 18.5 | 0.0523 | 0.100 | 120 |" in md


def test_a_hostile_name_appears_only_escaped(pipeline_run: Path) -> None:
    write_report(pipeline_run, rendered_at="T")
    html = (pipeline_run / "report.html").read_text()
    md = (pipeline_run / "report.md").read_text()
    assert HOSTILE not in html and "<script" not in html and "alert(1)" in html
    assert html.count(ESCAPED) >= 5  # run name (title, h1, table), a stage, an item, the config, a job
    assert HOSTILE not in md and "<script" not in md and "&lt;script&gt;" in md


def test_reports_are_deterministic_but_for_the_rendered_at_line(pipeline_run: Path, tmp_path: Path) -> None:
    first = write_report(pipeline_run, tmp_path / "one", rendered_at="2025-01-01T00:00:00Z")
    second = write_report(pipeline_run, tmp_path / "two", rendered_at="2025-01-01T00:00:00Z")
    for a, b in zip(first.reports + first.plots, second.reports + second.plots, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    html = (tmp_path / "one" / "report.html").read_text()
    assert html.count("2025-01-01T00:00:00Z") == 1 and "Rendered at" in html


def test_a_serve_benchmark_report_has_request_sections_only(serve_run: Path) -> None:
    files = write_report(serve_run, formats=["html"], rendered_at="T")
    assert [p.name for p in files.reports] == ["report.html"] and not (serve_run / "report.md").exists()
    assert sorted(p.name for p in files.plots) == ["replica_load.png", "ttft_distribution.png"]
    html = (serve_run / "report.html").read_text()
    check_html(html)
    assert "No data: the run has no jobs.jsonl" in html and "No data: the run has no queue.jsonl" in html
    assert "<h3>By item</h3>" in html and "<td>bench-0</td>" in html and "<td>(unknown)</td>" in html
    assert "No stages recorded" in html


def test_a_batch_benchmark_report_has_the_timeline(batch_run: Path) -> None:
    files = write_report(batch_run, rendered_at="T")
    assert [p.name for p in files.plots] == ["job_timeline.png"]
    check_png(files.plots[0])
    html = (batch_run / "report.html").read_text()
    assert "3 jobs: 3 succeeded." in html and "<li>batch</li>" in html
    assert "No data: the run has no requests.jsonl" in html


def test_an_empty_run_says_no_data(empty_run: Path) -> None:
    files = write_report(empty_run, rendered_at="T")
    assert files.plots == [] and not (empty_run / "plots").exists()
    html = (empty_run / "report.html").read_text()
    check_html(html)
    assert html.count("No data:") == 4 and "<li>transcribe</li>" in html
    assert "not finished; last record at 0 s" in html


def test_a_run_still_going_with_a_torn_last_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "live")
    run.start(RunInfo(kind="bench-batch", name="live", started_at=STARTED, stages=["batch"]))
    run.append(
        [
            job("b/0", 0.0, 1.0, 1.0, 4.0, status="succeeded", gpu="0"),
            job("b/1", 0.5, 2.0, 2.5, None, gpu="0", status="running"),
            job("b/2", 3.0, None, None, None),
        ]
    )
    with (run.path / "jobs.jsonl").open("a") as f:
        f.write('{"name": "b/3", "created_at": 5')
    files = write_report(run.path, rendered_at="T")
    assert [p.name for p in files.plots] == ["job_timeline.png"]
    html = (run.path / "report.html").read_text()
    assert "3 jobs: 1 running, 1 pending, 1 succeeded." not in html  # status order is the lifecycle's
    assert "3 jobs: 1 pending, 1 running, 1 succeeded." in html
    assert "not finished; last record at 4.00 s" in html


def test_a_stale_plot_is_removed_when_its_data_is_gone(batch_run: Path) -> None:
    stale = batch_run / "plots" / "queue_length.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    write_report(batch_run, rendered_at="T")
    assert not stale.exists() and (batch_run / "plots" / "job_timeline.png").exists()


@pytest.mark.parametrize(
    ("value", "formats"), [("html,md", ["html", "md"]), ("md", ["md"]), (" MD , markdown", ["md"])]
)
def test_parse_formats(value: str, formats: list[str]) -> None:
    assert parse_formats(value) == formats


@pytest.mark.parametrize("value", ["pdf", "", "html,pdf"])
def test_parse_formats_refuses_unknown(value: str) -> None:
    with pytest.raises(ValueError, match="expected a comma-separated list of html, md"):
        parse_formats(value)
