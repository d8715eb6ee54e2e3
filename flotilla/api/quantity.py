"""Kubernetes resource quantities (`500m`, `36Gi`, `1e3`, `2`), parsed and printed as Kubernetes does.

A quantity is an exact decimal number plus the *format* it was written in (binary SI suffixes,
decimal SI suffixes, or a decimal exponent). Kubernetes keeps the format and prints the value in
canonical form: the largest suffix that keeps an integer mantissa (`1.5Gi` -> `1536Mi`,
`1000m` -> `1`, `0.5` -> `500m`). Values are rounded up to a precision of 1n, as Kubernetes does.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum
from functools import total_ordering
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class QuantityFormat(StrEnum):
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"
    DECIMAL_EXPONENT = "DecimalExponent"


_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BINARY_SUFFIX = {v: k for k, v in _BINARY.items()}

# <signedNumber><suffix>, as in k8s.io/apimachinery/pkg/api/resource.
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_NANO = Decimal("1e-9")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


@total_ordering
class Quantity:
    """An exact Kubernetes quantity. Compare, add and subtract by value; `str()` is canonical."""

    __slots__ = ("_format", "_value")

    def __init__(self, value: Decimal | int, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> None:
        value = Decimal(value)
        if value != 0 and value.as_tuple().exponent < -9:  # type: ignore[operator]
            value = value.quantize(_NANO, rounding=ROUND_CEILING)
        self._value = value
        self._format = fmt

    # -- parsing ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | int | float | Decimal | Quantity) -> Quantity:
        """Parse what Kubernetes accepts for a quantity; raise QuantityError otherwise."""
        if isinstance(text, Quantity):
            return text
        if isinstance(text, bool):
            raise QuantityError(f"{text!r} is not a quantity")
        if isinstance(text, int):
            return cls(Decimal(text))
        if isinstance(text, float):
            if text != text or text in (float("inf"), float("-inf")):
                raise QuantityError(f"{text!r} is not a quantity")
            return cls(Decimal(repr(text)))
        if isinstance(text, Decimal):
            return cls(text)
        if not isinstance(text, str):
            raise QuantityError(f"{text!r} is not a quantity")
        m = _QUANTITY_RE.match(text.strip()) if text == text.strip() else None
        if m is None:
            raise QuantityError(f'"{text}" is not a quantity')
        try:
            number = Decimal(m.group("num"))
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise QuantityError(f'"{text}" is not a quantity') from exc
        suffix = m.group("suffix") or ""
        if suffix in _BINARY:
            return cls(number * (Decimal(1024) ** _BINARY[suffix]), QuantityFormat.BINARY_SI)
        if suffix in _DECIMAL:
            return cls(number.scaleb(_DECIMAL[suffix]), QuantityFormat.DECIMAL_SI)
        exponent = int(suffix[1:])
        if abs(exponent) > 1000:
            raise QuantityError(f'"{text}" is not a quantity: exponent out of range')
        return cls(number.scaleb(exponent), QuantityFormat.DECIMAL_EXPONENT)

    # -- value access ---------------------------------------------------------------------------
    @property
    def value(self) -> Decimal:
        return self._value

    @property
    def format(self) -> QuantityFormat:
        return self._format

    def milli_value(self) -> int:
        """The value in thousandths, rounded up (Kubernetes' MilliValue)."""
        return int((self._value * 1000).to_integral_value(rounding=ROUND_CEILING))

    def as_int(self) -> int:
        """The value rounded up to an integer (Kubernetes' Value)."""
        return int(self._value.to_integral_value(rounding=ROUND_CEILING))

    # -- arithmetic and ordering ----------------------------------------------------------------
    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self._value + other._value, self._format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self._value - other._value, self._format)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._value == other._value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self._value < other._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    # -- canonical printing ---------------------------------------------------------------------
    def __str__(self) -> str:
        value = self._value
        if value == 0:
            return "0"
        fmt = self._format
        if fmt is QuantityFormat.BINARY_SI:
            # Kubernetes prints small or fractional binary values in decimal form.
            if -1024 < value < 1024 or value != value.to_integral_value():
                fmt = QuantityFormat.DECIMAL_SI
            else:
                return _canonical_binary(int(value))
        mantissa, exponent = _canonical_base10(value)
        if fmt is QuantityFormat.DECIMAL_EXPONENT:
            return f"{mantissa}e{exponent}" if exponent != 0 else str(mantissa)
        return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def _canonical_base10(value: Decimal) -> tuple[int, int]:
    """Integer mantissa and an exponent that is a multiple of 3 in [-9, 18], mantissa smallest."""
    sign, digits, exp = value.normalize().as_tuple()
    assert isinstance(exp, int)
    mantissa = int("".join(map(str, digits)))
    # Bring the exponent down to a multiple of 3 (never below -9: values are rounded to 1n).
    while exp % 3 != 0:
        mantissa *= 10
        exp -= 1
    while exp > 18:
        mantissa *= 1000
        exp -= 3
    return (-mantissa if sign else mantissa), exp


def _canonical_binary(value: int) -> str:
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    power = 0
    while power < 6 and magnitude % 1024 == 0 and magnitude >= 1024:
        magnitude //= 1024
        power += 1
    return f"{sign}{magnitude}{_BINARY_SUFFIX.get(power, '')}"


def _validate_quantity(v: Any) -> Quantity:
    try:
        return Quantity.parse(v)
    except QuantityError as exc:
        raise ValueError(str(exc)) from None


def _quantity_core_schema(cls: type[Quantity], source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    return core_schema.no_info_plain_validator_function(
        _validate_quantity,
        serialization=core_schema.plain_serializer_function_ser_schema(str, return_schema=core_schema.str_schema()),
    )


def _quantity_json_schema(cls: type[Quantity], schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    return {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}


# Quantity is a pydantic field type: it accepts ints and strings and serializes canonically.
Quantity.__get_pydantic_core_schema__ = classmethod(_quantity_core_schema)  # type: ignore[attr-defined]
Quantity.__get_pydantic_json_schema__ = classmethod(_quantity_json_schema)  # type: ignore[attr-defined]
QuantityField = Quantity


def parse_resource_list(resources: dict[str, Any]) -> dict[str, Quantity]:
    """Parse a Kubernetes ResourceList (`{"cpu": "2", "memory": "4Gi"}`)."""
    return {name: Quantity.parse(v) for name, v in resources.items()}
