"""The storage contract's repair part (`durable.testing.store_contract.repair`) on both
shipped backends through the ``store_url`` fixture (tests/conftest.py)."""

import inspect

from durable.testing import store_contract
from durable.testing.store_contract import repair
from durable.testing.store_contract.kit import store
from durable.testing.store_contract.repair import *  # noqa: F403

__all__ = ["store"]  # the contract's fixture, used by the tests imported above


def test_the_repair_part_exports_every_test_it_defines() -> None:
    """A test missing from the part's ``__all__`` would silently not run for any backend."""
    defined = {
        n for n, f in inspect.getmembers(repair, inspect.isfunction) if n.startswith("test_")
    }
    assert defined == set(repair.__all__)
    assert defined <= set(store_contract.__all__)
