"""Fragmentation: free slots that no pending request can use."""

from __future__ import annotations

import pytest

from flotilla.slicer import GPUState, fragmentation, stranded_slots

from .builders import CATALOG, gpu


@pytest.mark.parametrize(
    ("state", "pending", "stranded"),
    [
        (gpu("G"), {"1g.5gb"}, 1),  # slot 7 takes no 1g.5gb
        (gpu("G"), {"1g.5gb", "1g.10gb"}, 0),  # 1g.10gb at 6 covers slot 7
        (gpu("G"), {"7g.40gb"}, 0),
        (gpu("G"), set(), 8),  # nothing waits: every free slot is stranded
        (gpu("G", ("3g.20gb", 0), ("1g.5gb", 4)), {"3g.20gb"}, 3),  # 5, 6, 7
        (gpu("G", ("3g.20gb", 0), ("1g.5gb", 4)), {"1g.10gb"}, 1),  # 6-7 usable, 5 not
        (gpu("G", ("3g.20gb", 0), ("1g.5gb", 4)), {"1g.5gb", "1g.10gb"}, 0),
        (gpu("G", ("1g.5gb+me", 0)), {"1g.5gb+me"}, 7),  # one +me per GPU
        (gpu("G", ("3g.20gb", 0), ("3g.20gb", 4)), {"1g.5gb"}, 0),  # full: nothing free
        (gpu("G", model="H100-80GB"), {"1g.5gb"}, 8),  # a profile the model lacks
    ],
)
def test_stranded_slots(state: GPUState, pending: set[str], stranded: int) -> None:
    assert stranded_slots(CATALOG, state, pending) == stranded


def test_cluster_fragmentation_skips_unhealthy_gpus() -> None:
    gpus = [
        gpu("A", ("3g.20gb", 0), ("1g.5gb", 4)),  # free 5,6,7; stranded for 3g: 3
        gpu("B", ("3g.20gb", 4)),  # free 0-3, usable by 3g
        gpu("C", healthy=False),  # neither free nor stranded
    ]
    report = fragmentation(CATALOG, gpus, {"3g.20gb"})
    assert (report.free_slots, report.stranded_slots, report.total_slots) == (7, 3, 16)
    assert report.stranded_share_of_free == pytest.approx(3 / 7)
    assert report.stranded_share_of_total == pytest.approx(3 / 16)
    empty = fragmentation(CATALOG, [], {"3g.20gb"})
    assert (empty.stranded_share_of_free, empty.stranded_share_of_total) == (0.0, 0.0)
