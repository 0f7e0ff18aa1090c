"""The page on --metrics-addr: the last operations, each drawn as a timeline (HTML + SVG,
no script), the slowest step marked, p50/p90 of every step over the ring, and links
between a request and the containers it touched.

Operations are kept in memory only, in a ring (RING_SIZE); plain reads (GET/HEAD with no
step inside, e.g. inspect or ping) are left out of the ring so a polling client does not
push the creates and starts out. Everything drawn is a name, a time, a status, a route
template or an ID: nothing of a request's body, query or environment is ever recorded.
"""
from __future__ import annotations

import collections
import html
import math
import time
from collections.abc import Iterable

from .core import PROCESS, REQUEST, FrozenSpan, Operation

RING_SIZE = 300
FULL_TIMELINES = 25  # drawn on the index; the older ones are a line with a link

_ROW = 18
_LABEL_W = 300
_BAR_W = 560


class Ring:
    def __init__(self, size: int = RING_SIZE) -> None:
        self.ops: collections.deque[Operation] = collections.deque(maxlen=size)

    def add(self, op: Operation) -> None:
        """The page's trace keeper: each finished operation but the plain reads (a GET or
        HEAD with no step)."""
        names, _parents, _starts, _ends, kinds, attrs, _errors, _indices = op.columns
        if len(names) > 1 or kinds[0] != REQUEST or (attrs[0] or {}).get("http.request.method") not in ("GET", "HEAD"):
            self.ops.append(op)  # deque.append is atomic: no lock against the page's reads

    def snapshot(self) -> list[Operation]:
        return list(self.ops)

    def find(self, op_id: int) -> Operation | None:
        for op in self.snapshot():
            if op.id == op_id:
                return op
        return None


RING = Ring()


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _depths(spans: list[FrozenSpan]) -> list[int]:
    d: list[int] = []
    for s in spans:
        d.append(0 if s.parent < 0 else d[s.parent] + 1)
    return d


def slowest_leaf(op: Operation) -> int:
    """Index of the slowest span with no child (where the time went), -1 if none."""
    spans = op.spans
    parents = {s.parent for s in spans}
    best, best_i = -1, -1
    for i, s in enumerate(spans):
        if i and i not in parents and s.end and s.duration > best:
            best, best_i = s.duration, i
    return best_i


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def step_stats(ops: Iterable[Operation]) -> list[tuple[str, str, int, int, int]]:
    """(name, kind, count, p50 ns, p90 ns) of every step and program over `ops`, in the
    order each was first seen."""
    by: dict[str, tuple[str, list[int]]] = {}
    for op in ops:
        for s in op.spans[1:]:
            if s.end:
                by.setdefault(s.name, (s.kind, []))[1].append(s.duration)
    out = []
    for name, (kind, vals) in by.items():
        vals.sort()
        out.append((name, kind, len(vals), percentile(vals, 50), percentile(vals, 90)))
    return out


def timeline_svg(op: Operation) -> str:
    spans = op.spans
    root = spans[0]
    total = max(1, (root.end or time.perf_counter_ns()) - root.start)
    depths = _depths(spans)
    slow = slowest_leaf(op)
    h = _ROW * len(spans) + 4
    out = [(f'<svg class="timeline" width="{_LABEL_W + _BAR_W + 90}" height="{h}" '
            f'role="img" aria-label="timeline of {_e(root.name)}" xmlns="http://www.w3.org/2000/svg">')]
    for i, s in enumerate(spans):
        y = i * _ROW + 2
        end = s.end or root.end or s.start
        x = _LABEL_W + (s.start - root.start) * _BAR_W / total
        w = max(1.0, (end - s.start) * _BAR_W / total)
        cls = "req" if i == 0 else ("proc" if s.kind == PROCESS else "step")
        if i == slow:
            cls += " slowest"
        if s.error:
            cls += " err"
        title = f"{s.name}: {_ms(end - s.start)}" + (f" (failed: {s.error})" if s.error else "")
        out.append(f'<g class="{cls}" data-step="{_e(s.name)}" data-kind="{_e(s.kind)}">'
                   f"<title>{_e(title)}</title>"
                   f'<text x="{4 + depths[i] * 12}" y="{y + 13}">{_e(s.name)}</text>'
                   f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{_ROW - 5}" rx="2"/>'
                   f'<text class="dur" x="{min(x + w + 4, _LABEL_W + _BAR_W + 4):.1f}" y="{y + 13}">'
                   f'{_e(_ms(end - s.start))}{" ◀ slowest" if i == slow else ""}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _op_head(op: Operation, link: bool) -> str:
    spans = op.spans
    root = spans[0]
    when = time.strftime("%H:%M:%S", time.gmtime(op.wall / 1e9)) + f".{op.wall // 1_000_000 % 1000:03d}Z"
    name = _e(root.name)
    title = f'<a href="/op/{op.id}">{name}</a>' if link else name
    status = f' <span class="status s{op.status // 100}">{op.status}</span>' if op.status else ""
    dur = _ms((root.end or root.start) - root.start)
    ctrs = " ".join(f'<a class="ctr" href="/containers/{_e(c)}">{_e(c[:12])}</a>' for c in op.containers)
    slow = slowest_leaf(op)
    slow_txt = (f' <span class="slow">slowest step: {_e(spans[slow].name)} '
                f'({_e(_ms(spans[slow].duration))})</span>') if slow > 0 else ""
    return (f'<h3><span class="when">{when}</span> {title}{status} <span class="dur">{dur}</span>'
            f'{" containers: " + ctrs if ctrs else ""}{slow_txt}</h3>')


def op_section(op: Operation, link: bool = True) -> str:
    return (f'<section class="op" id="op-{op.id}" data-op="{op.id}" data-name="{_e(op.columns[0][0])}">'
            f"{_op_head(op, link)}{timeline_svg(op)}</section>")


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.5em} h3{font-size:1em;font-weight:normal;margin:.2em 0}
section.op{border-top:1px solid #ddd;padding:.4em 0}
svg.timeline text{font:12px monospace;fill:#222}
svg.timeline text.dur{fill:#555}
svg.timeline .req rect{fill:#9db4d0} svg.timeline .step rect{fill:#5b8fd1}
svg.timeline .proc rect{fill:#e0a040} svg.timeline .slowest rect{fill:#d0413a}
svg.timeline .slowest text{font-weight:bold} svg.timeline .err rect{stroke:#900;stroke-width:2}
.status.s2{color:#070} .status.s3{color:#555} .status.s4{color:#a60} .status.s5{color:#c00}
.slow{color:#d0413a} .when{color:#777;font-family:monospace}
table{border-collapse:collapse} td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left;font-family:monospace}
"""


def _doc(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def stats_table(ops: list[Operation]) -> str:
    rows = "".join(
        f'<tr class="{_e(kind)}"><td>{_e(name)}</td><td>{_e(kind)}</td><td>{n}</td>'
        f"<td>{_e(_ms(p50))}</td><td>{_e(_ms(p90))}</td></tr>"
        for name, kind, n, p50, p90 in step_stats(ops))
    return ('<table id="steps"><tr><th>step</th><th>kind</th><th>count</th><th>p50</th><th>p90</th></tr>'
            f"{rows}</table>")


def render_index(ring: Ring = RING) -> str:
    ops = ring.snapshot()
    recent = ops[::-1]
    full = "".join(op_section(op) for op in recent[:FULL_TIMELINES])
    older = "".join(f'<li>{_op_head(op, True)}</li>' for op in recent[FULL_TIMELINES:])
    body = (f"<h1>berthd: the last {len(ops)} operations</h1>"
            '<p>Each API request with the daemon\'s steps (dockerd\'s names, blue) and the programs it ran '
            '(orange); the slowest step in red. <a href="/metrics">/metrics</a></p>'
            f"<h2>Steps over the ring (p50 / p90)</h2>{stats_table(ops)}"
            f'<h2>Recent operations</h2><div id="ops">{full}</div>'
            + (f'<h2>Older</h2><ul id="older">{older}</ul>' if older else ""))
    return _doc("berthd operations", body)


def render_op(op: Operation) -> str:
    return _doc(op.columns[0][0], f'<p><a href="/">all operations</a></p>{op_section(op, link=False)}')


def render_container(cid: str, ring: Ring = RING) -> str:
    ops = [op for op in ring.snapshot() if any(c == cid or c.startswith(cid) for c in op.containers)]
    body = (f'<p><a href="/">all operations</a></p><h1>container {_e(cid[:12])}</h1>'
            f"<p>{len(ops)} operations in the ring touched it.</p>"
            f'<h2>Steps (p50 / p90)</h2>{stats_table(ops)}'
            + "".join(op_section(op) for op in ops[::-1]))
    return _doc(f"container {cid[:12]}", body)
