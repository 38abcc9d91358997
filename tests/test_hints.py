"""Rebuilding decoded values from type hints: unions of dataclasses, containers, keys, enums.

Each test pins one branch of a converter where a wrong or merely similar value could slip
through as the wrong type; most go through `payload.encode`/`payload.decode` as users do.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import (
    Annotated,
    Any,
    Literal,
    NamedTuple,
    NewType,
    NotRequired,
    Optional,
    Protocol,
    Required,
    TypedDict,
    Union,
)
from uuid import UUID

import msgpack
import pytest

import durable
from durable import hints, payload
from durable.errors import SerializationError


@dataclasses.dataclass
class Cat:
    name: str
    lives: int = 9


@dataclasses.dataclass
class Dog:
    name: str
    lives: int = 1


@dataclasses.dataclass
class Puppy:  # every field of Puppy is a field of Dog, and it has what Dog requires
    name: str


@dataclasses.dataclass
class Fish:
    fins: int


@dataclasses.dataclass
class TaggedCat:
    name: str
    kind: Literal["cat"] = "cat"


@dataclasses.dataclass
class TaggedDog:
    name: str
    kind: Literal["dog"] = "dog"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Shade(enum.StrEnum):
    S = "s"


class Size(enum.StrEnum):
    S = "s"
    M = "m"


class Point(NamedTuple):
    x: int
    y: int


UserId = NewType("UserId", int)


def roundtrip(value: object, hint: object) -> Any:
    return payload.decode(payload.encode(value), hint)


def plain(value: object, hint: object) -> Any:
    """Decode the plain msgpack form of `value` (as written by another program) with `hint`."""
    return payload.decode(msgpack.packb(value), hint)


# --- unions of dataclasses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "hint",
    [
        Union[Cat, Dog],  # noqa: UP007
        Cat | Dog,
        list[Cat | Dog],
        dict[str, Cat | Dog],
        Optional[Cat | Dog],  # noqa: UP045
        tuple[int, Cat | Dog],
        Annotated[Cat | Dog, "meta"],
    ],
    ids=repr,
)
def test_union_of_dataclasses_with_overlapping_fields_is_refused(hint: object) -> None:
    with pytest.raises(SerializationError) as info:
        payload.decode(payload.encode(Dog("rex")), hint)
    message = str(info.value)
    assert "a Dog would come back as a Cat" in message
    assert 'kind: Literal["cat"] = "cat" in Cat' in message


def test_a_dog_is_never_silently_decoded_as_a_cat() -> None:
    # Before the check, this returned Cat(name='rex', lives=1).
    with pytest.raises(SerializationError):
        roundtrip(Dog("rex"), Cat | Dog)


def test_union_refusal_names_the_parameter_and_the_function() -> None:
    def adopt(pet: Cat | Dog) -> None:
        pass

    with pytest.raises(SerializationError, match=r"Parameter 'pet' of .*adopt\(\).*Cat \| "):
        payload.encode_args(adopt, (Cat("tom"),), {}, what="arguments of 'adopt'")

    def fetch() -> list[Cat | Dog]:
        return []

    with pytest.raises(SerializationError, match=r"Return type of .*fetch\(\)"):
        payload.decode_result(fetch, payload.encode([]))


def test_union_is_refused_when_the_workflow_or_activity_is_decorated() -> None:
    with pytest.raises(SerializationError, match="would come back as a Cat"):

        @durable.activity
        async def groom(pet: Cat | Dog) -> None:
            pass

    with pytest.raises(SerializationError, match="would come back as a Cat"):

        @durable.workflow
        async def shelter() -> dict[str, list[Cat | Dog]]:
            return {}


def test_decoration_leaves_hints_naming_later_classes_for_the_first_call() -> None:
    @durable.activity
    async def later(pet: NotYetDefined) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    assert later.__durable_activity__.name == "later"  # type: ignore[attr-defined]


def test_subset_class_listed_first_is_fine_and_suggested_when_listed_second() -> None:
    assert type(roundtrip(Puppy("a"), Puppy | Dog)) is Puppy
    assert type(roundtrip(Dog("a"), Puppy | Dog)) is Dog  # Puppy refuses the extra field
    with pytest.raises(SerializationError, match="or list Puppy before Dog"):
        roundtrip(Dog("a"), Dog | Puppy)


def test_union_order_is_kept_apart_in_the_caches() -> None:
    assert type(roundtrip([Puppy("a")], list[Puppy | Dog])[0]) is Puppy
    with pytest.raises(SerializationError, match="or list Puppy before Dog"):
        roundtrip([Puppy("a")], list[Dog | Puppy])  # equal to list[Puppy | Dog], but refused


def test_ambiguous_in_both_directions_does_not_suggest_reordering() -> None:
    with pytest.raises(SerializationError) as info:
        roundtrip(Cat("a"), Cat | Dog)
    assert "list" not in str(info.value).split("Cat and")[-1]


def test_union_with_literal_discriminators_keeps_each_class() -> None:
    hint = TaggedCat | TaggedDog
    assert type(roundtrip(TaggedDog("rex"), hint)) is TaggedDog
    assert type(roundtrip(TaggedCat("tom"), hint)) is TaggedCat
    assert type(roundtrip([TaggedDog("a")], list[hint])[0]) is TaggedDog  # type: ignore[valid-type]


def test_union_of_dataclasses_with_disjoint_fields_keeps_each_class() -> None:
    assert type(roundtrip(Fish(2), Cat | Fish)) is Fish
    assert type(roundtrip(Cat("tom"), Cat | Fish)) is Cat
    assert roundtrip(None, Cat | Fish | None) is None


def test_union_of_a_dataclass_and_a_dict_is_refused() -> None:
    for hint in (Cat | dict[str, Any], Union[Mapping[str, int], Cat]):  # noqa: UP007
        with pytest.raises(SerializationError, match="cannot be told from"):
            roundtrip(Cat("tom"), hint)


def test_same_class_twice_in_a_union_is_not_ambiguous() -> None:
    assert roundtrip(Cat("a"), Union[Cat, Annotated[Cat, "x"]]) == Cat("a")  # noqa: UP007


# --- unions of other types ----------------------------------------------------------------


def test_union_offers_a_container_to_the_member_of_its_own_type_first() -> None:
    assert type(roundtrip((1, 2), list[int] | tuple[int, ...])) is tuple
    assert type(roundtrip([1, 2], list[int] | tuple[int, ...])) is list
    assert type(roundtrip(frozenset({1}), set[int] | frozenset[int])) is frozenset
    assert type(roundtrip(Point(1, 2), list[int] | Point)) is Point


def test_union_reports_the_member_it_got_furthest_into() -> None:
    with pytest.raises(SerializationError, match=r"value\.fins .*expected int, got a str"):
        plain({"fins": "two"}, int | Fish)


def test_union_reports_every_member_when_none_got_anywhere() -> None:
    with pytest.raises(SerializationError, match=r"as int: .*; as str: "):
        roundtrip(1.5, int | str)


def test_union_of_enums_keeps_the_class_the_value_was_written_from() -> None:
    # Shade.S == Size.S == "s": each must still come back as its own class.
    assert roundtrip(Size.S, Shade | Size) is Size.S
    assert roundtrip(Shade.S, Shade | Size) is Shade.S
    assert roundtrip([Size.S], list[Shade | Size]) == [Size.S]


def test_optional_passes_none_and_checks_the_rest() -> None:
    assert plain(None, Optional[int]) is None  # noqa: UP045
    with pytest.raises(SerializationError, match="expected int, got a str"):
        plain("x", Optional[int])  # noqa: UP045


def test_any_in_a_union_accepts_everything_as_it_is() -> None:
    assert plain({"name": "x"}, Union[Cat, Any]) == {"name": "x"}  # noqa: UP007


# --- sequences, sets, tuples --------------------------------------------------------------


def test_sequence_hints_refuse_what_is_not_a_sequence() -> None:
    for hint in (list[int], tuple[int, ...], Sequence[int], list):
        with pytest.raises(SerializationError, match="expected a sequence, got a dict"):
            plain({"a": 1}, hint)


def test_sequence_items_are_checked_and_the_index_named() -> None:
    with pytest.raises(SerializationError, match=r"value\[2\] .*expected int, got a str"):
        plain([1, 2, "3"], list[int])
    with pytest.raises(SerializationError, match=r"value\[1\] .*expected int"):
        plain([1, "x"], tuple[int, ...])


def test_sequence_items_are_rebuilt() -> None:
    assert roundtrip([Cat("a")], list[Cat]) == [Cat("a")]
    assert roundtrip([Cat("a")], tuple[Cat, ...]) == (Cat("a"),)
    assert roundtrip((Cat("a"),), Sequence[Cat]) == (Cat("a"),)  # kept as the type it came as
    assert type(plain([1], Sequence[int])) is list


def test_bare_container_hints_still_convert_the_container() -> None:
    assert roundtrip([1], tuple) == (1,)
    assert roundtrip((1,), list) == [1]
    assert roundtrip([1], set) == {1}


def test_set_hints() -> None:
    assert roundtrip({Color.RED}, set[Color]) == {Color.RED}
    assert plain(["red"], set[Color]) == {Color.RED}
    assert type(plain([1], frozenset[int])) is frozenset
    with pytest.raises(SerializationError, match="expected a set, got a str"):
        plain("ab", set[str])
    with pytest.raises(SerializationError, match=r"value\{\.\.\.\} .*expected int"):
        plain([1, "x"], set[int])


def test_fixed_tuple_rebuilds_each_position() -> None:
    assert roundtrip((Cat("a"), 1), tuple[Cat, int]) == (Cat("a"), 1)
    assert type(roundtrip((Cat("a"), 1), tuple[Cat, int])[0]) is Cat
    with pytest.raises(SerializationError, match=r"expected tuple\[int, int\], got a tuple"):
        roundtrip((1,), tuple[int, int])


def test_namedtuple_checks_its_fields() -> None:
    assert roundtrip((1, 2), Point) == Point(1, 2)
    with pytest.raises(SerializationError, match=r"value\[1\] .*expected int"):
        plain([1, "2"], Point)
    with pytest.raises(SerializationError, match="expected Point"):
        plain([1, 2, 3], Point)


# --- mappings and their keys --------------------------------------------------------------


def test_dict_keys_are_rebuilt_from_the_hint() -> None:
    assert plain({"red": 1}, dict[Color, int]) == {Color.RED: 1}
    assert type(next(iter(plain({"red": 1}, dict[Color, int])))) is Color
    decoded = roundtrip({(1, 2): "a"}, dict[Point, str])
    assert type(next(iter(decoded))) is Point
    uid = UUID(int=5)
    by_id = roundtrip({uid: Cat("tom")}, dict[UUID, Cat])
    assert by_id == {uid: Cat("tom")}
    assert type(by_id[uid]) is Cat
    assert roundtrip({(1, 2): "a"}, dict[tuple[int, int], str]) == {(1, 2): "a"}


def test_dict_keys_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(SerializationError, match=r"a key 'x': expected UUID \(or its JSON form"):
        plain({"x": {"name": "tom"}}, dict[UUID, Cat])
    with pytest.raises(SerializationError, match="a key 'green': 'green' is not a member"):
        plain({"green": 1}, dict[Color, int])
    with pytest.raises(SerializationError, match=r"a key 1: expected tuple\[int, int\]"):
        plain({1: "a"}, dict[tuple[int, int], str])


def test_dict_values_are_checked_and_the_key_named() -> None:
    with pytest.raises(SerializationError, match=r"value\['b'\] .*expected int, got a str"):
        plain({"a": 1, "b": "2"}, dict[str, int])
    with pytest.raises(SerializationError, match=r"value\['b'\]\.lives .*expected int"):
        plain({"b": {"name": "x", "lives": "9"}}, Mapping[str, Cat])


def test_mapping_hints_refuse_what_is_not_a_map() -> None:
    for hint in (dict[str, int], dict, Mapping[str, Any]):
        with pytest.raises(SerializationError, match="expected a dict, got a list"):
            plain([1], hint)


class Basket(TypedDict):
    owner: Cat
    colors: NotRequired[list[Color]]


def test_typed_dict_stays_a_dict_with_its_values_rebuilt() -> None:
    decoded = roundtrip({"owner": Cat("tom"), "colors": [Color.RED], "extra": 1}, Basket)
    assert decoded == {"owner": Cat("tom"), "colors": [Color.RED], "extra": 1}
    assert type(decoded) is dict
    assert type(decoded["owner"]) is Cat
    assert decoded["colors"][0] is Color.RED
    with pytest.raises(SerializationError, match="missing required key 'owner' of Basket"):
        plain({"colors": []}, Basket)
    with pytest.raises(SerializationError, match=r"value\['owner'\]\.lives .*expected int"):
        plain({"owner": {"name": "x", "lives": "9"}}, Basket)
    with pytest.raises(SerializationError, match=r"expected Basket \(a dict\), got a list"):
        plain([], Basket)
    with pytest.raises(SerializationError, match="cannot be told from"):
        plain({}, Cat | Basket)


# --- enums, scalars, literals -------------------------------------------------------------


def test_enum_hint_takes_a_raw_value_and_refuses_another_enum_class() -> None:
    assert plain("red", Color) is Color.RED
    assert roundtrip(Size.M, Size) is Size.M
    # A class the hint does not name gives its raw value (so renaming an Enum class keeps
    # stored data readable), which the hinted class then takes if it fits.
    assert roundtrip(Size.S, Shade) is Shade.S
    with pytest.raises(SerializationError, match=r"expected Shade, got <Size\.S: 's'>"):
        hints.rebuild(hints.plan(Shade).convert, Size.S, "value", "value")
    with pytest.raises(SerializationError, match="'green' is not a member of Color"):
        plain("green", Color)


def test_enum_named_only_inside_a_dataclass_field_is_rebuilt() -> None:
    @dataclasses.dataclass
    class Paint:
        color: Color

    assert roundtrip(Paint(Color.BLUE), Paint).color is Color.BLUE
    assert roundtrip([Paint(Color.BLUE)], list[Paint])[0].color is Color.BLUE


def test_scalar_hints_refuse_other_types() -> None:
    with pytest.raises(SerializationError, match="expected str, got an int"):
        plain(1, str)
    with pytest.raises(SerializationError, match="expected float, got a str"):
        plain("1", float)
    with pytest.raises(SerializationError, match="expected None, got an int"):
        plain(1, type(None))
    assert plain(3, UserId) == 3
    with pytest.raises(SerializationError, match="expected int"):
        plain("3", UserId)


def test_literal_refuses_values_outside_it() -> None:
    assert plain(2, Literal[1, 2]) == 2
    with pytest.raises(SerializationError, match=r"expected one of \(1, 2\), got 3"):
        plain(3, Literal[1, 2])


def test_dataclass_hint_refuses_what_is_not_a_map() -> None:
    with pytest.raises(SerializationError, match=r"expected Cat \(a map of its fields\)"):
        plain(["tom"], Cat)


# --- plans --------------------------------------------------------------------------------


def test_plan_lists_the_enum_classes_named_anywhere_in_the_hint() -> None:
    @dataclasses.dataclass
    class Box:
        colors: dict[Color, list[Size]]
        point: Point | None = None

    assert hints.plan(list[Box]).enums == {Color, Size}
    assert hints.plan(dict[str, Any]).enums == frozenset()
    assert hints.plan(Any).convert is None


# --- edges found by mutation testing (benchmarks/mutation.py) -----------------------------


def test_dict_values_are_rebuilt_under_plain_or_any_keys() -> None:
    by_name = plain({"a": {"name": "tom"}}, dict[str, Cat])
    assert by_name == {"a": Cat("tom")}
    assert type(by_name["a"]) is Cat
    keyed = plain({"red": [1]}, dict[Color, Any])
    assert keyed == {Color.RED: [1]}
    assert type(next(iter(keyed))) is Color
    assert plain({"x": [1]}, dict[Any, Any]) == {"x": [1]}
    anything = plain({"a": {"name": "tom"}}, dict[Any, Cat])
    assert anything == {"a": Cat("tom")}
    assert type(anything["a"]) is Cat


class Partial(TypedDict, total=False):
    owner: Required[Cat]
    note: str


def test_a_typed_dict_of_total_false_requires_only_its_required_keys() -> None:
    assert plain({"owner": {"name": "tom"}}, Partial) == {"owner": Cat("tom")}
    assert type(plain({"owner": {"name": "tom"}}, Partial)["owner"]) is Cat
    with pytest.raises(SerializationError, match="missing required key 'owner' of Partial"):
        plain({"note": "n"}, Partial)


class Unresolved(TypedDict):
    thing: NoSuchType  # type: ignore[name-defined]  # noqa: F821


def test_a_typed_dict_with_unresolvable_hints_takes_any_dict() -> None:
    assert plain({"thing": [1], "more": 2}, Unresolved) == {"thing": [1], "more": 2}


Pair = collections.namedtuple("Pair", "left right")


def test_a_namedtuple_without_hints_takes_any_fields() -> None:
    decoded = plain([1, {"x": "y"}], Pair)
    assert decoded == Pair(1, {"x": "y"})
    assert type(decoded) is Pair


def test_a_none_hint_takes_only_none() -> None:
    assert plain(None, type(None)) is None
    with pytest.raises(SerializationError, match="expected None, got an int"):
        plain(1, type(None))
    assert plain(None, None) is None  # no hint at all


def test_a_set_hint_gives_a_set_and_a_frozenset_hint_a_frozenset() -> None:
    assert type(plain([1, 2], set[int])) is set
    assert type(plain([1, 2], frozenset[int])) is frozenset


def test_a_fixed_tuple_takes_any_value_at_an_any_position() -> None:
    assert plain([{"x": 1}, 2], tuple[Any, int]) == ({"x": 1}, 2)


class Named(Protocol):
    name: str


def test_a_protocol_hint_is_taken_as_it_is() -> None:
    assert plain({"name": "x"}, Named) == {"name": "x"}


def test_union_mismatch_names_the_whole_hint() -> None:
    with pytest.raises(
        SerializationError, match=r"matches no member of int \| str \(as int: expected int"
    ):
        plain([1], int | str)


def test_a_refused_union_with_a_dict_names_the_hint_without_typing_prefixes() -> None:
    with pytest.raises(SerializationError) as info:
        plain({}, Union[Cat, dict[str, int]])  # noqa: UP007
    message = str(info.value)
    assert "Cannot use the type hint Union[" in message
    assert "typing." not in message
    assert "dict[str, int]. Use a dataclass (with a Literal field telling it apart) " in message


def test_an_ambiguous_union_explains_how_to_tell_the_classes_apart() -> None:
    with pytest.raises(SerializationError) as info:
        roundtrip(Dog("a"), Dog | Puppy)
    message = str(info.value)
    assert (
        'kind: Literal["dog"] = "dog" in Dog and kind: Literal["puppy"] = "puppy" in Puppy, '
        "or list Puppy before Dog." in message
    )
    with pytest.raises(SerializationError) as info:
        roundtrip(Cat("a"), Cat | Dog)
    assert str(info.value).endswith('kind: Literal["dog"] = "dog" in Dog.')


@dataclasses.dataclass
class Checked:
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")


@dataclasses.dataclass
class Dangling:
    thing: NoSuchType  # type: ignore[name-defined]  # noqa: F821


def test_dataclass_construction_failures_say_which_class_and_why() -> None:
    with pytest.raises(
        SerializationError, match=r"Checked\(\.\.\.\) raised ValueError: name must not be empty"
    ):
        plain({"name": ""}, Checked)
    with pytest.raises(
        SerializationError,
        match=r"cannot read the type hints of Dangling \(NameError: name 'NoSuchType' is not",
    ):
        plain({"thing": 1}, Dangling)
    with pytest.raises(SerializationError, match=r"\(a map of its fields\), got a list\. "):
        plain(["tom"], Cat)


def test_unhashable_metadata_still_gets_a_plan_and_a_converter() -> None:
    hint = Annotated[list[Color], ["unhashable"]]
    assert hints.plan(hint).enums == {Color}
    assert plain(["red"], hint) == [Color.RED]


def test_enums_are_found_through_annotated_newtype_namedtuple_and_typed_dict_fields() -> None:
    Tint = NewType("Tint", Color)

    class Spot(NamedTuple):
        size: Size

    class Bag(TypedDict):
        color: Color

    assert hints.plan(Annotated[Color, "meta"]).enums == {Color}
    assert hints.plan(Tint).enums == {Color}
    assert hints.plan(Spot).enums == {Size}
    assert hints.plan(Bag).enums == {Color}


def test_a_union_tries_the_other_members_after_those_of_the_values_own_type() -> None:
    assert plain(["a"], list[int] | tuple[str, ...]) == ("a",)


@dataclasses.dataclass
class LooseDog:
    name: str
    kind: str = "dog"


def test_a_literal_tells_classes_apart_only_from_another_literal() -> None:
    for hint in (TaggedCat | LooseDog, LooseDog | TaggedCat):
        with pytest.raises(SerializationError, match="Give both a field that tells them apart"):
            plain({"name": "x", "kind": "dog"}, hint)


@dataclasses.dataclass
class PetA:
    name: str
    kind: Literal["pet"] = "pet"


@dataclasses.dataclass
class PetB:
    name: str
    kind: Literal["pet", "b"] = "pet"


def test_literals_that_share_a_value_do_not_tell_classes_apart() -> None:
    with pytest.raises(SerializationError, match="Give both a field that tells them apart"):
        plain({"name": "x"}, PetA | PetB)


@dataclasses.dataclass
class DanglingCat:
    name: NoSuchType  # type: ignore[name-defined]  # noqa: F821


def test_a_class_whose_hints_cannot_be_read_yet_is_not_called_ambiguous() -> None:
    """Whether it fits cannot be told until its hints resolve: the union is not refused
    for it (decoding it reports the unresolvable hint), and the other member decodes."""
    for hint in (Cat | DanglingCat, DanglingCat | Cat):
        assert plain({"name": "x"}, hint) == Cat("x")


@dataclasses.dataclass
class Owl:
    name: str


@dataclasses.dataclass
class Emu:
    name: str


def test_the_ambiguity_message_reads_as_english() -> None:
    with pytest.raises(SerializationError) as refused:
        payload.decode(payload.encode(Emu("e")), Owl | Emu)
    assert "so an Emu would come back as an Owl." in str(refused.value)
