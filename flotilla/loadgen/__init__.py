"""The load generator: `flotilla bench serve` drives an OpenAI-compatible endpoint the way GuideLLM
does (profiles, datasets, a streaming client, per-benchmark statistics); `flotilla bench batch`
submits the study's Whisper batch scenario to a control plane and measures queue waits and JCTs.

    profiles.py   load profiles (synchronous, concurrent, constant, poisson, throughput, sweep): pure
    datasets.py   --data specs: synthetic, file (CSV/JSONL), transcripts: pure but for reading files
    stats.py      percentiles, throughputs, per-benchmark and batch summaries: pure
    client.py     one streaming request (httpx) -> RequestRecord
    runner.py     runs a profile's benchmarks against a sender (asyncio)
    serve.py      `bench serve`: dataset, run directory, progress bars, tables
    plots.py      TTFT distributions and latency vs rate (matplotlib, Agg)
    batch.py      the batch scenario's objects and its JobRecords: pure
    batchrun.py   the batch driver: create, poll, record
    cli.py        `flotilla bench serve` and `flotilla bench batch`
"""
