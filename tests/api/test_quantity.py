"""Kubernetes quantities: parsing, canonical printing (as the API server prints them), arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flotilla.api.kueue import ResourceQuota
from flotilla.api.quantity import Quantity, QuantityError, QuantityFormat, parse_resource_list

BIN = QuantityFormat.BINARY_SI
DEC = QuantityFormat.DECIMAL_SI
EXP = QuantityFormat.DECIMAL_EXPONENT

# (written, canonical form, exact value, format kept)
CANONICAL: list[tuple[Any, str, str, QuantityFormat]] = [
    # Kubernetes' documented examples.
    ("1.5Gi", "1536Mi", "1610612736", BIN),
    ("1000m", "1", "1", DEC),
    ("0.5", "500m", "0.5", DEC),
    ("1.5", "1500m", "1.5", DEC),
    ("1024Mi", "1Gi", "1073741824", BIN),
    ("1e3", "1e3", "1000", EXP),
    ("1.5k", "1500", "1500", DEC),
    ("0.1n", "1n", "1e-9", DEC),  # rounded up to the 1n precision
    ("1.5Ki", "1536", "1536", BIN),
    # Integers, as YAML gives them, and as strings.
    (8, "8", "8", DEC),
    (0, "0", "0", DEC),
    (1024, "1024", "1024", DEC),  # a plain number is decimal: no Ki
    ("2", "2", "2", DEC),
    ("0", "0", "0", DEC),
    ("-1", "-1", "-1", DEC),
    ("+5", "5", "5", DEC),
    ("1023", "1023", "1023", DEC),
    # Decimal SI suffixes: the largest suffix that keeps the number whole.
    ("100m", "100m", "0.1", DEC),
    ("1.08", "1080m", "1.08", DEC),
    ("1000M", "1G", "1000000000", DEC),
    ("1000000k", "1G", "1000000000", DEC),
    ("300M", "300M", "300000000", DEC),
    ("1234567M", "1234567M", "1234567000000", DEC),
    ("1.5M", "1500k", "1500000", DEC),
    ("12E", "12E", "12000000000000000000", DEC),
    ("1u", "1u", "0.000001", DEC),
    ("1080n", "1080n", "0.00000108", DEC),
    ("3.001n", "4n", "4e-9", DEC),
    ("0.00000012345", "124n", "1.24e-7", DEC),
    (".5", "500m", "0.5", DEC),
    ("5.", "5", "5", DEC),
    # Binary SI suffixes; small or fractional values print in decimal form.
    ("1Ki", "1Ki", "1024", BIN),
    ("6Ki", "6Ki", "6144", BIN),
    ("300Mi", "300Mi", "314572800", BIN),
    ("1024Gi", "1Ti", "1099511627776", BIN),
    ("1001Gi", "1001Gi", "1074815565824", BIN),
    ("0.5Mi", "512Ki", "524288", BIN),
    ("0.5Ki", "512", "512", BIN),
    ("100.035Ki", "102435840m", "102435.84", BIN),
    ("-1.5Gi", "-1536Mi", "-1610612736", BIN),
    ("36Gi", "36Gi", "38654705664", BIN),
    # Decimal exponents keep the exponent form.
    ("1e9", "1e9", "1000000000", EXP),
    ("1E3", "1e3", "1000", EXP),
    ("1e-3", "1e-3", "0.001", EXP),
    ("80e-3", "80e-3", "0.08", EXP),
    ("12e6", "12e6", "12000000", EXP),
    ("1.5e3", "1500", "1500", EXP),
    ("1e+3", "1e3", "1000", EXP),
    ("1e-9", "1e-9", "1e-9", EXP),
    ("1e-10", "1e-9", "1e-9", EXP),
]


@pytest.mark.parametrize(
    ("written", "canonical", "value", "fmt"), CANONICAL, ids=[f"{c[0]!s}->{c[1]}" for c in CANONICAL]
)
def test_parse_and_canonical_form(written: Any, canonical: str, value: str, fmt: QuantityFormat) -> None:
    q = Quantity.parse(written)
    assert str(q) == canonical
    assert q.value == Decimal(value)
    assert q.format is fmt


@pytest.mark.parametrize("canonical", sorted({c[1] for c in CANONICAL}))
def test_canonical_form_is_stable(canonical: str) -> None:
    assert str(Quantity.parse(canonical)) == canonical


INVALID: list[Any] = [
    "",
    " ",
    "8Gx",
    "1.2.3",
    "Gi",
    "1 Gi",
    " 1",
    "1 ",
    "1ki",
    "1KI",
    "1kb",
    "1Gib",
    "--1",
    "+-1",
    "1e",
    "e3",
    "1e3.5",
    "1.5.Gi",
    "abc",
    "0x10",
    "1_000",
    "NaN",
    "inf",
    "1e1001",
    True,
    None,
    [1],
    {"a": 1},
    float("nan"),
    float("inf"),
]


@pytest.mark.parametrize("text", INVALID, ids=repr)
def test_invalid_quantities(text: Any) -> None:
    with pytest.raises(QuantityError, match="is not a quantity"):
        Quantity.parse(text)


def test_error_quotes_the_text() -> None:
    with pytest.raises(QuantityError) as info:
        Quantity.parse("8Gx")
    assert str(info.value) == '"8Gx" is not a quantity'


def test_parse_accepts_numbers_and_quantities() -> None:
    assert str(Quantity.parse(0.5)) == "500m"
    assert str(Quantity.parse(Decimal("2.5"))) == "2500m"
    q = Quantity.parse("1Gi")
    assert Quantity.parse(q) is q


# -- comparison and arithmetic -----------------------------------------------------------------

COMPARISONS: list[tuple[str, str, int]] = [
    ("1000m", "1", 0),
    ("1e3", "1k", 0),
    ("1024Mi", "1Gi", 0),
    ("1Gi", "1G", 1),
    ("999m", "1", -1),
    ("0.5", "500m", 0),
    ("-1", "0", -1),
    ("1Ki", "1000", 1),
    ("1n", "0", 1),
]


@pytest.mark.parametrize(("a", "b", "sign"), COMPARISONS, ids=[f"{c[0]}~{c[1]}" for c in COMPARISONS])
def test_comparisons(a: str, b: str, sign: int) -> None:
    x, y = Quantity.parse(a), Quantity.parse(b)
    assert (x == y) is (sign == 0)
    assert (x < y) is (sign < 0)
    assert (x > y) is (sign > 0)
    assert (x <= y) is (sign <= 0)
    assert (x >= y) is (sign >= 0)
    if sign == 0:
        assert hash(x) == hash(y)


def test_sorting_and_sets_use_the_value() -> None:
    quantities = [Quantity.parse(s) for s in ("1Gi", "500m", "1G", "1", "1000m")]
    assert [str(q) for q in sorted(quantities)] == ["500m", "1", "1", "1G", "1Gi"]
    assert len(set(quantities)) == 4


def test_not_equal_to_other_types() -> None:
    assert Quantity.parse("1") != 1
    assert Quantity.parse("1") != "1"


ARITHMETIC: list[tuple[str, str, str, str]] = [
    ("1Gi", "+", "512Mi", "1536Mi"),
    ("1", "-", "500m", "500m"),
    ("500m", "+", "500m", "1"),
    ("2", "-", "3", "-1"),
    ("1e3", "+", "1e3", "2e3"),  # the left operand's format is kept
    ("1Gi", "-", "1Gi", "0"),
    ("100m", "+", "1n", "100000001n"),
]


@pytest.mark.parametrize(("a", "op", "b", "result"), ARITHMETIC, ids=[f"{a}{op}{b}" for a, op, b, _ in ARITHMETIC])
def test_arithmetic(a: str, op: str, b: str, result: str) -> None:
    x, y = Quantity.parse(a), Quantity.parse(b)
    assert str(x + y if op == "+" else x - y) == result


def test_arithmetic_does_not_change_the_operands() -> None:
    x, y = Quantity.parse("1"), Quantity.parse("2")
    _ = x + y
    assert (str(x), str(y)) == ("1", "2")


@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [("1", 1000, 1), ("1.5", 1500, 2), ("100m", 100, 1), ("1n", 1, 1), ("1Ki", 1024000, 1024), ("0", 0, 0)],
)
def test_scaled_values_round_up(text: str, milli: int, whole: int) -> None:
    q = Quantity.parse(text)
    assert q.milli_value() == milli
    assert q.as_int() == whole


def test_constructor_rounds_to_nano_precision() -> None:
    assert str(Quantity(Decimal("0.0000000001"))) == "1n"
    assert str(Quantity(Decimal("1.0000000001"))) == "1000000001n"
    assert str(Quantity(7, BIN)) == "7"
    assert repr(Quantity.parse("1.5Gi")) == "Quantity('1536Mi')"


# -- as a model field and in resource lists ---------------------------------------------------------


def test_model_field_accepts_ints_and_strings_and_serializes_canonically() -> None:
    quota = ResourceQuota.model_validate({"name": "memory", "nominalQuota": "1024Mi", "lendingLimit": 2})
    assert quota.model_dump(mode="json", exclude_none=True) == {
        "name": "memory",
        "nominalQuota": "1Gi",
        "lendingLimit": "2",
    }
    assert quota.nominalQuota == Quantity.parse("1Gi")


def test_model_field_rejects_bad_quantities() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match='"8Gx" is not a quantity'):
        ResourceQuota.model_validate({"name": "memory", "nominalQuota": "8Gx"})


def test_model_json_schema_is_int_or_string() -> None:
    field = ResourceQuota.model_json_schema()["properties"]["nominalQuota"]
    assert field["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert field["x-kubernetes-int-or-string"] is True


def test_parse_resource_list() -> None:
    resources = parse_resource_list({"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": 1})
    assert {k: str(v) for k, v in resources.items()} == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    with pytest.raises(QuantityError):
        parse_resource_list({"cpu": "two"})
