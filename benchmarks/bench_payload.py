"""Micro-benchmark of the payload codec: encode/decode operations per second.

    .venv/bin/python benchmarks/bench_payload.py

Cases: a typical small step payload (a dict of a few strings and ints with a list of 10
dicts), the same as a dataclass rebuilt from its hint, and a call's arguments through
encode_args/decode_args (a dataclass with a keyword, and the common case of a few plain
positional arguments, which replay decodes for every step). Raw msgpack is shown as the floor.
"""

from __future__ import annotations

import dataclasses
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

import msgpack

from durable import payload


@dataclasses.dataclass
class Line:
    sku: str
    qty: int
    price_cents: int


@dataclasses.dataclass
class Order:
    id: str
    customer: str
    status: str
    total_cents: int
    lines: list[Line]
    placed_at: datetime


def place(order: Order, retries: int = 0) -> Order:
    return order


def step(order_id: str, attempt: int) -> str:
    return order_id


SMALL = {
    "id": "ord_123",
    "customer": "cus_9",
    "status": "paid",
    "total_cents": 12_345,
    "lines": [{"sku": f"sku-{i}", "qty": i, "price_cents": 100 * i} for i in range(10)],
}
ORDER = Order(
    "ord_123",
    "cus_9",
    "paid",
    12_345,
    [Line(f"sku-{i}", i, 100 * i) for i in range(10)],
    datetime(2024, 1, 1, tzinfo=UTC),
)


def rate(fn: Callable[[], object]) -> float:
    """Best of five runs, in operations per second."""
    number = 20_000
    return number / min(timeit.repeat(fn, number=number, repeat=5))


def main() -> None:
    small, order = payload.encode(SMALL), payload.encode(ORDER)
    args = payload.encode_args(place, (ORDER,), {"retries": 1}, what="bench")
    pos = payload.encode_args(step, ("ord_123", 3), {}, what="bench")
    rows = [
        ("msgpack.packb (dict, floor)", rate(lambda: msgpack.packb(SMALL)), len(small)),
        ("msgpack.unpackb (dict, floor)", rate(lambda: msgpack.unpackb(small)), len(small)),
        ("encode(dict)", rate(lambda: payload.encode(SMALL)), len(small)),
        ("decode(dict)", rate(lambda: payload.decode(small)), len(small)),
        ("encode(dataclass)", rate(lambda: payload.encode(ORDER)), len(order)),
        ("decode(dataclass, no hint)", rate(lambda: payload.decode(order)), len(order)),
        ("decode(dataclass, hint)", rate(lambda: payload.decode(order, Order)), len(order)),
        (
            "encode_args(dataclass)",
            rate(lambda: payload.encode_args(place, (ORDER,), {"retries": 1}, what="b")),
            len(args),
        ),
        ("decode_args(dataclass)", rate(lambda: payload.decode_args(place, args)), len(args)),
        (
            "encode_args(str, int)",
            rate(lambda: payload.encode_args(step, ("ord_123", 3), {}, what="b")),
            len(pos),
        ),
        ("decode_args(str, int)", rate(lambda: payload.decode_args(step, pos)), len(pos)),
    ]
    print(f"{'operation':<32}{'ops/s':>12}{'µs/op':>9}{'bytes':>8}")
    for name, ops, size in rows:
        print(f"{name:<32}{ops:>12,.0f}{1e6 / ops:>9.2f}{size:>8}")


if __name__ == "__main__":
    main()
