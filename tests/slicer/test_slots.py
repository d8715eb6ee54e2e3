"""Slot geometry tables: placeable capacity and the per-occupancy answers the policies look up."""

from __future__ import annotations

import pytest

from flotilla.slicer.slots import MASKS, range_mask, slots_free

from .builders import CATALOG

A100 = CATALOG.geometry["A100-40GB"]


def mask(*ranges: tuple[int, int]) -> int:
    out = 0
    for start, size in ranges:
        out |= range_mask(start, size)
    return out


@pytest.mark.parametrize(
    ("occupied", "capacity"),
    [
        # 1g.5gb 7x1 + 1g.5gb+me 1x1 + 1g.10gb 4x2 + 2g.10gb 3x2 + 3g.20gb 2x4 + 4g.20gb 1x4 + 7g.40gb 1x8
        (0, 7 + 1 + 8 + 6 + 8 + 4 + 8),
        # free 0-3: 1g 4 + me 1 + 1g.10gb 2x2 + 2g 2x2 + 3g 4 + 4g 4
        (mask((4, 4)), 4 + 1 + 4 + 4 + 4 + 4),
        # free 4-7: 1g 3 (slot 7 is no 1g start) + me 1 + 1g.10gb 2x2 + 2g 1x2 + 3g 4
        (mask((0, 4)), 3 + 1 + 4 + 2 + 4),
        (mask((0, 8)), 0),
        (mask((0, 7)), 0),  # slot 7 alone: nothing fits
    ],
)
def test_placeable_capacity(occupied: int, capacity: int) -> None:
    assert A100.capacity[occupied] == capacity


@pytest.mark.parametrize(
    ("profile", "occupied", "first", "least_loss"),
    [
        ("1g.5gb", 0, 0, 6),  # an empty GPU: packing keeps 0-3 (4g) and the pairs 0-5 whole
        ("1g.5gb", mask((4, 4)), 0, 0),  # 0 and 3 cost the same (13): the lowest start
        ("1g.5gb", mask((0, 4)), 4, 6),
        ("3g.20gb", 0, 0, 4),  # keeps the 4g.20gb placement
        ("3g.20gb", mask((0, 1)), 4, 4),
        ("2g.10gb", mask((0, 2)), 2, 2),  # the pair at 2 keeps the 4-7 half for a 3g (loss 6, not 10)
        ("7g.40gb", mask((7, 1)), -1, -1),
        ("1g.10gb", mask((0, 6)), 6, 6),
    ],
)
def test_first_and_least_loss_starts(profile: str, occupied: int, first: int, least_loss: int) -> None:
    slots = A100.profiles[profile]
    assert slots.first_start[occupied] == first
    assert slots.least_loss_start[occupied] == least_loss


@pytest.mark.parametrize(
    ("occupied", "orphaned"),
    [
        (0, 0),
        (mask((6, 1)), 1),  # slot 7: only 1g.10gb@6, 3g@4 and 7g@0 reach it
        (mask((0, 7)), 1),
        (mask((0, 6)), 0),  # 6-7 still takes a 1g.10gb
        (mask((0, 8)), 0),
        (mask((0, 1), (2, 1), (4, 1), (6, 1)), 1),  # 1, 3, 5 take 1g.5gb; 7 nothing
    ],
)
def test_orphaned_slots(occupied: int, orphaned: int) -> None:
    assert A100.orphaned[occupied] == orphaned


def test_tables_cover_every_occupancy() -> None:
    for geometry in CATALOG.geometry.values():
        assert len(geometry.capacity) == MASKS
        for slots in geometry.profiles.values():
            assert len(slots.first_start) == len(slots.least_loss_start) == len(slots.least_loss_key) == MASKS
            for occupied in range(MASKS):
                free = slots.free_starts(occupied)
                assert slots.first_start[occupied] == (free[0] if free else -1)
                assert (slots.least_loss_start[occupied] in free) if free else slots.least_loss_start[occupied] == -1


def test_slots_free() -> None:
    assert slots_free(0, 8) == 8
    assert slots_free(mask((0, 4), (6, 1)), 8) == 3
