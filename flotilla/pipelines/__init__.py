"""The multi-stage workflows: speech -> transcript -> summary (see driver.py and docs/pipelines.md)."""
