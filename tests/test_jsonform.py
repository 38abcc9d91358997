"""JSON forms: every richer type written by `to_json` comes back exactly through its hint,
and code receiving JSON (a workflow started with JSON arguments) gets the richer types."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import pytest

import durable
from durable.errors import SerializationError
from durable.jsonform import from_json, to_json
from durable.testing import WorkflowEnvironment


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Shipment:
    at: datetime
    day: date
    cutoff: time
    window: timedelta
    price: Decimal
    ref: UUID
    blob: bytes
    colour: Colour
    corner: Point
    pair: tuple[int, str]
    labels: set[str]
    frozen: frozenset[int]
    note: str | None = None


SAMPLE = Shipment(
    at=datetime(2026, 12, 2, 14, 30, 1, 250, tzinfo=timezone(timedelta(hours=-5))),
    day=date(2026, 12, 24),
    cutoff=time(17, 45),
    window=timedelta(hours=2, microseconds=7),
    price=Decimal("19.990"),
    ref=UUID("0b6f6c1e-1a8e-4d0b-9b1e-6a3c2f1d9e77"),
    blob=b"\x00\xffbinary",
    colour=Colour.BLUE,
    corner=Point(3, 4),
    pair=(7, "seven"),
    labels={"fragile", "express"},
    frozen=frozenset({3, 1, 2}),
)


def test_each_form_is_the_documented_one() -> None:
    form = to_json(SAMPLE)
    assert form == {
        "at": "2026-12-02T14:30:01.000250-05:00",
        "day": "2026-12-24",
        "cutoff": "17:45:00",
        "window": 7200.000007,
        "price": "19.990",
        "ref": "0b6f6c1e-1a8e-4d0b-9b1e-6a3c2f1d9e77",
        "blob": "AP9iaW5hcnk=",
        "colour": "blue",
        "corner": [3, 4],
        "pair": [7, "seven"],
        "labels": ["express", "fragile"],
        "frozen": [1, 2, 3],
        "note": None,
    }
    json.dumps(form, allow_nan=False)  # really JSON


def test_round_trip_through_json_text_rebuilds_every_type() -> None:
    text = json.dumps(to_json(SAMPLE))
    back = from_json(json.loads(text), Shipment)
    assert back == SAMPLE
    assert type(back.corner) is Point
    assert type(back.pair) is tuple
    assert type(back.frozen) is frozenset
    assert back.at.utcoffset() == timedelta(hours=-5)


def test_without_a_hint_json_stays_as_it_is() -> None:
    assert from_json({"at": "2026-01-01T00:00:00Z"}) == {"at": "2026-01-01T00:00:00Z"}
    assert from_json([1, "x"], Any) == [1, "x"]


def test_utc_z_suffix_and_naive_values_are_accepted() -> None:
    assert from_json("2026-01-01T00:00:00Z", datetime) == datetime(2026, 1, 1, tzinfo=UTC)
    assert from_json("2026-01-01T08:00:00", datetime).tzinfo is None
    assert from_json(90, timedelta) == timedelta(seconds=90)
    assert from_json(12, Decimal) == Decimal(12)


@pytest.mark.parametrize(
    ("hint", "data", "expected"),
    [
        (datetime, "yesterday", "an ISO 8601 date-time string"),
        (date, 20261224, "an ISO 8601 date string"),
        (timedelta, "2h", "a number of seconds"),
        (timedelta, True, "a number of seconds"),
        (Decimal, "12,50", "a decimal string"),
        (Decimal, "NaN", "a decimal string"),
        (UUID, "not-a-uuid", "a UUID string"),
        (bytes, "***", "a base64 string"),
    ],
)
def test_a_malformed_form_names_the_form_expected(hint: Any, data: Any, expected: str) -> None:
    with pytest.raises(SerializationError, match=expected) as info:
        from_json({"v": data}, dict[str, hint])
    assert str(info.value).startswith("value['v'] does not fit dict[str, ")


def test_a_nested_mismatch_names_its_path() -> None:
    form = to_json(SAMPLE)
    form["at"] = "soon"
    with pytest.raises(SerializationError, match=r"shipment\.at does not fit Shipment"):
        from_json(form, Shipment, what="shipment")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "no JSON form"),
        ({"x": math.inf}, "no JSON form"),
        (Decimal("Infinity"), "not a finite number"),
        ({(1, 2): "tuple key"}, "JSON object keys are strings"),
        (object(), "has no JSON form"),
    ],
)
def test_values_without_a_json_form_are_refused_clearly(value: Any, problem: str) -> None:
    with pytest.raises(SerializationError, match=problem):
        to_json(value)


def test_keys_and_subclasses_become_plain_json() -> None:
    class Name(str):
        pass

    assert to_json({1: "a", 2.5: "b", False: "c", Colour.RED: 1, Name("n"): Name("v")}) == {
        "1": "a",
        "2.5": "b",
        "false": "c",
        "red": 1,
        "n": "v",
    }
    assert type(to_json(Name("v"))) is str
    assert to_json(bytearray(b"ab")) == "YWI="


@durable.workflow
async def book(shipment: Shipment, when: datetime, count: int) -> dict[str, Any]:
    assert isinstance(shipment.price, Decimal)
    return {
        "total": shipment.price * count,
        "weekday": when.weekday(),
        "day": shipment.day,
        "blob": shipment.blob,
    }


async def test_a_workflow_started_with_json_forms_gets_the_richer_types() -> None:
    args = json.loads(json.dumps([to_json(SAMPLE), "2026-12-07T09:00:00+01:00", 3]))
    async with WorkflowEnvironment(workflows=[book]) as env:
        result = await env.client.execute("book", *args)
    assert result == {
        "total": Decimal("59.970"),
        "weekday": 0,
        "day": date(2026, 12, 24),
        "blob": b"\x00\xffbinary",
    }
