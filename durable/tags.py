"""Tags: the labels runs are found by (``client.list(tags=...)``), set at start or by the
workflow itself.

``client.start(..., tags={"customer": "acme"})`` labels a run as it starts;
``durable.set_tags(stage="shipping")`` inside the workflow merges more into them (a
``tags_set`` journal entry, applied to the run's tags when its step commits, so replay
neither repeats nor loses it). A run that continues as new keeps its tags. Each backend
keeps an index of them (``run_tags``), so a search by tag reads the matching runs newest
first instead of every run.
"""

from __future__ import annotations

from collections.abc import Mapping

from .client import MAX_TAGS, check_tags
from .errors import NotInWorkflowError
from .loop import current_run

__all__ = ["set_tags"]


def set_tags(tags: Mapping[str, str] | None = None, /, **more: str) -> None:
    """Merge tags into this run's tags, from inside a workflow: a key set again takes the
    new value, the others stay. Clients find the run by them (``client.list(tags=...)``).

        durable.set_tags(stage="shipping")
        durable.set_tags({"carrier": order["carrier"]})

    Journaled (a ``tags_set`` step in the history): the run's tags change when this step
    commits, and replay does not set them again. A run that continues as new keeps them.

    Raises:
        NotInWorkflowError: called outside a workflow (use ``client.start(..., tags=)``).
        ValueError: tags that cannot be stored (see `durable.client.check_tags`), or more
            than `durable.client.MAX_TAGS` distinct keys set by one run through ``set_tags``.
    """
    run = current_run()
    if run is None:
        raise NotInWorkflowError(
            "durable.set_tags() only works inside a workflow (code run by a worker from a "
            "@workflow function); label a run as it starts with client.start(..., tags=...)."
        )
    merged = {**(dict(tags) if isinstance(tags, Mapping) else {}), **more}
    if tags is not None and not isinstance(tags, Mapping):
        check_tags(tags)  # raises, saying what a tag mapping is
    checked = check_tags(merged)
    if not checked:
        return
    keys = {*run.tags, *checked}
    if len(keys) > MAX_TAGS:
        raise ValueError(
            f"durable.set_tags(): this run would set {len(keys)} distinct tag keys, more "
            f"than {MAX_TAGS}; tags are labels to find runs by, keep data in the workflow"
        )
    run.set_tags(checked)
