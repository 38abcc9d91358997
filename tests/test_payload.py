"""The payload codec: msgpack round trips, rebuilding from type hints, and its error messages."""

from __future__ import annotations

import dataclasses
import enum
import math
import socket
import sys
import typing
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Optional, Union
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import msgpack
import pytest

from durable import payload
from durable.errors import ApplicationError, RemoteError, SerializationError


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Item:
    sku: str
    qty: int = 1


@dataclasses.dataclass(frozen=True)
class Address:
    city: str
    zip: str | None = None


@dataclasses.dataclass
class Order:
    id: int
    items: list[Item]
    ship_to: Optional[Address] = None  # noqa: UP045 (the typing spelling must work too)
    tags: set[str] = dataclasses.field(default_factory=set)
    lines: tuple[Item, ...] = ()
    by_sku: dict[str, Item] = dataclasses.field(default_factory=dict)
    color: Color = Color.RED
    total: int = dataclasses.field(default=0, init=False)

    def __post_init__(self) -> None:
        self.total = sum(item.qty for item in self.items)


def roundtrip(value: object, hint: object = None) -> Any:
    return payload.decode(payload.encode(value), hint)


# --- round trips without hints ------------------------------------------------------------

SAMPLES = [
    None,
    True,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    "text",
    "",
    b"\x00bytes",
    [1, "a", None],
    {"a": 1},
    (1, "a", (2, 3)),
    (),
    {1, 2, 3},
    frozenset({"a", "b"}),
    datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime(2024, 1, 1, 12, tzinfo=UTC),
    datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    date(1999, 12, 31),
    time(23, 59, 59, 999999),
    time(8, 30, tzinfo=timezone(timedelta(hours=2))),
    timedelta(days=-3, seconds=5, microseconds=7),
    timedelta(days=999_999_999),
    Decimal("-0.10"),
    Decimal("NaN"),
    Decimal("1E+400"),
    UUID("12345678-1234-5678-1234-567812345678"),
    2**100,
    -(2**200) + 7,
]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_roundtrip_keeps_value_and_exact_type(value: object) -> None:
    decoded = roundtrip(value)
    if isinstance(value, Decimal) and value.is_nan():
        assert decoded.is_nan()
    else:
        assert decoded == value
    assert type(decoded) is type(value)


def test_roundtrip_nested_in_containers() -> None:
    value = {
        "when": [datetime(2024, 5, 1, tzinfo=UTC), date(2024, 5, 1)],
        "ids": {UUID(int=1): (Decimal("1.5"), timedelta(seconds=3))},
        "sets": [{(1, 2), (3, 4)}, frozenset({"red"})],
        (1, "tuple-key"): {b"raw": [1, 2**70]},
    }
    assert roundtrip(value) == value
    assert type(roundtrip(value)["ids"][UUID(int=1)]) is tuple


def test_int_and_other_non_str_keys_roundtrip() -> None:
    value = {1: "one", -2: "minus two", 3.5: "float", None: "none", (1, 2): "tuple"}
    decoded = roundtrip(value)
    assert decoded == value
    assert list(decoded) == [1, -2, 3.5, None, (1, 2)]  # order kept too


def test_bytes_and_str_stay_distinct() -> None:
    decoded = roundtrip([b"abc", "abc", bytearray(b"xy"), memoryview(b"mv")])
    assert decoded == [b"abc", "abc", b"xy", b"mv"]
    assert [type(v) for v in decoded] == [bytes, str, bytes, bytes]


def test_nan_and_infinities() -> None:
    nan, inf, ninf = roundtrip([math.nan, math.inf, -math.inf])
    assert math.isnan(nan)
    assert (inf, ninf) == (math.inf, -math.inf)


def test_aware_datetime_keeps_its_offset_and_naive_stays_naive() -> None:
    paris = datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    decoded = roundtrip(paris)
    assert decoded == paris  # same instant
    assert decoded.utcoffset() == timedelta(hours=2)
    assert decoded.tzinfo == timezone(timedelta(hours=2))  # a fixed offset, not the zone
    assert roundtrip(datetime(2024, 7, 1, tzinfo=UTC)).tzinfo is UTC
    assert roundtrip(datetime(2024, 7, 1, 9, 30)).tzinfo is None


def test_fold_is_kept() -> None:
    ambiguous = datetime(2024, 10, 27, 2, 30, fold=1)
    assert roundtrip(ambiguous).fold == 1
    assert roundtrip(time(1, 0, fold=1)).fold == 1


def test_datetime_with_sub_second_offset_is_refused() -> None:
    odd = datetime(2024, 1, 1, tzinfo=timezone(timedelta(microseconds=5)))
    with pytest.raises(SerializationError, match="sub-second UTC offset"):
        payload.encode({"at": odd})


def test_subclasses_of_native_types_travel_as_the_base_type() -> None:
    class Name(str):
        pass

    class Bag(dict[str, int]):
        pass

    decoded = roundtrip([Name("ada"), Bag(a=1)])
    assert decoded == ["ada", {"a": 1}]
    assert [type(v) for v in decoded] == [str, dict]


def test_sets_encode_to_the_same_bytes_whatever_their_insertion_order() -> None:
    first = {f"member-{i}" for i in range(50)}
    second = {f"member-{i}" for i in reversed(range(50))}
    assert payload.encode(first) == payload.encode(second)


def test_namedtuple_travels_as_tuple_and_comes_back_with_a_hint() -> None:
    assert roundtrip(Point(1, 2)) == (1, 2)
    assert type(roundtrip(Point(1, 2))) is tuple
    assert roundtrip(Point(1, 2), Point) == Point(1, 2)
    assert type(roundtrip(Point(1, 2), Point)) is Point


# --- Enum ---------------------------------------------------------------------------------


@pytest.mark.parametrize("member", [Color.GREEN, Level.HIGH], ids=repr)
def test_enum_roundtrips_with_its_hint_and_is_its_raw_value_without(member: enum.Enum) -> None:
    assert roundtrip(member, type(member)) is member
    assert roundtrip([member], list[type(member)]) == [member]  # type: ignore[misc]
    decoded = roundtrip(member)
    assert decoded == member.value
    assert type(decoded) is type(member.value)  # not the member, not even an IntEnum


def test_enum_of_a_class_the_hint_does_not_name_is_its_raw_value() -> None:
    data = payload.encode({"c": Color.RED})
    assert payload.decode(data, dict[str, Any]) == {"c": "red"}
    assert payload.decode(data, dict[str, Level | str]) == {"c": "red"}
    assert payload.decode(data, dict[str, Color]) == {"c": Color.RED}


def test_enum_that_cannot_be_imported_decodes_to_its_value_unless_hinted() -> None:
    class Local(enum.Enum):  # "<locals>" in its qualified name: not importable
        A = "a"

    data = payload.encode(Local.A)
    assert payload.decode(data) == "a"
    assert payload.decode(data, Local) is Local.A


def test_enum_name_that_resolves_to_a_non_enum_gives_the_raw_value() -> None:
    data = msgpack.packb(msgpack.ExtType(10, msgpack.packb(["os:getcwd", 3])))
    assert payload.decode(data) == 3
    assert payload.decode(data, int) == 3


def test_enum_value_no_longer_a_member_is_an_error_when_hinted() -> None:
    data = msgpack.packb(msgpack.ExtType(10, msgpack.packb([f"{__name__}:Color", "blue"])))
    assert payload.decode(data) == "blue"
    with pytest.raises(SerializationError, match=r"'blue' is not a member of .*Color"):
        payload.decode(data, Color)


def _probe_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """A module on sys.path that, if ever imported, leaves a file behind."""
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
        "import enum\nclass Color(enum.Enum):\n    RED = 'red'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return marker


@pytest.mark.parametrize("hint", [None, Any, Color, list[Any], dict[str, Color]], ids=repr)
def test_decoding_never_imports_the_module_a_payload_names(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, hint: object
) -> None:
    name = f"durable_probe_{uuid4().hex}"  # a fresh module each time: none is cached
    marker = _probe_module(tmp_path, monkeypatch, name)
    before = set(sys.modules)
    enum_ext = msgpack.ExtType(10, msgpack.packb([f"{name}:Color", "red"]))
    for value in ([enum_ext], {"c": enum_ext}, enum_ext):
        try:
            payload.decode(msgpack.packb(value), hint)
        except SerializationError:
            pass  # not fitting the hint is fine; importing is not
    assert set(sys.modules) - before == set()
    assert not marker.exists()


def test_decoding_a_signal_naming_an_unimported_stdlib_module_imports_nothing() -> None:
    if "this" in sys.modules:  # pragma: no cover - someone imported it already
        pytest.skip("'this' is already imported")
    data = msgpack.packb(msgpack.ExtType(10, msgpack.packb(["this:s", "x"])))
    assert payload.decode(data, what="signal 'x'") == "x"
    assert "this" not in sys.modules


@pytest.mark.parametrize(
    "value",
    [
        msgpack.ExtType(10, msgpack.packb(["this:s", 1])),
        [1, msgpack.ExtType(1, b"\xc1")],
        {"k": (1, msgpack.ExtType(99, b""))},
        {msgpack.ExtType(5, b"\x00"): 1},
        Item(msgpack.ExtType(7, b""), 1),  # type: ignore[arg-type]
        {"at": msgpack.Timestamp(0, 0)},
        frozenset({msgpack.ExtType(2, b"")}),
        [(1, 2), msgpack.ExtType(1, msgpack.packb([1]))],  # next to one of ours, same code
        [datetime(2024, 1, 1), msgpack.Timestamp(5, 0)],
    ],
    ids=[
        "top",
        "in-list",
        "in-tuple",
        "dict-key",
        "dataclass-field",
        "timestamp",
        "frozenset",
        "beside-ours",
        "timestamp-beside-ours",
    ],
)
def test_raw_msgpack_extension_values_are_refused(value: object) -> None:
    with pytest.raises(SerializationError, match=r"raw msgpack extension value") as info:
        payload.encode(value, what="signal 'go'")
    assert "Cannot serialize signal 'go'" in str(info.value)


def test_raw_extension_argument_is_refused_naming_the_parameter() -> None:
    with pytest.raises(SerializationError, match=r"argument 'cents'.*raw msgpack extension"):
        payload.encode_args(
            charge, (make_order(), msgpack.ExtType(10, b"")), {}, what="arguments of 'charge'"
        )


def test_frozen_dataclasses_as_set_members_and_dict_keys_round_trip() -> None:
    places = {Address("Oslo"), Address("Rome", "00100")}
    assert roundtrip(places, set[Address]) == places
    assert roundtrip(frozenset(places), frozenset[Address]) == frozenset(places)
    assert roundtrip({(Address("Oslo"), 1)}, set[tuple[Address, int]]) == {(Address("Oslo"), 1)}
    by_place = {Address("Oslo"): [Item("a")], Address("Rome"): []}
    decoded = roundtrip(by_place, dict[Address, list[Item]])
    assert decoded == by_place
    assert type(next(iter(decoded))) is Address
    assert type(decoded[Address("Oslo")][0]) is Item


def test_frozen_dataclass_keys_without_a_hint_come_back_as_hashable_maps() -> None:
    decoded = roundtrip({Address("Oslo"): 1, "plain": {"k": 2}})
    key = next(iter(decoded))
    assert key == {"city": "Oslo", "zip": None}
    assert decoded[key] == 1
    assert decoded["plain"] == {"k": 2}
    members = roundtrip({Address("Oslo")})
    assert members == {next(iter(members))}
    assert next(iter(members)) == {"city": "Oslo", "zip": None}


def test_ext_header_bytes_without_an_extension_value_encode_normally() -> None:
    # 0xd4-0xd8 and 0xc7-0xc9 bytes inside strings and binaries trigger the check, which
    # must then find nothing and let the value through unchanged.
    value = {"text": "Ԁ Ǉ ȁ", "bin": bytes(range(0xC7, 0xD9)), "n": 0xD6}
    assert roundtrip(value) == value
    looks_like_a_timestamp = [0xD6, -1, 0xC7, 12, -1, (1, 2)]  # cc d6 ff ... c7 0c ff
    assert roundtrip(looks_like_a_timestamp) == looks_like_a_timestamp


# --- dataclasses and hints ----------------------------------------------------------------


def make_order() -> Order:
    return Order(
        id=7,
        items=[Item("a", 2), Item("b")],
        ship_to=Address("Paris", "75001"),
        tags={"gift", "fragile"},
        lines=(Item("c", 3),),
        by_sku={"a": Item("a", 2)},
        color=Color.GREEN,
    )


def test_dataclass_encodes_as_plain_map_without_class_information() -> None:
    data = payload.encode(Item("a", 2))
    assert msgpack.unpackb(data) == {"sku": "a", "qty": 2}
    assert b"Item" not in data
    assert payload.decode(data) == {"sku": "a", "qty": 2}


def test_dataclass_rebuilt_from_hint_recursively() -> None:
    order = make_order()
    decoded = roundtrip(order, Order)
    assert decoded == order
    assert type(decoded.items[0]) is Item
    assert type(decoded.ship_to) is Address
    assert type(decoded.lines) is tuple
    assert type(decoded.lines[0]) is Item
    assert type(decoded.by_sku["a"]) is Item
    assert decoded.color is Color.GREEN
    assert decoded.total == 3  # an init=False field is recomputed, not stored


def test_init_false_fields_are_not_encoded() -> None:
    assert "total" not in payload.decode(payload.encode(make_order()))


def test_dataclass_defaults_fill_missing_optional_fields() -> None:
    decoded = payload.decode(payload.encode({"id": 1, "items": []}), Order)
    assert decoded == Order(id=1, items=[])
    assert decoded.ship_to is None
    assert decoded.tags == set()


def test_list_of_dataclasses_and_optional_hints() -> None:
    items = [Item("a"), Item("b", 5)]
    assert roundtrip(items, list[Item]) == items
    assert roundtrip(None, Optional[Item]) is None  # noqa: UP045
    assert roundtrip(Item("x"), Item | None) == Item("x")
    assert roundtrip({"k": [Item("a")]}, dict[str, list[Item]]) == {"k": [Item("a")]}


def test_hints_turn_lists_into_tuples_and_sets() -> None:
    assert roundtrip([1, 2], tuple[int, ...]) == (1, 2)
    assert roundtrip([1, "a"], tuple[int, str]) == (1, "a")
    assert roundtrip([1, 1, 2], set[int]) == {1, 2}
    assert type(roundtrip([1], frozenset[int])) is frozenset
    assert roundtrip((1, 2), list[int]) == [1, 2]


def test_union_members_are_tried_in_order() -> None:
    hint = Union[int, Item, Address]  # noqa: UP007
    assert roundtrip(Address("Oslo"), hint) == Address("Oslo")
    assert roundtrip(Item("a"), hint) == Item("a")
    assert roundtrip(5, hint) == 5
    with pytest.raises(SerializationError, match=r"matches no member .*expected int, got a str"):
        roundtrip("nope", hint)


def test_fixed_tuple_hint_checks_length_and_items() -> None:
    with pytest.raises(SerializationError, match=r"expected tuple\[int, str\], got a list"):
        roundtrip([1, "a", 2], tuple[int, str])
    with pytest.raises(SerializationError, match=r"value\[1\] .*expected str, got an int"):
        roundtrip([1, 2], tuple[int, str])


def test_any_and_unannotated_keep_the_plain_value() -> None:
    assert roundtrip({"sku": "a"}, Any) == {"sku": "a"}
    assert roundtrip({"sku": "a"}, dict[str, Any]) == {"sku": "a"}


def test_int_is_accepted_where_float_is_hinted() -> None:
    assert roundtrip(3, float) == 3


def test_literal_and_annotated_hints() -> None:
    assert roundtrip("a", Literal["a", "b"]) == "a"
    assert roundtrip(Item("a"), typing.Annotated[Item, "meta"]) == Item("a")
    with pytest.raises(SerializationError, match="expected one of"):
        roundtrip("c", Literal["a", "b"])


def test_remote_error_roundtrips_with_its_cause() -> None:
    error = RemoteError("ValueError", "bad", "tb", {"k": 1}, True, RemoteError("KeyError", "k"))
    assert payload.decode(payload.encode(error)) == error.to_dict()
    decoded = roundtrip(error, RemoteError)
    assert decoded == error
    assert type(decoded.cause) is RemoteError


def test_unknown_field_names_the_field_and_the_path() -> None:
    data = payload.encode({"id": 1, "items": [{"sku": "a"}, {"sku": "b", "colour": "red"}]})
    with pytest.raises(SerializationError) as info:
        payload.decode(data, Order, what="result of activity 'load'", root="result")
    message = str(info.value)
    assert "Cannot decode result of activity 'load'" in message
    assert "result.items[1]" in message
    assert "unknown field 'colour' for Item" in message
    assert "sku, qty" in message


def test_missing_required_field_is_an_error() -> None:
    data = payload.encode({"id": 1, "items": [{"qty": 2}]})
    with pytest.raises(
        SerializationError, match=r"value\.items\[0\].*missing required field 'sku'"
    ):
        payload.decode(data, Order)


def test_wrong_type_inside_a_dataclass_names_the_path() -> None:
    data = payload.encode({"id": 1, "items": [], "by_sku": {"a": {"sku": 5}}})
    with pytest.raises(SerializationError, match=r"value\.by_sku\['a'\]\.sku .*expected str"):
        payload.decode(data, Order)


def test_post_init_failure_is_reported() -> None:
    @dataclasses.dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    with pytest.raises(SerializationError, match="n must be positive"):
        roundtrip({"n": -1}, Positive)


# --- arguments and results ----------------------------------------------------------------


def charge(order: Order, cents: int, *extra: Item, note: str = "", **meta: Address) -> Item:
    return Item("receipt")


async def load(order_id: int) -> list[Order]:
    return []


def test_encode_args_decode_args_rebuild_every_parameter() -> None:
    order = make_order()
    data = payload.encode_args(
        charge,
        (order, 500, Item("x"), Item("y", 2)),
        {"note": "hi", "home": Address("Rome")},
        what="arguments of activity 'charge'",
    )
    assert msgpack.unpackb(data, strict_map_key=False, ext_hook=lambda c, d: d).keys() == {
        "args",
        "kwargs",
    }
    args, kwargs = payload.decode_args(charge, data)
    assert args == (order, 500, Item("x"), Item("y", 2))
    assert type(args[0]) is Order
    assert type(args[2]) is Item
    assert kwargs == {"note": "hi", "home": Address("Rome")}
    assert type(kwargs["home"]) is Address


def test_order_passed_by_keyword_is_rebuilt_too() -> None:
    data = payload.encode_args(charge, (), {"order": make_order(), "cents": 1}, what="args")
    args, kwargs = payload.decode_args(charge, data)
    assert args == ()
    assert type(kwargs["order"]) is Order


def test_encode_args_refuses_a_call_that_does_not_match_the_signature() -> None:
    with pytest.raises(
        TypeError, match=r"charge\(\) .*missing a required argument: 'cents'"
    ) as info:
        payload.encode_args(charge, (make_order(),), {}, what="arguments of activity 'charge'")
    assert not isinstance(info.value, SerializationError)


def test_decode_result_uses_the_return_annotation() -> None:
    assert payload.decode_result(charge, payload.encode(Item("r"))) == Item("r")
    decoded = payload.decode_result(load, payload.encode([make_order()]))
    assert decoded == [make_order()]
    assert type(decoded[0]) is Order


def test_decode_args_refuses_data_that_is_not_an_arguments_map() -> None:
    with pytest.raises(SerializationError, match="not an arguments payload"):
        payload.decode_args(charge, payload.encode([1, 2]))


def test_decode_args_error_names_the_argument() -> None:
    data = payload.encode({"args": [{"id": 1, "items": [{"sku": 1}]}, 5], "kwargs": {}})
    with pytest.raises(SerializationError, match=r"argument 'order'.*order\.items\[0\]\.sku"):
        payload.decode_args(charge, data)


def test_unresolvable_annotations_are_reported_with_the_fix() -> None:
    def broken(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(SerializationError, match=r"type hints of .*broken.*TYPE_CHECKING"):
        payload.decode_args(broken, payload.encode({"args": [1], "kwargs": {}}))
    with pytest.raises(SerializationError, match="name 'Missing' is not defined"):
        payload.encode_args(broken, (1,), {}, what="arguments of activity 'broken'")


# --- unsupported values and limits --------------------------------------------------------


def test_unsupported_value_names_what_and_the_path() -> None:
    sock = socket.socket()
    try:
        value = {"items": [Item("a"), Item("b"), {"owner": sock}]}
        with pytest.raises(SerializationError) as info:
            payload.encode(value, what="argument 'order' of activity 'charge'", root="order")
    finally:
        sock.close()
    message = str(info.value)
    assert message.startswith("Cannot serialize argument 'order' of activity 'charge': ")
    assert "the value at order['items'][2]['owner'] is a socket.socket" in message
    assert "tuple, set" in message
    assert "pass an id instead" in message


def test_unsupported_argument_names_the_parameter_and_the_dataclass_path() -> None:
    bad = make_order()
    bad.items[1].sku = object()  # type: ignore[assignment]
    with pytest.raises(SerializationError) as info:
        payload.encode_args(charge, (bad, 1), {}, what="arguments of activity 'charge'")
    message = str(info.value)
    assert "arguments of activity 'charge': argument 'order'" in message
    assert "order.items[1].sku is an object" in message


def test_unsupported_star_args_and_kwargs_are_named() -> None:
    with pytest.raises(SerializationError, match=r"argument '\*extra'.*extra\[1\] is a function"):
        payload.encode_args(charge, (make_order(), 1, Item("a"), lambda: 0), {}, what="args")
    with pytest.raises(SerializationError, match=r"argument 'home'.*home\.city is a type"):
        payload.encode_args(charge, (make_order(), 1), {"home": Address(int)}, what="args")  # type: ignore[arg-type]


def test_unsupported_dict_key_is_reported_as_a_key() -> None:
    with pytest.raises(SerializationError, match=r"a key in value\['m'\] is an object"):
        payload.encode({"m": {object(): 1}})


def test_no_pickle_fallback_for_arbitrary_objects() -> None:
    class Plain:
        def __init__(self) -> None:
            self.x = 1

    for value in (Plain(), print, Item, Exception("x"), iter([1])):
        with pytest.raises(SerializationError, match="Cannot serialize"):
            payload.encode(value)


def test_reference_cycle_is_reported() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    with pytest.raises(SerializationError, match=r"value\['loop'\]\[1\] is a reference back"):
        payload.encode({"loop": loop})


def test_payload_over_the_limit_is_refused_with_the_fix() -> None:
    with pytest.raises(SerializationError) as info:
        payload.encode(b"x" * (payload.MAX_PAYLOAD_BYTES + 1), what="result of activity 'dump'")
    message = str(info.value)
    assert "result of activity 'dump'" in message
    assert "2,097,158 bytes" in message  # the size: 5 bytes of header
    assert "limit of 2,097,152 bytes (2.00 MiB)" in message
    assert "file path" in message
    assert payload.encode(b"x" * 100, limit=200)
    with pytest.raises(SerializationError, match="payload limit"):
        payload.encode(b"x" * 100, limit=50)
    with pytest.raises(SerializationError, match="payload limit"):
        payload.encode_args(charge, (make_order(), 1), {}, what="args", limit=10)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", b"\x81\xa1a", b"\x01\x02", b"\xd4\x63\x00"],
    ids=["empty", "reserved-byte", "truncated-array", "truncated-map", "extra-data", "ext-99"],
)
def test_corrupt_bytes_are_a_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match="Cannot decode signal 'paid'"):
        payload.decode(data, what="signal 'paid'")


def test_error_record_keeps_storable_details_and_replaces_the_rest_with_a_note() -> None:
    kept = payload.error_record(ApplicationError("declined", details={"code": 51}))
    assert kept.details == {"code": 51}
    odd = payload.error_record(ApplicationError("odd", details={"sock": object()}))
    assert "object object" in odd.details["unstorable"]
    assert "Cannot serialize ApplicationError details" in odd.details["why"]
    big = payload.error_record(ApplicationError("big", details=b"x" * 70_000))
    assert "payload limit" in big.details["why"]
    assert payload.decode(payload.encode(odd.to_dict()))["details"] == odd.details
