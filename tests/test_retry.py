"""Retry decisions offline: `RetryPolicy`'s arithmetic and `durable.retry.decide`, exactly.

The worker tests see retries end to end but only roughly in time; these pin the numbers
(the backoff exponent, the ``schedule_to_close`` budget with the wait before the next
attempt, the boundaries) so an off-by-one cannot pass.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable import journal, payload
from durable.context import ActivityContext, ActivityInfo
from durable.definition import RetryPolicy
from durable.errors import ApplicationError, RemoteError
from durable.executor import AttemptResult
from durable.retry import decide, retryable

T0 = 1_700_000_000.0
BOOM = RemoteError("ValueError", "boom")


def _policy(**kw: Any) -> RetryPolicy:
    base: dict[str, Any] = {
        "max_attempts": 5,
        "initial_interval": timedelta(seconds=1),
        "backoff": 2.0,
        "max_interval": timedelta(seconds=100),
    }
    return RetryPolicy(**{**base, **kw})


def test_delay_grows_by_backoff_from_the_initial_interval() -> None:
    policy = _policy(initial_interval=timedelta(seconds=1.5), backoff=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.5, 4.5, 13.5, 40.5]


def test_delay_is_capped_at_max_interval() -> None:
    policy = _policy(initial_interval=timedelta(seconds=2), max_interval=timedelta(seconds=10))
    assert [policy.delay(n) for n in (1, 2, 3, 4, 30)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert _policy(max_interval=timedelta(seconds=4)).delay(3) == 4.0  # exactly at the cap


def test_intervals_may_be_given_in_seconds() -> None:
    policy = RetryPolicy(initial_interval=0.5, max_interval=30)
    assert policy.initial_interval == timedelta(seconds=0.5)
    assert policy.max_interval == timedelta(seconds=30)
    assert policy.delay(3) == 2.0


@pytest.mark.parametrize("bad", ["1s", True, None])
def test_an_interval_of_another_type_is_refused_plainly(bad: object) -> None:
    with pytest.raises(TypeError, match=r"initial_interval must be a timedelta \(or seconds"):
        RetryPolicy(initial_interval=bad)  # type: ignore[arg-type]


def test_allows_another_until_max_attempts_and_forever_with_zero() -> None:
    policy = _policy(max_attempts=3)
    assert [policy.allows_another(n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert _policy(max_attempts=1).allows_another(1) is False
    assert all(_policy(max_attempts=0).allows_another(n) for n in (1, 10, 10_000))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": -1}, r"max_attempts must be >= 0 \(0 = unlimited\), got -1"),
        (
            {"initial_interval": timedelta(seconds=-1)},
            "^RetryPolicy.initial_interval must not be negative$",
        ),
        ({"backoff": 0.5}, r"backoff must be >= 1.0, got 0.5"),
        (
            {"initial_interval": timedelta(seconds=5), "max_interval": timedelta(seconds=2)},
            r"max_interval \(0:00:02\) must be >= initial_interval \(0:00:05\)",
        ),
    ],
)
def test_bad_policies_are_refused_saying_why(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _policy(**options)


def test_boundary_policies_are_accepted() -> None:
    policy = _policy(
        max_attempts=0,
        initial_interval=timedelta(0),
        backoff=1.0,
        max_interval=timedelta(0),
    )
    assert policy.delay(7) == 0.0
    same = _policy(initial_interval=timedelta(seconds=3), max_interval=timedelta(seconds=3))
    assert same.delay(5) == 3.0


class LocalError(Exception):
    pass


def test_non_retryable_names_and_the_stored_form_round_trip() -> None:
    policy = _policy(
        non_retryable=[ValueError, LocalError, "billing.Declined"],
        max_interval=timedelta(seconds=30),
    )
    assert isinstance(policy.non_retryable, tuple)
    assert policy.non_retryable_names() == [
        "ValueError",
        "LocalError",
        f"{__name__}.LocalError",
        "billing.Declined",
    ]
    stored = policy.to_dict()
    assert stored == {
        "max_attempts": 5,
        "initial_interval": 1.0,
        "backoff": 2.0,
        "max_interval": 30.0,
        "non_retryable": policy.non_retryable_names(),
    }
    again = RetryPolicy.from_dict(stored)
    assert again.to_dict() == stored
    assert (again.max_attempts, again.initial_interval, again.max_interval, again.backoff) == (
        5,
        timedelta(seconds=1),
        timedelta(seconds=30),
        2.0,
    )


class SubError(LocalError):
    pass


def test_retryable_by_type_name_qualified_name_and_application_error_flag() -> None:
    assert retryable(LocalError(), _policy())
    assert not retryable(LocalError(), _policy(non_retryable=[LocalError]))
    assert not retryable(SubError(), _policy(non_retryable=[LocalError]))  # by its base class
    assert not retryable(LocalError(), _policy(non_retryable=[f"{__name__}.LocalError"]))
    assert not retryable(LocalError(), _policy(non_retryable=["LocalError"]))
    assert retryable(LocalError(), _policy(non_retryable=["Other", "other.LocalError"]))
    assert not retryable(ApplicationError("no", non_retryable=True), _policy())
    assert retryable(ApplicationError("maybe"), _policy())


def _spec(policy: RetryPolicy, schedule_to_close: float | None = None) -> dict[str, Any]:
    return {
        "name": "charge",
        "_seq": 7,
        "retry": policy.to_dict(),
        "schedule_to_close": schedule_to_close,
    }


def _context(started_at: float | None = T0, details: bytes | None = b"d") -> ActivityContext:
    info = ActivityInfo(
        "wf", "run", "charge", 1, None, "default", "run:7", datetime.now(UTC), None, None
    )
    return ActivityContext(info, details=details, started_at=started_at)


def _failed(retryable: bool = True, error: RemoteError = BOOM) -> AttemptResult:
    return AttemptResult(error=error, retryable=retryable)


def _decide(
    spec: dict[str, Any],
    attempt: int,
    result: AttemptResult,
    *,
    now: float,
    created_at: float = T0,
    ctx: ActivityContext | None = None,
) -> Any:
    ctx = ctx if ctx is not None else _context()
    return decide(spec, attempt, created_at, result, ctx, now=now, worker_id="w-1")


def test_a_success_is_done_with_its_result_start_and_worker() -> None:
    outcome = _decide(_spec(_policy()), 2, AttemptResult(result=b"r"), now=T0 + 5)
    assert (outcome.kind, outcome.item_kind) == ("done", "activity_completed")
    assert journal.decode(outcome.item_kind, outcome.item_data) == journal.ActivityCompleted(
        7, b"r", T0, "w-1", 2
    )
    # Not started in this worker: no start time and no worker are claimed.
    outcome = decide(
        _spec(_policy()), 1, T0, AttemptResult(result=b"r"), None, now=T0, worker_id="w"
    )
    assert journal.decode(outcome.item_kind, outcome.item_data) == journal.ActivityCompleted(
        7, b"r", None, None, 1
    )


def test_a_success_carries_the_record_its_data_encodes() -> None:
    # A worker stepping the run itself applies `record` instead of decoding `item_data`:
    # the two must say the same, and the record is no part of the outcome's identity.
    outcome = _decide(_spec(_policy()), 2, AttemptResult(result=b"r"), now=T0 + 5)
    assert outcome.record == journal.decode(outcome.item_kind, outcome.item_data)
    assert outcome.record.KIND == outcome.item_kind
    assert outcome == dataclasses.replace(outcome, record=None)
    # Failures and retries carry none: their errors keep the stored form's round trip.
    assert _decide(_spec(_policy()), 1, _failed(), now=T0).record is None
    assert _decide(_spec(_policy()), 1, _failed(retryable=False), now=T0).record is None


def test_a_retry_waits_the_policys_delay_for_that_attempt() -> None:
    policy = _policy(initial_interval=timedelta(seconds=2), backoff=3.0)
    outcome = _decide(_spec(policy), 3, _failed(), now=T0 + 50)
    assert (outcome.kind, outcome.item_kind) == ("retry", "activity_retrying")
    assert outcome.visible_at == T0 + 50 + 18.0  # 2 * 3 ** (3 - 1)
    assert outcome.details == b"d"
    assert outcome.last_error == payload.envelope(BOOM.to_dict())
    assert journal.decode(outcome.item_kind, outcome.item_data) == journal.ActivityRetrying(
        7, 3, BOOM, T0, "w-1"
    )
    outcome = decide(_spec(policy), 1, T0, _failed(), None, now=T0, worker_id="w")
    assert (outcome.kind, outcome.visible_at, outcome.details) == ("retry", T0 + 2.0, None)


def test_the_last_allowed_attempt_fails_for_good_counting_attempts() -> None:
    spec = _spec(_policy(max_attempts=3))
    assert _decide(spec, 2, _failed(), now=T0).kind == "retry"
    outcome = _decide(spec, 3, _failed(), now=T0)
    assert (outcome.kind, outcome.item_kind) == ("done", "activity_failed")
    assert journal.decode(outcome.item_kind, outcome.item_data) == journal.ActivityFailed(
        7, BOOM, 3, T0, "w-1"
    )


def test_a_non_retryable_failure_fails_at_the_first_attempt() -> None:
    spec = _spec(_policy())
    assert _decide(spec, 1, _failed(retryable=False), now=T0).item_kind == "activity_failed"
    flagged = RemoteError("Declined", "no", non_retryable=True)
    outcome = _decide(spec, 1, _failed(error=flagged), now=T0)
    assert journal.decode(outcome.item_kind, outcome.item_data) == journal.ActivityFailed(
        7, flagged, 1, T0, "w-1"
    )


def test_schedule_to_close_counts_the_wait_before_the_next_attempt() -> None:
    """Scheduled at T0 with a 10 s budget: after a failure at T0+7, a next attempt in 4 s
    would start at T0+11, past the budget, so the activity fails now; one in 2 s (T0+9)
    is still in time. Exactly at the deadline is too late."""
    spec = _spec(_policy(initial_interval=timedelta(seconds=4), backoff=1.0), 10.0)
    assert _decide(spec, 1, _failed(), now=T0 + 7).item_kind == "activity_failed"
    assert _decide(spec, 1, _failed(), now=T0 + 5.9).kind == "retry"
    assert _decide(spec, 1, _failed(), now=T0 + 6).item_kind == "activity_failed"
    quick = _spec(_policy(initial_interval=timedelta(seconds=2), backoff=1.0), 10.0)
    outcome = _decide(quick, 1, _failed(), now=T0 + 7)
    assert (outcome.kind, outcome.visible_at) == ("retry", T0 + 9)
    # The budget runs from the scheduling, not from the epoch or from now.
    late = _decide(quick, 1, _failed(), now=T0 + 1007, created_at=T0 + 1000)
    assert late.kind == "retry"
    # Without a budget only the attempts limit.
    assert _decide(_spec(_policy()), 4, _failed(), now=T0 + 10**6).kind == "retry"


def test_a_class_of_main_is_named_without_its_module() -> None:
    scripted = type("Scripted", (Exception,), {"__module__": "__main__"})
    assert _policy(non_retryable=[scripted]).non_retryable_names() == ["Scripted"]


def test_a_spec_without_its_seq_refers_to_step_zero() -> None:
    spec = _spec(_policy())
    del spec["_seq"]
    outcome = _decide(spec, 1, AttemptResult(result=b"r"), now=T0)
    assert journal.decode(outcome.item_kind, outcome.item_data) == journal.ActivityCompleted(
        0, b"r", T0, "w-1", 1
    )


def test_each_decision_is_logged_saying_what_happens_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="durable.worker")
    spec = _spec(_policy(max_attempts=3, initial_interval=timedelta(seconds=1.5)))
    _decide(spec, 2, _failed(), now=T0)
    _decide(spec, 3, _failed(), now=T0)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "durable.worker",
            logging.INFO,
            "Activity 'charge' (step 7) attempt 2 failed: ValueError: boom; attempt 3 in 3 s",
        ),
        (
            "durable.worker",
            logging.INFO,
            "Activity 'charge' (step 7) failed for good after 3 attempt(s): ValueError: boom",
        ),
    ]
