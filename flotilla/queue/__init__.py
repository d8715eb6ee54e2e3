"""Batch admission with Kueue semantics: pure scheduling policy plus the embedded driver."""
