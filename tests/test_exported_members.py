"""`durable.__all__` is the public surface: sorted, complete, and every name in it exists."""

from types import ModuleType

import durable


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(durable).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert durable.__all__ == sorted(durable.__all__)
    assert len(durable.__all__) == len(set(durable.__all__))
    assert set(durable.__all__) == public
    assert all(hasattr(durable, name) for name in durable.__all__)
