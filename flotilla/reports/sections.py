"""The report's sections, built from a run's records: header, summary, batch stage, queue, requests.

Each section says "no data" (and which file it would come from) rather than being left out, so the reader
knows what the run did not record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flotilla.reports import stats
from flotilla.reports.document import (
    Block,
    BulletList,
    Figure,
    Paragraph,
    Section,
    Subheading,
    Table,
    cell,
    duration,
    is_scalar,
    key_values,
    number,
    plural,
    seconds,
    table,
)
from flotilla.reports.rundata import RunData

MAX_GROUPS = 6  # per-item tables and series up to this many distinct items


def build_sections(run: RunData, plots: Mapping[str, str]) -> tuple[Section, ...]:
    """The report's sections; `plots` maps a plot's name to its path relative to the report."""
    return (header(run), summary(run.summary), batch(run, plots), queue(run, plots), requests(run, plots))


def _no_data(file: str) -> Paragraph:
    return Paragraph(f"No data: the run has no {file} (or it is empty).")


def _figure(plots: Mapping[str, str], name: str, alt: str) -> list[Block]:
    return [Figure(plots[name], alt)] if name in plots else []


def _distributions(rows: list[tuple[str, stats.Distribution | None]], percentiles: tuple[str, ...]) -> Table:
    columns = ("metric", "n", "mean", *percentiles, "max")
    out = []
    for name, d in rows:
        if d is None:
            out.append([name, "0", *["-"] * (len(columns) - 2)])
        else:
            out.append([name, str(d.n), *(seconds(getattr(d, f)) for f in ("mean", *percentiles, "max"))])
    return table(columns, out)


# -- 1. header -----------------------------------------------------------------------------------------
def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def header(run: RunData) -> Section:
    info = run.info
    start, finish = _parse_time(info.started_at), _parse_time(info.finished_at)
    if start and finish:
        took = duration((finish - start).total_seconds())
    else:
        last = stats.horizon(run.jobs, run.queue, run.requests, run.replicas)
        took = f"not finished; last record at {seconds(last)}" if info.finished_at is None else "-"
    blocks: list[Block] = [
        key_values(
            [
                ("name", info.name),
                ("kind", info.kind),
                ("status", info.status),
                ("message", info.message or "-"),
                ("started", info.started_at),
                ("finished", info.finished_at),
                ("duration", took),
                ("directory", str(run.path)),
            ]
        ),
        Subheading(f"Stages ({len(info.stages)})"),
        BulletList(tuple(info.stages)) if info.stages else Paragraph("No stages recorded in run.json."),
    ]
    for title, values in (("Config", info.config), ("Machine", info.machine)):
        blocks.append(Subheading(title))
        blocks.append(key_values(list(values.items())) if values else Paragraph(f"No {title.lower()} recorded."))
    return Section("Run", tuple(blocks))


# -- 2. summary.json -----------------------------------------------------------------------------------
def _items_table(items: list[dict[str, Any]]) -> Table:
    columns = list(dict.fromkeys(k for item in items for k in item))
    return table(columns, [[cell(item.get(c)) for c in columns] for item in items])


def _is_flat(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(is_scalar(v) for v in value.values())


def summary(values: dict[str, Any]) -> Section:
    """summary.json: `items` (a list of flat objects) as a table, other scalars as key/value, objects of scalars
    as key/value tables, objects of such objects as one table with a row each, anything else as JSON."""
    title = "Summary (summary.json)"
    if not values:
        return Section(title, (_no_data("summary.json"),))
    blocks: list[Block] = []
    items = values.get("items")
    if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
        blocks += [Subheading(f"Items ({len(items)})"), _items_table(items)]
    scalars: list[tuple[str, Any]] = []
    tables: list[Block] = []
    for key, value in values.items():
        if key == "items" and blocks:
            continue
        if _is_flat(value):
            tables += [Subheading(key), key_values(list(value.items()))]
        elif isinstance(value, dict) and value and all(_is_flat(v) for v in value.values()):
            columns = list(dict.fromkeys(k for v in value.values() for k in v))
            rows = [[name, *(cell(v.get(c)) for c in columns)] for name, v in value.items()]
            tables += [Subheading(key), table(["name", *columns], rows)]
        else:
            scalars.append((key, value))
    if scalars:
        blocks += [Subheading("Values"), key_values(scalars)]
    return Section(title, (*blocks, *tables))


# -- 3. batch stage ------------------------------------------------------------------------------------
def batch(run: RunData, plots: Mapping[str, str]) -> Section:
    title = "Batch stage (jobs.jsonl)"
    if not run.jobs:
        return Section(title, (_no_data("jobs.jsonl"),))
    s = stats.job_stats(run.jobs)
    counts = ", ".join(f"{n} {status}" for status, n in s.by_status.items())
    blocks: list[Block] = [
        Paragraph(f"{plural(s.total, 'job')}: {counts}."),
        key_values(
            [
                ("makespan (first creation to last finish)", seconds(s.makespan)),
                ("retries (pods beyond the first)", s.retries),
                ("lanes (node / GPU / slice)", len({stats.lane_label(j) for j in run.jobs})),
            ]
        ),
        Subheading("Times"),
        _distributions(
            [
                ("job completion time (JCT)", s.completion_time),
                ("queue wait", s.queue_wait),
                ("run time", s.run_time),
            ],
            ("p50", "p90"),
        ),
        *_figure(plots, "job_timeline", "Job timeline per GPU and slice"),
    ]
    failed = [j for j in run.jobs if j.status == "failed"]
    if failed:
        rows = [[j.name, j.item or "-", str(j.attempts), j.message or "-"] for j in failed]
        blocks += [Subheading(f"Failed jobs ({len(failed)})"), table(("job", "item", "attempts", "message"), rows)]
    return Section(title, tuple(blocks))


# -- 4. queue ------------------------------------------------------------------------------------------
def queue(run: RunData, plots: Mapping[str, str]) -> Section:
    title = "Queue (queue.jsonl)"
    if not run.queue:
        return Section(title, (_no_data("queue.jsonl"),))
    by_queue: dict[str, list[Any]] = {}
    for sample in sorted(run.queue, key=lambda s: s.t):
        by_queue.setdefault(sample.queue, []).append(sample)
    rows = [
        [name, str(len(ss)), str(max(s.pending for s in ss)), str(max(s.admitted for s in ss)), str(ss[-1].pending)]
        for name, ss in sorted(by_queue.items())
    ]
    columns = ("ClusterQueue", "samples", "max pending", "max admitted", "last pending")
    blocks = (table(columns, rows), *_figure(plots, "queue_length", "Pending and admitted workloads over time"))
    return Section(title, blocks)


# -- 5. requests and replicas --------------------------------------------------------------------------
def requests(run: RunData, plots: Mapping[str, str]) -> Section:
    title = "Requests (requests.jsonl, replicas.jsonl)"
    if not run.requests and not run.replicas:
        return Section(title, (_no_data("requests.jsonl"),))
    blocks: list[Block] = []
    if run.requests:
        s = stats.request_stats(run.requests)
        errors = ", ".join(
            f"{n} with {'' if label == 'no response' else 'status '}{label}" for label, n in s.errors.items()
        )
        blocks += [
            Paragraph(
                f"{plural(s.total, 'request')}: {s.ok} ok, {plural(s.total - s.ok, 'error')}"
                + (f" ({errors})." if errors else ".")
            ),
            key_values(
                [
                    ("span (first send to last finish)", seconds(s.span)),
                    ("successful requests per second", s.request_rate),
                    ("output tokens per second", s.output_token_rate),
                ]
            ),
            Subheading("Latency of successful requests"),
            _distributions(
                [("TTFT", s.ttft), ("end-to-end latency", s.latency), ("ITL (per-request mean)", s.itl)],
                ("p50", "p90", "p95", "p99"),
            ),
            *_figure(plots, "ttft_distribution", "TTFT histogram and empirical CDF"),
        ]
        groups = stats.item_groups(run.requests, MAX_GROUPS)
        if groups:
            rows = []
            for item, rs in groups.items():
                g = stats.request_stats(rs)
                ttft = g.ttft
                rows.append(
                    [item or "(no item)", str(g.total), str(g.total - g.ok)]
                    + ([seconds(ttft.p50), seconds(ttft.p90), seconds(ttft.p99)] if ttft else ["-"] * 3)
                )
            blocks += [
                Subheading("By item"),
                table(("item", "requests", "errors", "TTFT p50", "TTFT p90", "TTFT p99"), rows),
            ]
        endpoint_rows = [
            [e.endpoint or "(unknown)", str(e.requests), str(e.errors), str(e.output_tokens), seconds(e.ttft_p50)]
            for e in s.endpoints
        ]
        blocks += [
            Subheading("Per endpoint"),
            table(("endpoint", "requests", "errors", "output tokens", "TTFT p50"), endpoint_rows),
        ]
    else:
        blocks.append(_no_data("requests.jsonl"))
    if run.replicas:
        by_endpoint: dict[str, list[Any]] = {}
        for sample in run.replicas:
            by_endpoint.setdefault(sample.endpoint, []).append(sample)
        rows = [
            [
                name,
                str(len(ss)),
                number(max(x.waiting for x in ss)),
                number(max(x.running for x in ss)),
                number(max(x.kv_cache_usage for x in ss)),
            ]
            for name, ss in sorted(by_endpoint.items())
        ]
        columns = ("endpoint", "samples", "max waiting", "max running", "max KV-cache usage")
        blocks += [Subheading("Replicas (replicas.jsonl)"), table(columns, rows)]
    blocks += _figure(plots, "replica_load", "Requests per endpoint and each replica's load over time")
    return Section(title, tuple(blocks))
