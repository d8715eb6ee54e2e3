"""Word error rate (jiwer) after the usual normalisation: lower case, no punctuation, single spaces."""

from __future__ import annotations

import jiwer

NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),  # type: ignore[no-untyped-call]
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER over pairs of (reference, hypothesis) texts: (S + D + I) / N after NORMALISE."""
    return float(jiwer.wer(references, hypotheses, reference_transform=NORMALISE, hypothesis_transform=NORMALISE))
