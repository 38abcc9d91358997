"""The console's pages: server-rendered HTML over the same client as the HTTP API.

``/`` lists runs (filters by status, name, tag and id; counts per status; cursor paging),
``/runs/{id}`` shows one run (older runs with ``?run_id=``): its state, input, result or
error with traceback, pending steps, published values, steps, the actions signal,
cancel, terminate, retry and fork (`repair`), and a query form (`queries`); ``/workers``
the live workers and what waits on each queue; ``/schedules`` the schedules, their next
fire times and recent runs. Pages read without JavaScript; with it, `static/console.js`
keeps them live over ``/v1/events`` by re-fetching the page's ``#live`` part
(``X-Durable-Fragment: 1`` asks for just that).

Every value shown passes through Jinja2 with autoescaping on: a workflow id or an input
holding ``<script>`` is shown as text, never run.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .. import journal
from .. import steps as _steps
from ..cli import render
from ..errors import RepairError, WorkflowNotFound
from ..journal import Kind
from ..runsteps import RunSteps
from ..steplogs import logs_of
from ..store import CLOSED_STATUSES, STATUSES, RunExtras, RunRecord, Store
from . import graph as _graph
from . import guard
from . import queries as _queries
from . import repair as _repair
from . import shape as _shape
from . import timeline as _timeline
from . import updating as _updating
from .nodes import run_href

if TYPE_CHECKING:
    from ..server.app import Service

__all__ = ["PAGE_SIZE", "routes"]

PAGE_SIZE = 50  # runs per page of the list
VALUE_CHARS = 20_000  # characters of one value shown on a page (the API has all of it)
STEP_LOGS_SHOWN = 500  # log records of the selected step shown (`durable logs --step` has all)
STEPS_SHOWN = 500  # rows of the steps table (failed and open steps always among them)
FRAGMENT_HEADER = "x-durable-fragment"
FORM_BYTES = 256 * 1024  # largest form the console takes (a signal's JSON value)
T = TypeVar("T")
_STATUS = operator.attrgetter("status")

_env = Environment(
    loader=PackageLoader("durable.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pretty(value: Any) -> str:
    text = json.dumps(render.jsonable(value), ensure_ascii=False, indent=2)
    if len(text) > VALUE_CHARS:
        return f"{text[:VALUE_CHARS]}\n… ({len(text):,} characters; the API has all of it)"
    return text


def _when(dt: datetime | None) -> str:
    return render.when(dt)


def _ago(dt: datetime | None) -> str:
    return "" if dt is None else render.relative(dt, datetime.now(UTC))


def _took(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return ""
    return render.took(((end or datetime.now(UTC)) - start).total_seconds())


def _fromts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


_env.filters.update(pretty=_pretty, when=_when, ago=_ago, fromts=_fromts)
_env.globals.update(took=_took, statuses=STATUSES, run_href=run_href)


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    service: Service = request.app.state.durable
    context.setdefault("title", "durable")
    html = _env.get_template(template).render(
        request=request,
        csrf=guard.csrf_token(request),
        secured=service.token is not None,
        fragment=request.headers.get(FRAGMENT_HEADER) == "1",
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=guard.SECURITY_HEADERS)
    guard.remember_csrf(request, response)
    return response


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, tag = value.partition(":")
        if sep and key:
            tags[key] = tag
    return tags


async def runs_page(request: Request) -> Response:
    """``/``: runs newest first, filtered, counted per status, a page at a time."""
    service: Service = request.app.state.durable
    q = request.query_params
    status = q.get("status") or None
    name = q.get("name") or None
    search = (q.get("id") or "").strip()
    tag_values = [t for t in q.getlist("tag") if t]
    tags = _tags(tag_values)
    after = q.get("after") or None
    since, until = _instant(q.get("from")), _instant(q.get("to"))
    problems = []
    for key in ("from", "to"):
        if q.get(key) and _instant(q.get(key)) is None:
            problems.append(f"{q[key]!r} is not a time: use ISO 8601, like 2026-12-02T14:30.")
    if status is not None and status not in STATUSES:
        problems.append(f"Unknown status {status!r}: choose one of {', '.join(STATUSES)}.")
        status = None
    bad_tags = [t for t in tag_values if ":" not in t or t.startswith(":")]
    if bad_tags:
        problems.append(f"Tags filter as key:value, like customer:acme (not {bad_tags[0]!r}).")
    if search:
        store = await service.store()
        run = await store.get_run(search)
        if run is not None:
            return RedirectResponse(run_href(search), status_code=303)
        problems.append(f"No workflow has the id {search!r}.")
    store = await service.store()
    counts = await store.count_runs(name=name, tags=tags or None)
    runs = [
        d
        async for d in service.client.list(
            status=status,
            name=name,
            limit=PAGE_SIZE,
            cursor=after,
            tags=tags or None,
            created_after=since,
            created_before=until,
        )
    ]
    filters = {
        "status": status or "",
        "name": name or "",
        "tag": tag_values,
        "from": q.get("from") or "",
        "to": q.get("to") or "",
    }
    more = None
    if len(runs) == PAGE_SIZE:
        more = "?" + urlencode({**filters, "after": runs[-1].run_id}, doseq=True)
    return _page(
        request,
        "runs.html",
        runs=runs,
        counts=counts,
        total=sum(counts.values()),
        filters=filters,
        first_page=after is None,
        more=more,
        problems=problems,
        live="runs",
        query_for=lambda **change: "?" + urlencode({**filters, **change}, doseq=True),
    )


async def run_page(request: Request) -> Response:
    """``/runs/{id}``: one run, its steps and its actions."""
    service: Service = request.app.state.durable
    workflow_id = request.path_params["id"]
    run_id = request.query_params.get("run_id") or None
    store = await service.store()
    run = await store.get_run(workflow_id, run_id)
    if run is None:
        what = (
            f"run {run_id!r} of workflow {workflow_id!r}" if run_id else f"workflow {workflow_id!r}"
        )
        return _page(request, "missing.html", status=404, what=what, title="not found")
    extras = await store.read_extras(run.workflow_id, run.run_id)
    steps, repairs = await _built(store, run, extras)
    description = await service.client._describe(run, detailed=False)
    if run.status not in CLOSED_STATUSES:
        problem = run.problem if run.parked else _steps.problem(run, await store.list_workers())
        description = dataclasses.replace(
            description, pending=_steps.pending(steps), problem=problem
        )
    published = {k: _steps.readable_value(v) for k, v in extras.published.items()}
    statuses = _once(steps, ("statuses",), lambda: list(map(_STATUS, steps)))  # in C, once
    counts = _once(steps, ("counts",), lambda: dict(collections.Counter(statuses)))
    shown = _once(steps, ("shown",), lambda: _shown(steps, statuses))
    selected = _selected(steps, request.query_params.get("step"))
    if selected is not None:  # with its values and what its attempts logged (steplogs)
        rows = await store.read_logs(run.run_id, seq=selected.seq, limit=STEP_LOGS_SHOWN)
        selected = dataclasses.replace(_steps.decoded(selected), logs=logs_of(rows))
    q = request.query_params
    expand = _graph.parse_expand(q.get("expand"))
    start, end, page = _instant(q.get("start")), _instant(q.get("end")), _whole(q.get("page"), 1)

    def graph_svg() -> str:
        return _graph.render_svg(_graph.layout(steps, expand))

    def timeline_svg() -> str:
        now = datetime.now(UTC) if run.status not in CLOSED_STATUSES else None
        return _timeline.render_svg(
            _timeline.build(steps, now=now, start=start, end=end, page=page)
        )

    drawn = ("timeline", start, end, page)  # a live run's is drawn to now: every time
    closed = run.status in CLOSED_STATUSES
    return _page(
        request,
        "run.html",
        title=f"{run.name} {workflow_id}",
        run=description,
        is_current=run.is_current,
        closed=run.status in CLOSED_STATUSES,
        parked=run.parked,
        steps=shown,
        steps_total=len(steps),
        counts=counts,
        repairs=repairs,
        selected=selected,
        published=published,
        progress=_once(
            steps, ("progress", run.status), lambda: render.progress(run.status, steps, counts)
        ),
        graph_svg=_once(steps, ("graph", *sorted(expand, key=int)), graph_svg),
        timeline_svg=_once(steps, drawn, timeline_svg) if closed else timeline_svg(),
        live=f"run:{workflow_id}",
        notice=request.query_params.get("done"),
        quoted=run_href(workflow_id).removeprefix("/runs/"),
    )


async def workers_page(request: Request) -> Response:
    """``/workers``: live workers and what they serve; per queue, what waits and since when."""
    service: Service = request.app.state.durable
    store = await service.store()
    now = service.client.clock.now()
    workers = await store.list_workers()
    queues = await store.queue_stats(now)
    limits = await store.queue_limits()
    served = {q for w in workers for q in w.queues}
    rows = [
        {
            "queue": q.queue,
            "served": q.queue in served,
            "tasks": q.tasks_waiting,
            "delayed": q.tasks_delayed,
            "runs": q.runs_waiting,
            "oldest": _since(min(t for t in (q.oldest_task_at, q.oldest_run_at) if t is not None))
            if q.oldest_task_at is not None or q.oldest_run_at is not None
            else None,
        }
        for q in queues
    ]
    idle = sorted(served - {q.queue for q in queues})
    return _page(
        request,
        "workers.html",
        title="queues and workers",
        workers=[(w, _since(w.started_at), _since(w.heartbeat_at)) for w in workers],
        queues=rows,
        idle=idle,
        limits=limits,
        live="runs",
    )


def _since(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


async def schedules_page(request: Request) -> Response:
    """``/schedules``: every schedule with its cron, zone, next fire times, whether it is
    paused, and its recent runs (linking to their pages)."""
    service: Service = request.app.state.durable
    found = await service.client.list_schedules()
    return _page(request, "schedules.html", title="schedules", schedules=found, live="runs")


SHAPE_RUNS = 50  # recent runs a workflow page merges by default (at most SHAPE_RUNS_MAX)
SHAPE_RUNS_MAX = 200


async def workflow_page(request: Request) -> Response:
    """``/workflows/{name}``: the shape of a workflow from its recent runs, and how each
    of its steps fares (runs that took it, success rate, p50/p95 duration, retries)."""
    service: Service = request.app.state.durable
    name = request.path_params["name"]
    store = await service.store()
    limit = min(_whole(request.query_params.get("runs"), SHAPE_RUNS), SHAPE_RUNS_MAX)
    runs = await store.list_runs(name=name, limit=limit)
    counts = await store.count_runs(name=name)
    if not runs:
        return _page(request, "missing.html", status=404, what=f"run of workflow {name!r}")
    every = []
    for run in runs:
        entries = await store.read_journal_rows(run.run_id)
        extras = await store.read_extras(run.workflow_id, run.run_id)
        every.append(_steps.build_rows(run, entries, extras.tasks, extras.timers))
    merged = _shape.merge(name, every)
    expand = _graph.parse_expand(request.query_params.get("expand"))
    drawing = _graph.layout(_shape.synthetic_steps(merged), expand, link=lambda _: "#")
    rows = [merged.figures[key] for key in merged.keys]
    return _page(
        request,
        "workflow.html",
        title=f"workflow {name}",
        name=name,
        shape=merged,
        rows=rows,
        counts=counts,
        total=sum(counts.values()),
        newest=runs[0],
        oldest=runs[-1],
        graph_svg=_graph.render_svg(drawing),
        seconds=_seconds_text,
    )


def _seconds_text(value: float | None) -> str:
    return "" if value is None else render.took(value)


def _instant(text: str | None) -> datetime | None:
    """A zoom bound from the query (ISO 8601; junk is ignored, as a bookmark may hold it)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _whole(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() and int(text) > 0 else default


# The runs last shown, each with its steps kept built (`RunSteps`: a view after its journal
# grew reads only the new entries) and the last steps and repairs made, by what they were
# made from: a live page refreshing on another run's change, or several people watching
# one big run, pay for one build.
_Made = tuple[tuple[object, ...], list[_steps.Step], list[str]]
_BUILT: collections.OrderedDict[tuple[str, str], tuple[RunSteps, _Made | None]] = (
    collections.OrderedDict()
)
BUILT_KEPT = 8  # runs whose built steps are kept
_REPAIR_KINDS = (Kind.RUN_RETRIED.value, Kind.RUN_FORKED.value)


async def _built(
    store: Store, run: RunRecord, extras: RunExtras
) -> tuple[list[_steps.Step], list[str]]:
    """``steps.build`` of the run and what repaired it (`_repairs`): as last made when
    neither its journal nor its tasks and timers have changed since, else from the
    entries written since (`RunSteps`)."""
    key = (
        run.history_length,
        run.status,
        tuple(
            (t.seq, t.attempt, t.status, t.cancel_requested, t.lease_owner, t.heartbeat_details)
            for t in extras.tasks
        ),
        tuple(sorted(extras.timers.items())),
    )
    found = _BUILT.get((store.url, run.run_id))
    if found is not None:
        _BUILT.move_to_end((store.url, run.run_id))
        if found[1] is not None and found[1][0] == key:
            return found[1][1], found[1][2]
        kept = found[0]
    else:
        # Values left encoded: the page shows those of a few steps (labels, the selected).
        kept = RunSteps(run.run_id, decode=False, keep=_REPAIR_KINDS)
    _BUILT[(store.url, run.run_id)] = (kept, None)
    while len(_BUILT) > BUILT_KEPT:
        _BUILT.popitem(last=False)
    await kept.read(store, run)
    steps = kept.steps(run, extras.tasks, extras.timers)
    repairs = _repairs(kept.kept)
    if (store.url, run.run_id) in _BUILT:
        _BUILT[(store.url, run.run_id)] = (kept, (key, steps, repairs))
    return steps, repairs


# What the run page made of the steps last built (`_built`), by the steps and what else
# it was made from: a view of an unchanged run redraws nothing it drew before.
_MADE: collections.OrderedDict[tuple[object, ...], tuple[list[_steps.Step], Any]] = (
    collections.OrderedDict()
)
MADE_KEPT = 32


def _once(steps: list[_steps.Step], what: tuple[object, ...], make: Callable[[], T]) -> T:
    """``make()``, or what it gave before for these very steps (the same list) and
    ``what``."""
    key = (id(steps), *what)
    found = _MADE.get(key)
    if found is not None and found[0] is steps:
        _MADE.move_to_end(key)
        made: T = found[1]
        return made
    made = make()
    _MADE[key] = (steps, made)
    while len(_MADE) > MADE_KEPT:
        _MADE.popitem(last=False)
    return made


def _repairs(rows: list[tuple[int, str, float, bytes]]) -> list[str]:
    """What an operator did to the run (`durable.repair`), said for the run page."""
    out = []
    repairs = (Kind.RUN_RETRIED, Kind.RUN_FORKED)
    for _, kind, time, data in rows:
        if kind not in repairs:
            continue
        rec = journal.decode(kind, data)
        when = _when(_fromts(time))
        if isinstance(rec, journal.RunRetried):
            cause = rec.cause.removeprefix(f"{rec.status.capitalize()}: ")  # not said twice
            was = f"was {rec.status}" + (f": {cause}" if cause else "")
            again = f"; step {rec.step} runs again" if rec.step else ""
            why = f"; reason: {rec.reason}" if rec.reason else ""
            out.append(f"retried at {when} ({was}{again}{why})")
        elif isinstance(rec, journal.RunForked):
            source = f"{rec.workflow_id} (run {rec.run_id})"
            out.append(f"forked at {when} from {source}, its entries 1-{rec.at_seq}")
    return out


def _shown(steps: list[_steps.Step], statuses: list[str]) -> list[_steps.Step]:
    """`STEPS_SHOWN` rows at most: the steps that did not complete (failed, open), the
    first of them when there are more, then the newest others. ``statuses``: the steps'."""
    if len(steps) <= STEPS_SHOWN:
        return steps
    if statuses.count("completed") == len(steps):
        return steps[-STEPS_SHOWN:]
    keep = [i for i, status in enumerate(statuses) if status != "completed"]
    if len(keep) >= STEPS_SHOWN:  # a fan-out of 100,000 that failed: not 100,000 rows
        return [steps[i] for i in keep[:STEPS_SHOWN]]
    room = STEPS_SHOWN - len(keep)
    i = len(steps)
    while room > 0 and i > 0:  # the newest completed ones, from the end
        i -= 1
        if statuses[i] == "completed":
            keep.append(i)
            room -= 1
    return [steps[i] for i in sorted(keep)]


def _selected(steps: list[_steps.Step], seq: str | None) -> _steps.Step | None:
    if not seq or not seq.isdigit():
        return None
    return next((s for s in steps if s.seq == int(seq)), None)


async def _form(request: Request) -> dict[str, str] | Response:
    """The POSTed form, or the refusal when it did not come from this console."""
    # The console's forms are small and urlencoded: parsed here rather than with
    # python-multipart, which Starlette's request.form() would need installed.
    body = await request.body()
    if len(body) > FORM_BYTES:
        return _page(
            request,
            "refused.html",
            status=413,
            title="too large",
            why=f"The form is over {FORM_BYTES // 1024} KiB; send large values "
            "with the HTTP API instead.",
        )
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if not guard.same_origin(request) or not guard.check_csrf(request, fields.get("csrf")):
        return _page(
            request,
            "refused.html",
            status=403,
            title="refused",
            why="This form did not come from this console (its anti-forgery token is "
            "missing or stale). Go back, reload the page and try again.",
        )
    return fields


async def act(request: Request) -> Response:
    """``POST /runs/{id}/{action}``: signal, update (`updating`: its outcome's page),
    cancel, terminate, retry or fork (`repair`), then back to the run (a fork: to the new
    one)."""
    service: Service = request.app.state.durable
    workflow_id = request.path_params["id"]
    action = request.path_params["action"]
    fields = await _form(request)
    if isinstance(fields, Response):
        return fields
    handle = service.client.get_handle(workflow_id)
    back = run_href(workflow_id)
    try:
        if action == "query":  # shows the answer on a page of its own (`queries`)
            context = await _queries.ask(service.client, workflow_id, fields)
            return _page(
                request, "query.html", title="query", quoted=back.removeprefix("/runs/"), **context
            )
        if action == "signal":
            name = fields.get("name", "").strip()
            text = fields.get("value", "").strip() or "null"
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                return await _refused_action(
                    request,
                    back,
                    f"The signal's value is not JSON ({exc.msg}): {text[:80]!r}. "
                    'Give a JSON value: a string needs its quotes, like "yes".',
                )
            if not name:
                return await _refused_action(request, back, "Give the signal a name.")
            await handle.signal(name, value)
        elif action == "update":  # its outcome gets a page (durable.console.updating)
            sent = await _updating.send(service.client, workflow_id, fields)
            return _page(
                request, "update.html", sent.status, title="update", back=back, **sent.context()
            )
        elif action == "cancel":
            await handle.cancel()
        elif action == "terminate":
            await handle.terminate(
                reason=fields.get("reason", "").strip() or "terminated from the console"
            )
        elif action in _repair.ACTIONS:
            target = await _repair.act(service.client, workflow_id, action, fields)
            return RedirectResponse(target, status_code=303)
        else:
            return _page(request, "missing.html", status=404, what=f"action {action!r}")
    except WorkflowNotFound:
        return _page(request, "missing.html", status=404, what=f"workflow {workflow_id!r}")
    except RepairError as exc:
        return _page(request, "refused.html", status=409, title="not done", why=str(exc), back=back)
    return RedirectResponse(f"{back}?{urlencode({'done': action})}", status_code=303)


async def _refused_action(request: Request, back: str, why: str) -> Response:
    return _page(request, "refused.html", status=400, title="not sent", why=why, back=back)


async def login(request: Request) -> Response:
    """``/login``: take the server's token once and keep it in a cookie."""
    service: Service = request.app.state.durable
    if request.method == "GET":
        return _page(request, "login.html", title="sign in", wrong=False)
    fields = await _form(request)
    if isinstance(fields, Response):
        return fields
    given = fields.get("token", "")
    if service.token is None or not guard.same_secret(given, service.token):
        return _page(request, "login.html", status=401, title="sign in", wrong=True)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(guard.TOKEN_COOKIE, given, httponly=True, samesite="strict", path="/")
    return response


def routes() -> list[BaseRoute]:
    """The console's routes, for `durable.server.create_app` to serve beside the API."""
    return [
        Route("/", runs_page, methods=["GET"]),
        Route("/runs/{id:path}/{action:str}", act, methods=["POST"]),
        Route("/runs/{id:path}", run_page, methods=["GET"]),
        Route("/workers", workers_page, methods=["GET"]),
        Route("/schedules", schedules_page, methods=["GET"]),
        Route("/workflows/{name:path}", workflow_page, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(packages=[("durable.console", "static")]), name="static"),
    ]
