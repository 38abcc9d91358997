"""`durable.__all__` is the public surface: sorted, complete, and every name in it exists."""

import dataclasses
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


# DESIGN.md §2, the public contract: every name users and unseen tests call.
DESIGN_NAMES = {
    "workflow", "activity", "RetryPolicy", "call",
    "sleep", "sleep_until", "wait_signal", "map", "publish", "now", "random", "uuid4",
    "patched", "deprecate_patch", "continue_as_new", "info", "logger",
    "heartbeat", "activity_info",
    "connect", "Client", "WorkflowHandle", "WorkflowDescription", "PendingStep", "Event",
    "WorkflowInfo", "ActivityInfo", "Worker", "Step", "Attempt",
    "DurableError", "ActivityError", "RemoteError", "ChildWorkflowError", "WorkflowFailed",
    "WorkflowCancelled", "NonDeterminismError", "SerializationError", "WorkflowNotFound",
    "WorkflowAlreadyExists", "NotInWorkflowError", "ApplicationError",
}  # fmt: skip


def test_every_name_of_the_design_is_exported() -> None:
    assert DESIGN_NAMES <= set(durable.__all__)


def test_records_have_the_fields_the_design_names() -> None:
    def fields(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    assert fields(durable.WorkflowInfo) == [
        "id", "run_id", "name", "queue", "started_at", "parent_id", "is_replaying",
        "history_length",
        "scheduled_at",  # §8: the tick of a run a schedule started (None otherwise)
    ]  # fmt: skip
    # §8: ScheduleDescription(id, workflow, cron, timezone, overlap, paused,
    # next_fire_times, recent_runs); the fields after those are ours.
    assert fields(durable.ScheduleDescription)[:8] == [
        "id", "workflow", "cron", "timezone", "overlap", "paused", "next_fire_times",
        "recent_runs",
    ]  # fmt: skip
    assert fields(durable.WorkflowDescription) == [
        "id", "run_id", "name", "status", "queue", "input", "result", "error", "created_at",
        "closed_at", "history_length", "pending", "problem",
        "tags",  # §8: client.start(..., tags=) and client.list(tags=) (after §2's fields)
    ]  # fmt: skip
    assert fields(durable.PendingStep) == [
        "kind", "name", "attempt", "scheduled_at", "last_error",
    ]  # fmt: skip
    assert fields(durable.Event) == ["seq", "kind", "time", "data"]
    # DESIGN §6 (child_id is ours: the workflow id of a child workflow step).
    assert fields(durable.Step) == [
        "seq", "kind", "name", "branch", "group", "status", "attempts", "scheduled_at",
        "started_at", "closed_at", "input", "output", "error", "logs", "child_id",
    ]  # fmt: skip
    assert fields(durable.Attempt) == [
        "number", "started_at", "closed_at", "worker", "error", "heartbeat",
    ]  # fmt: skip
    assert {"workflow_id", "name", "attempt", "heartbeat_details"} <= set(
        fields(durable.ActivityInfo)
    )
    error = durable.RemoteError("T", "m")
    for attribute in ("type", "message", "traceback", "details"):
        assert hasattr(error, attribute)


def test_errors_derive_from_durable_error() -> None:
    for name in (
        "ActivityError", "ChildWorkflowError", "WorkflowFailed", "WorkflowCancelled",
        "NonDeterminismError", "SerializationError", "WorkflowNotFound",
        "WorkflowAlreadyExists", "NotInWorkflowError", "ApplicationError", "ScheduleNotFound",
    ):  # fmt: skip
        assert issubclass(getattr(durable, name), durable.DurableError), name
    error = durable.ApplicationError("declined", type="Declined", non_retryable=True, details=7)
    assert (error.type, error.non_retryable, error.details) == ("Declined", True, 7)
