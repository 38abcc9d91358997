"""durable.console.graph: a real run laid out (sequence, fan-outs, child, timer, signal,
retries), expanded, drawn with every name escaped, and bounded at 100,000 steps."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from urllib.parse import quote

import pytest

import durable
from durable.console import graph
from durable.console.graph import layout
from durable.console.svg import STATUSES
from durable.steps import Step
from durable.testing import WorkflowEnvironment
from tests.console_runs import FAILING, HOSTILE, ITEMS, nested_steps, synthetic, tour_steps

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def tour() -> list[Step]:
    return asyncio.run(tour_steps())


def _group_of(steps: list[Step], name: str) -> int:
    group = next(s.group for s in steps if s.name == name)
    assert group is not None
    return group


def _links(svg_text: str) -> list[ET.Element]:
    root = ET.fromstring(svg_text)  # well-formed XML, or this raises
    return [a for a in root.iter(f"{SVG}a") if "data-kind" in a.attrib]


def test_a_run_is_its_sequence_with_each_fan_out_one_group_node(tour: list[Step]) -> None:
    g = graph.layout(tour)
    boxes = g.boxes()
    kinds = [b.kind for b in boxes]
    expected = ["activity", "group", "group", "child", "timer", "activity", "activity", "signal"]
    assert kinds == expected
    # Top to bottom in journal order.
    assert [b.y for b in boxes] == sorted(b.y for b in boxes)
    assert len({b.y for b in boxes}) == len(boxes)
    fetches, mapped = boxes[1], boxes[2]
    assert (fetches.count, fetches.counts, fetches.status) == (2, {"completed": 2}, "completed")
    assert mapped.count == ITEMS
    assert mapped.counts == {"completed": ITEMS - len(FAILING), "failed": len(FAILING)}
    assert mapped.status == "failed"
    assert mapped.label == f"process \u00d7{ITEMS}"
    assert mapped.group == _group_of(tour, "process")
    assert mapped.href == f"?expand={mapped.group}"
    assert (g.total, g.drawn, g.grouped, g.folded) == (len(tour), 6, ITEMS + 2, 0)
    child = boxes[3]
    [child_step] = [s for s in tour if s.kind == "child"]
    assert child_step.child_id is not None
    assert child.href == "/runs/" + quote(child_step.child_id, safe="")
    assert boxes[4].label == "sleep 5 min"
    flaky = boxes[5]
    assert flaky.label == "flaky('o-1')"
    assert flaky.detail.startswith("completed")
    assert flaky.detail.endswith("3 attempts")
    assert boxes[0].href == f"?step={boxes[0].seq}"
    # Lines join consecutive boxes: each box but the first has one coming in.
    targets = [e.target for e in g.edges]
    assert all(targets.count(b.id) == 1 for b in boxes[1:])


def test_an_expanded_fan_out_draws_its_items_side_by_side(tour: list[Step]) -> None:
    fetch, process = _group_of(tour, "fetch"), _group_of(tour, "process")
    g = graph.layout(tour, expand={str(fetch)})
    fetches = [b for b in g.boxes() if b.kind == "activity" and b.label.startswith("fetch")]
    assert len(fetches) == 2
    left, right = sorted(fetches, key=lambda b: b.x)
    assert left.y == right.y
    assert left.x + left.w <= right.x  # side by side, not overlapping
    [frame] = g.frames
    assert frame.group == fetch
    assert frame.href == "?"  # folding it again leaves nothing expanded
    assert frame.x <= left.x
    assert right.x + right.w <= frame.x + frame.w
    assert f"?expand={fetch}&step={left.seq}" in {left.href, right.href}

    both = graph.layout(tour, expand=[fetch, process])  # ids as ints work too
    items = [b for b in both.boxes() if b.label.startswith("process(")]
    assert len(items) == ITEMS
    assert sorted(b.label for b in items if b.status == "failed") == sorted(
        f"process({i})" for i in FAILING
    )
    assert (both.drawn, both.grouped, both.folded) == (len(tour), 0, 0)
    # Fifty items wrap into rows of WRAP, all inside the frame, under the fetches.
    rows = sorted({b.y for b in items})
    assert len(rows) == -(-ITEMS // graph.WRAP)
    fetch_y = max(b.y for b in both.boxes() if b.label.startswith("fetch"))
    assert min(rows) > fetch_y
    process_frame = next(f for f in both.frames if f.group == process)
    assert process_frame.href == f"?expand={fetch}"


def test_the_drawing_escapes_names_and_marks_every_box(tour: list[Step]) -> None:
    g = graph.layout(tour)
    text = graph.render_svg(g)
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    links = _links(text)
    assert len(links) == len(g.boxes())
    root = ET.fromstring(text)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any(HOSTILE in t for t in texts)  # shown as text, whole
    groups = [a for a in links if a.get("data-kind") == "group"]
    assert sorted(int(a.get("data-count", "0")) for a in groups) == [2, ITEMS]
    assert all(a.get("data-group") for a in groups)
    steps = [a for a in links if a.get("data-seq")]
    assert {a.get("data-status") for a in steps} == {"completed"}
    assert {a.get("data-kind") for a in steps} >= {"activity", "child", "timer", "signal"}
    assert all(a.get("href") for a in links)
    # Shapes differ by kind, and the legend names every status.
    signal = next(a for a in links if a.get("data-kind") == "signal")
    assert signal.find(f"{SVG}polygon") is not None
    for status in ("completed", "failed", "running", "retrying", "waiting", "cancelled"):
        assert f">{status}</text>" in text


def test_hostile_ids_and_expand_values_stay_inert() -> None:
    steps = [
        dataclasses.replace(s, name='"><img src=x onerror=1>', kind="child", child_id='a"b<c')
        for s in synthetic(3)
    ]
    text = graph.render_svg(graph.layout(steps, expand={'"><b>'}))
    assert "<img" not in text
    assert '"><b>' not in text
    assert [a.get("href") for a in _links(text)] == ["/runs/a%22b%3Cc"] * 3
    assert graph.parse_expand("12, 40,<x>,,7") == {"12", "40", "7"}
    assert graph.parse_expand(None) == set()
    assert graph.expand_query({"40", "7"}, step=3) == "?expand=7,40&step=3"


def test_live_statuses_show_on_the_group() -> None:
    steps = synthetic(10, fan_out=10)
    steps[3] = dataclasses.replace(steps[3], status="running")
    steps[4] = dataclasses.replace(steps[4], status="retrying", error=None)
    [node] = graph.layout(steps).boxes()
    assert node.status == "running"  # in flight outranks the finished
    assert node.counts == {"completed": 8, "running": 1, "retrying": 1}
    assert node.detail == "8 completed \u00b7 1 running \u00b7 1 retrying"


def test_a_long_sequence_keeps_head_and_tail_and_says_what_it_folded() -> None:
    steps = synthetic(1000)
    g = graph.layout(steps)
    boxes = g.boxes()
    tail = graph.SEQ_LIMIT - graph.SEQ_HEAD - 2 * graph.KEEP_MIDDLE
    assert len(boxes) == graph.SEQ_HEAD + 1 + tail
    [fold] = [b for b in boxes if b.kind == "fold"]
    assert fold.count == 1000 - graph.SEQ_HEAD - tail
    assert fold.label == f"{fold.count} steps folded (#{graph.SEQ_HEAD + 1}\u2013#{1000 - tail})"
    assert boxes.index(fold) == graph.SEQ_HEAD
    assert boxes[-1].seq == 1000  # the latest steps are the ones drawn
    assert g.drawn + g.grouped + g.folded == 1000
    assert f"{fold.count} folded" in graph.render_svg(g)


def test_a_folded_middle_still_shows_the_steps_that_failed() -> None:
    steps = synthetic(1000, failed_every=97)
    boxes = graph.layout(steps).boxes()
    failed = [b.seq for b in boxes if b.kind == "activity" and b.status == "failed"]
    assert failed == list(range(97, 1000, 97))  # all of them, in order
    folds = [b for b in boxes if b.kind == "fold"]
    assert {b.status for b in folds} == {"completed"}
    assert len(folds) == len([s for s in failed if graph.SEQ_HEAD < s <= 900]) + 1
    ordered = [b.seq if b.seq is not None else b.id for b in boxes]
    assert ordered[graph.SEQ_HEAD] == f"f{graph.SEQ_HEAD + 1}"  # fold, failed, fold, ...
    assert ordered[graph.SEQ_HEAD + 1] == 97
    # Past KEEP_MIDDLE of them, the rest fold too, and the folds say they hold failures.
    many = graph.layout(synthetic(2000, failed_every=3)).boxes()
    shown = [b for b in many if b.kind == "activity" and b.status == "failed"]
    assert len(shown) <= graph.SEQ_HEAD + graph.KEEP_MIDDLE + graph.SEQ_LIMIT
    assert len(many) <= graph.SEQ_LIMIT + 1
    assert any(b.kind == "fold" and b.status == "failed" for b in many)


def test_a_hundred_thousand_steps_stay_bounded_and_fast() -> None:
    steps = synthetic(100_000, fan_out=60_000, failed_every=97)
    started = time.perf_counter()
    g = graph.layout(steps)
    text = graph.render_svg(g)
    folded_run = time.perf_counter() - started
    boxes = g.boxes()
    assert [b.kind for b in boxes[:2]] == ["group", "activity"]
    assert boxes[0].count == 60_000
    assert boxes[0].counts["failed"] == 60_000 // 97
    assert len(boxes) <= graph.SEQ_LIMIT + 2
    assert g.drawn + g.grouped + g.folded == 100_000
    assert len(text) < 500_000

    expanded = graph.layout(steps, expand={"1"})
    more = [b for b in expanded.boxes() if b.kind == "more"]
    assert [m.count for m in more] == [60_000 - graph.MAX_ITEMS]
    assert len(expanded.boxes()) <= graph.MAX_NODES + 2
    assert expanded.drawn + expanded.grouped + expanded.folded == 100_000
    assert folded_run < 5  # the benchmark measures it; this only catches a quadratic slip


def test_an_expanded_fan_out_past_its_limit_draws_what_did_not_complete() -> None:
    """Two failures among 3,000 items, far past the first `MAX_ITEMS`: expanding the group
    draws them first, top left (what the operator expanded it to find), then the first
    items, in order."""
    g = graph.layout(synthetic(3000, fan_out=3000, failed_every=1234), expand={"1"})
    drawn = [b for b in g.boxes() if b.kind == "activity"]
    assert [b.seq for b in drawn if b.status == "failed"] == [1234, 2468]
    in_reading_order = sorted(drawn, key=lambda b: (b.y, b.x))
    assert in_reading_order[:2] == [b for b in drawn if b.status == "failed"]
    assert sorted(b.seq for b in drawn) == [*range(1, graph.MAX_ITEMS - 1), 1234, 2468]
    [more] = [b for b in g.boxes() if b.kind == "more"]
    assert more.count == 3000 - graph.MAX_ITEMS
    assert more.counts == {"completed": 3000 - graph.MAX_ITEMS}
    assert g.drawn + g.grouped + g.folded == 3000


def test_a_node_budget_folds_whatever_is_left() -> None:
    g = graph.layout(synthetic(500, fan_out=300), expand={"1"}, max_nodes=50)
    assert len(g.boxes()) <= 52
    assert g.drawn + g.grouped + g.folded == 500
    assert any(b.kind == "fold" for b in g.boxes())


def test_unsorted_and_empty_input() -> None:
    steps = synthetic(5)
    assert [b.seq for b in graph.layout(steps[::-1]).boxes()] == [1, 2, 3, 4, 5]
    empty = graph.layout([])
    assert (empty.nodes, empty.total) == ([], 0)
    assert "0 steps" in graph.render_svg(empty)


def test_branches_of_a_real_fan_out_stand_side_by_side_each_in_sequence() -> None:
    steps = asyncio.run(nested_steps())
    [group] = graph.layout(steps).boxes()  # spawned in one go: one fan-out
    assert (group.kind, group.count, group.label) == (
        "group",
        17,
        "fetch, prepare \u00d75 (17 steps)",
    )
    g = graph.layout(steps, expand={str(group.group)})
    boxes = g.boxes()
    assert len(boxes) == 17
    columns: dict[float, list[graph.Node]] = {}
    for box in boxes:
        columns.setdefault(box.x, []).append(box)
    assert len(columns) == 5  # the lone task and the four items, side by side
    xs = sorted(columns)
    assert all(b - a >= boxes[0].w for a, b in itertools.pairwise(xs))
    assert [b.label for b in columns[xs[0]]] == ["prepare('side')"]
    for k, x in enumerate(xs[1:]):
        column = sorted(columns[x], key=lambda b: b.y)
        assert [b.label for b in column] == [f"prepare('i{k}')"] + [
            f"fetch('{k}-{j}')" for j in range(3)
        ]
        assert len({b.y for b in column}) == 4  # one under the other
    tops = {min(b.y for b in column) for column in columns.values()}
    assert len(tops) == 1  # every branch starts at the fork


def test_every_kind_has_its_box_and_unknown_ones_still_draw() -> None:
    kinds = ["activity", "child", "timer", "signal", "external", "publish", "marker", "damaged"]
    steps = [
        dataclasses.replace(s, kind=kind, name=f"n{i}", status=status, child_id="c")
        for i, (s, kind, status) in enumerate(
            zip(synthetic(9), [*kinds, "compensation"], [*STATUSES, "odd", "odd"], strict=True)
        )
    ]
    text = graph.render_svg(graph.layout(steps))
    links = _links(text)
    assert [a.get("data-kind") for a in links] == [*kinds, "compensation"]
    assert [a.get("data-status") for a in links] == [*STATUSES, "odd", "odd"]
    shapes = {a.get("data-kind"): a.find(f"{SVG}polygon") is not None for a in links}
    assert shapes == {k: k in ("signal", "external", "publish", "marker") for k in shapes}
    labels = [next(a.iter(f"{SVG}text")).text or "" for a in links]
    assert labels[1].startswith("child \u00b7 n1")
    assert labels[5].startswith("publish \u00b7 n5")
    assert labels[6].startswith("patch \u00b7 n6")


@durable.workflow
async def waits_once() -> str:
    """A signal wait with a timeout: the wait runs as a task of its own, a group of one."""
    return str(await durable.wait_signal("go", timeout=3600))


async def test_a_group_of_one_is_drawn_as_its_step_not_as_a_fan_out() -> None:
    async with WorkflowEnvironment(workflows=[waits_once]) as env:
        handle = await env.client.start(waits_once, id="once")
        await env.sleep(timedelta(seconds=1))
        await handle.signal("go", "now")
        assert await handle.result() == "now"
        steps = await handle.steps()
    graph = layout(steps)
    assert [n.kind for n in graph.nodes if n.kind == "group"] == []
    assert [n.kind for n in graph.boxes()] == ["signal"]
    assert graph.drawn == len(steps) == 1


def test_a_run_of_few_branches_is_laid_out_as_one_of_many(
    tour: list[Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    from durable.console import layering

    nested = asyncio.run(nested_steps())
    runs = [tour, nested, synthetic(700, fan_out=30, failed_every=50)]
    groups = [{str(s.group) for s in steps if s.group is not None} for steps in runs]
    every = [(s, e) for s, g in zip(runs, groups, strict=True) for e in (set(), g)]
    few = [graph.render_svg(layout(steps, expand)) for steps, expand in every]
    assert any(len({s.branch for s in steps}) <= layering._FEW_BRANCHES for steps in runs)
    monkeypatch.setattr(layering, "_FEW_BRANCHES", 0)  # each step to its branch in turn
    assert [graph.render_svg(layout(steps, expand)) for steps, expand in every] == few
