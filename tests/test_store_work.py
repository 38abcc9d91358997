"""The storage contract's parts on work and its edges (`durable.testing.store_contract`
``work``, ``boundaries`` and ``remote``), on both shipped backends through the
``store_url`` fixture (tests/conftest.py)."""

from durable.testing.store_contract.boundaries import *  # noqa: F403
from durable.testing.store_contract.kit import store
from durable.testing.store_contract.logs import *  # noqa: F403
from durable.testing.store_contract.queries import *  # noqa: F403
from durable.testing.store_contract.remote import *  # noqa: F403
from durable.testing.store_contract.updates import *  # noqa: F403
from durable.testing.store_contract.work import *  # noqa: F403

__all__ = ["store"]  # the contract's fixture, used by the tests imported above
