"""Flotilla: multi-stage generative-AI inference on shared accelerators."""

__version__ = "0.1.0"
