"""The storage contract's part on queue limits and priorities
(`durable.testing.store_contract` ``limits``), on both shipped backends through the
``store_url`` fixture (tests/conftest.py)."""

from durable.testing.store_contract.kit import store
from durable.testing.store_contract.limits import *  # noqa: F403

__all__ = ["store"]  # the contract's fixture, used by the tests imported above
