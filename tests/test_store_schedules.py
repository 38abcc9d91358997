"""The storage contract's schedules part (`durable.testing.store_contract.schedules`) on
both shipped backends through the ``store_url`` fixture (tests/conftest.py)."""

from durable.testing.store_contract.kit import store
from durable.testing.store_contract.schedules import *  # noqa: F403

__all__ = ["store"]  # the contract's fixture, used by the tests imported above
