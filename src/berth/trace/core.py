"""The recorder: operations (one per API request) made of timed, nested steps.

The daemon's step functions carry `@traced("verifyContainerSettings")` or a
`with step("setRWLayer"):`; while nothing consumes traces (no OTLP endpoint, no
--metrics-addr) both are a flag test and nothing else. When something does, a step is
two clock reads and an append to the operation the current context belongs to (a
ContextVar, so tasks and the I/O pool's threads each see their own); its wrapper is
written for the function's own parameters (`_wrapper_source`), or for a synchronous
step, when it was built, is `_speedups.Step`, the same wrapper in C. At its end an
operation is only marked ended and queued; its spans are frozen once the loop is done
with the callback that ended it (its answer written), and the page's ring and the sinks
(OTLP export, metrics) get the queue in batches (`flush`: every FLUSH_DELAY seconds or
FLUSH_AT operations, and before a reader looks), so that work runs back to back over
many operations, off the requests' path. (Under callgrind, bench/trace_cost.py
--instructions: what a create's trace costs the daemon is interpreter work: a leaf step
about 2,100 instructions more than off in the Python wrapper, 1,100 in C, one with
children 5,900 (its ContextVar set and reset are most of it), then after the answer the
freeze, the page and the metrics; so the request's path does as little of it as it can.
The freeze stays right after each answer: deferred to the batches, the live spans held
for FLUSH_DELAY cost the cyclic GC and the cache more than the freeze saved.)

Nothing here reads request bodies, environments or command lines: a span holds a name,
times, and the few attributes its caller passes (IDs, route templates, statuses).
"""
from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import itertools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

STEP = "step"
PROCESS = "process"
REQUEST = "request"


class _State:
    """Module switches; `on` is read by every decorated call."""

    on = False
    # each gets the finished operations of a batch, oldest first
    sinks: list[Callable[[list[Operation]], None]] = []
    # gets each finished operation once frozen, soon after its end (the page's ring)
    keeper: Callable[[Operation], None] | None = None
    # gets (kind, action, nanoseconds) of each finished dockerd action, e.g. ("container",
    # "create", 4_000_000), from any thread: the metrics' queue's append, no Python call
    action_sink: Callable[[tuple[str, str, int]], None] | None = None


state = _State()
_ids = itertools.count(1)
_clock = time.perf_counter_ns

# A live span is [name, parent's index, start, end, kind, attrs, error, index] (times
# from perf_counter_ns; the root's index 0, its parent -1). One that can have children is
# a list appended at its start (end 0 while open) with an index from the operation's
# counter, which its children name; a leaf step's is a tuple appended at its end, with
# index _LEAF, and only its first four fields for a STEP that returned: the least work
# for the most numerous spans. list.append and next() are atomic, so the loop and the I/O
# pool's threads need no lock. An ended operation's spans are frozen into eight columns
# (`Operation.columns`) in the order they were recorded; `Operation.spans` reads them as
# FrozenSpans in the order they started.
_NAME, _PARENT, _START, _END, _KIND, _ATTRS, _ERROR, _INDEX = range(8)
_LEAF = -2  # the index of a leaf step's span (no span names it as its parent)


class FrozenSpan(NamedTuple):
    """A span of a finished operation (what the sinks see); `parent` indexes the
    operation's spans (-1: the root)."""

    name: str
    parent: int
    start: int
    end: int
    kind: str
    attrs: dict[str, Any] | None
    error: str

    @property
    def duration(self) -> int:
        return self.end - self.start


# The columns of a finished operation's spans, as recorded (the root first; see `_freeze`):
# names, parents' indices, starts, ends, kinds, attrs, errors, indices; a plain leaf's kind,
# error and index are None (STEP, "", _LEAF).
Columns = tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[str | None, ...],
                tuple[dict[str, Any] | None, ...], tuple[str | None, ...], tuple[int | None, ...]]


class Operation:
    """An API request (or another root) with its spans; the first is the root."""

    __slots__ = ("_columns", "containers", "id", "live", "mono", "n", "remote_parent", "seq", "status", "wall")

    def __init__(self, name: str, kind: str, attrs: dict[str, Any] | None) -> None:
        self.id = next(_ids)
        self.mono = _clock()
        self.wall = time.time_ns()
        self.live: list[list[Any]] = [[name, -1, self.mono, 0, kind, attrs, "", 0]]  # emptied when frozen
        self.seq = itertools.count(1)  # the next span's index
        self.n = 0  # the spans it had when it ended (what a thread adds later is left out)
        self._columns: Columns | None = None  # made from `live` at the first read after the end
        self.containers: list[str] = []
        self.status = 0
        self.remote_parent: str = ""  # a W3C traceparent the client sent, for OTLP

    @property
    def columns(self) -> Columns:
        """The spans of the ended operation as eight columns (tuples of strings and ints)
        in the order they were recorded, the root first, parents by index: a handful of
        objects whatever the number of spans, which the garbage collector stops tracking.
        Made at the first read (end_operation only marks the end). What needs order and
        nesting reads `spans`; the metrics need neither."""
        columns = self._columns
        if columns is None:
            columns = _freeze(self)
        return columns

    @columns.setter
    def columns(self, columns: Columns) -> None:
        self._columns = columns

    @property
    def spans(self) -> list[FrozenSpan]:
        """The spans of the finished operation in the order they started, the root first,
        parents as positions (made at each read: by the page and the exporter's child).

        A leaf step's span was recorded at its end, the others at their start, before any
        child of theirs: sorted by start, a tie keeps the recorded order, a parent first.
        A parent left out (it began as the operation ended) becomes the root."""
        names, parents, starts, ends, kinds, attrs, errors, indices = self.columns
        order = sorted(range(len(names)), key=starts.__getitem__)
        order.remove(0)
        order.insert(0, 0)  # the root first, whatever the clock
        position = {indices[i]: p for p, i in enumerate(order)}
        position[-1] = -1
        return [FrozenSpan(names[i], position.get(parents[i], 0), starts[i], ends[i], kinds[i] or STEP, attrs[i],
                           errors[i] or "") for i in order]

    def wall_ns(self, mono: int) -> int:
        """A perf_counter reading of this operation as Unix nanoseconds."""
        return self.wall + (mono - self.mono)


# The context's current span, as the steps under it need it: (the operation's live spans,
# the span's index, the operation's next-index function, the operation). An ended
# operation's live list is emptied when it is frozen: a step that sees it empty records
# nothing (one that sees it between the end and the freeze is cut off by `Operation.n`).
Cursor = tuple[list[list[Any]], int, Callable[[], int], Operation]
_current: contextvars.ContextVar[Cursor | None] = contextvars.ContextVar("berth_trace_span", default=None)


def _open(cur: Cursor | None) -> Operation | None:
    """The operation of `cur` if it has not ended."""
    if cur is None or not cur[0] or cur[0][0][_END]:
        return None
    return cur[3]


def begin_operation(name: str, attrs: dict[str, Any] | None = None, kind: str = REQUEST) -> Operation | None:
    """A new root in the current context (None when tracing is off)."""
    if not state.on:
        return None
    op = Operation(name, kind, attrs)
    _current.set((op.live, 0, op.seq.__next__, op))
    return op


_new = object.__new__


def begin_request(method: str, route: str, version: str, traceparent: str = "") -> Operation | None:
    """The operation of one API request: `POST /containers/create` with the route template,
    never the path's values or the query (they can carry names a user keeps private).

    Operation.__init__ written out, and the root's name and attributes, like the wall
    clock, left for the freeze (`_name_root`): every Python call on a request's path adds to
    its answer's time."""
    if not state.on:
        return None
    op = _new(Operation)
    op.id = next(_ids)
    op.mono = mono = _clock()
    op.wall = 0
    op.live = live = [[None, -1, mono, 0, REQUEST, (method, route, version), "", 0]]
    op.seq = seq = itertools.count(1)
    op.n = 0
    op._columns = None
    op.containers = []
    op.status = 0
    op.remote_parent = traceparent
    _current.set((live, 0, seq.__next__, op))
    return op


def _name_root(root: list[Any]) -> None:
    """A request's root as begin_request left it, named: `POST /containers/create` and the
    method, route and API version as attributes."""
    method, route, version = root[_ATTRS]
    root[_NAME] = f"{method} {route}"
    root[_ATTRS] = {"http.request.method": method, "http.route": route, "docker.api.version": version or "default"}


FLUSH_DELAY = 0.25
FLUSH_AT = 256
_finished: collections.deque[Operation] = collections.deque()
_flusher: list[asyncio.TimerHandle | None] = [None]
_loop: list[asyncio.AbstractEventLoop | None] = [None]  # the one the flushes run in
_answered: list[Operation] = []  # ended in the loop, not frozen yet (see _after_answers)
_due: list[asyncio.AbstractEventLoop | None] = [None]  # the loop _after_answers is due in


def end_operation(op: Operation | None, status: int = 0, error: str = "") -> None:
    """Close the root and queue the operation for the keeper and the sinks.

    The context keeps the ended operation as its current one (no reset: a context ends
    with its request, and aiohttp's next request on the connection begins its own); a
    step that starts after the end sees it ended and records nothing."""
    if op is None:
        return
    live = op.live
    root = live[0]
    op.status = status
    if error:
        root[_ERROR] = error
    root[_END] = _clock()  # from here no step adds itself (a step looks)
    op.n = len(live)  # one that was already past the look is left out
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a thread: kept now; the sinks run in the loop's thread, or at once without one
        _freeze(op)
        if state.keeper is not None:
            _keep(state.keeper, op)
        if not state.sinks:
            return
        _finished.append(op)
        known = _loop[0]
        if known is not None and known.is_running():
            known.call_soon_threadsafe(flush)
        else:
            flush()
        return
    _answered.append(op)
    if state.sinks:
        _finished.append(op)
    if _due[0] is not loop:  # else it is due already
        _due[0] = loop
        loop.call_soon(_after_answers, loop)


def _after_answers(loop: asyncio.AbstractEventLoop) -> None:
    """Once the loop is done with what it was doing when operations ended (their requests'
    answers written, so no client waits for this): their spans frozen, which lets their
    live lists go before the cyclic GC sees them, and the next flush armed."""
    _due[0] = None
    _settle()
    if not _finished:
        return
    if _flusher[0] is None:
        _loop[0] = loop
        _flusher[0] = loop.call_later(FLUSH_DELAY, flush)
    if len(_finished) >= FLUSH_AT:
        flush()


def _settle() -> None:
    """The operations ended in the loop since the last time: frozen, and to the keeper."""
    if not _answered:
        return
    keeper = state.keeper
    ended = _answered[:]
    del _answered[:len(ended)]  # not clear(): one the loop ended meanwhile stays for the next
    for op in ended:
        _freeze(op)
        if keeper is not None:
            _keep(keeper, op)


def _freeze(op: Operation) -> Columns:
    """The ended operation's columns, made from its spans as they were at its end (in
    the order they were recorded: `Operation.spans` puts them in order); the live lists
    go. Its wall clock too, when it has none yet."""
    live = op.live
    if live[0][_NAME] is None:  # a request's root, as begin_request left it
        _name_root(live[0])
    spans = live if len(live) == op.n else live[:op.n]  # what a step appended after the end is left out
    # A plain leaf's four missing fields come out None (read as STEP, no attributes, no
    # error, _LEAF); one C call whatever the spans: _speedups.freeze, which also takes the
    # columns of names and times out of the cyclic GC's sight, else zip_longest.
    if _c_freeze is not None:
        columns: Columns = _c_freeze(spans, 8)
    else:
        columns = tuple(itertools.zip_longest(*spans))  # type: ignore[assignment]  # eight columns
    op._columns = columns
    live.clear()  # emptied, not replaced: the contexts that still hold it see the end
    if not op.wall:  # soon after its end: the offset between the clocks is the same
        op.wall = time.time_ns() - (_clock() - op.mono)
    return columns


def _keep(keeper: Callable[[Operation], None], op: Operation) -> None:
    try:
        keeper(op)
    except Exception:  # a broken keeper must not break the request or the others' turn
        logging.getLogger("berth.trace").exception("trace keeper %r", keeper)


def flush() -> None:
    """The finished operations so far to the sinks (from any thread; what a concurrent
    flush took goes with it)."""
    timer, _flusher[0] = _flusher[0], None
    if timer is not None:
        timer.cancel()
    _settle()
    batch: list[Operation] = []
    while True:
        try:
            op = _finished.popleft()
        except IndexError:
            break
        batch.append(op)
    if not batch:
        return
    for sink in state.sinks:
        try:
            sink(batch)
        except Exception:  # a broken sink must not break the others
            logging.getLogger("berth.trace").exception("trace sink %r", sink)


def _restore(token: contextvars.Token[Any], cur: Cursor) -> None:
    """Back to the span `cur` after one of its children."""
    try:
        _current.reset(token)
    except ValueError:  # closed in another context than it was opened (a moved task)
        _current.set(cur)


class _NoStep:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_STEP = _NoStep()


class _Step:
    """A `with` block as a child span of the current one (opened and closed written out:
    no call but the clock's)."""

    __slots__ = ("attrs", "cur", "kind", "name", "span", "token")

    def __init__(self, name: str, kind: str, attrs: dict[str, Any] | None) -> None:
        self.name = name
        self.kind = kind
        self.attrs = attrs
        self.span: list[Any] | None = None

    def __enter__(self) -> None:
        cur = _current.get()
        if cur is None or not (live := cur[0]):  # no operation, or it ended
            return
        index = cur[2]()
        self.span = span = [self.name, cur[1], _clock(), 0, self.kind, self.attrs, "", index]
        live.append(span)
        self.cur = cur
        self.token = _current.set((live, index, cur[2], cur[3]))

    def __exit__(self, et: object, ev: BaseException | None, tb: object) -> None:
        span = self.span
        if span is not None:
            span[_END] = _clock()
            if ev is not None:
                span[_ERROR] = type(ev).__name__
            _restore(self.token, self.cur)


def step(name: str, kind: str = STEP, **attrs: Any) -> Any:
    """`with step("setRWLayer"):` — a child span of the current one."""
    if not state.on:
        return _NO_STEP
    return _Step(name, kind, attrs or None)


def process(name: str, **attrs: Any) -> Any:
    """`with process("netavark setup"):` — a span for a program Berth runs."""
    if not state.on:
        return _NO_STEP
    return _Step(name, PROCESS, attrs or None)


def traced(name: str | Callable[..., str], kind: str = STEP, action: str = "",
           network_action: str = "", image_action: str = "", count_errors: bool = False,
           leaf: bool = False) -> Callable[[F], F]:
    """Decorate a step function (sync or async) to be a span named `name` (dockerd's
    name for the step). `name` may be a function of the call's arguments, for spans
    such as `runc start`. `action` / `network_action` / `image_action` also time a
    successful call into dockerd's engine_daemon_{container,network,image}_actions_seconds
    (also outside any API request: a restart policy's start counts); `count_errors` times
    failed calls too (dockerd's pull and push call UpdateSince before looking at the error).

    A `leaf` step records no step of its own (a step it ran would become its parent's
    child): it is not made the context's current span, which saves a ContextVar set and
    reset, half of what a step with children costs. The wrapper is written for the
    function (see `_wrapper_source`): a leaf's span costs the call, two clock reads and a
    tuple; for a synchronous untimed step that is C (`_speedups.Step`, when built), the
    same spans for a fraction of the Python wrapper's cost."""
    timed = (("container", action) if action else ("network", network_action) if network_action
             else ("image", image_action) if image_action else None)

    def deco(fn: F) -> F:
        def span_name(*args: Any, **kwargs: Any) -> str:
            try:
                return name(*args, **kwargs)  # type: ignore[operator]  # only called when callable
            except Exception:  # a call shaped otherwise: the function's own name
                return fn.__name__

        is_async = inspect.iscoroutinefunction(fn)
        if _CStep is not None and not is_async and timed is None and isinstance(name, str):
            return functools.wraps(fn)(_CStep(fn, name, kind, leaf, _current))  # type: ignore[return-value]  # fn's signature
        params, call, defaults = _signature_source(fn)
        source = _wrapper_source(fn.__name__, params, call, is_async=is_async, leaf=leaf,
                                 named=callable(name), timed=timed is not None, count_errors=count_errors,
                                 plain=kind == STEP)
        namespace: dict[str, Any] = {
            **defaults, "_t_fn": fn, "_t_name": name, "_t_named": span_name, "_t_kind": kind,
            "_t_action_kind": timed[0] if timed else "", "_t_action": timed[1] if timed else "",
            "_t_state": state, "_t_get": _current.get, "_t_set": _current.set, "_t_restore": _restore,
            "_t_reset": _current.reset, "_t_clock": _clock,
        }
        exec(compile(source, f"<berth.trace wrapper of {fn.__module__}.{fn.__qualname__}>", "exec"), namespace)
        return functools.wraps(fn)(namespace[fn.__name__])  # type: ignore[return-value]  # fn's signature, exec'd

    return deco


def _signature_source(fn: Callable[..., Any]) -> tuple[str, str, dict[str, Any]]:
    """`fn`'s parameter list as source, the call passing them on, and the defaults the
    parameter list names (`_t_d0`, ...): the wrapper takes exactly what `fn` takes, so a
    call of it is a plain call (a `*args, **kwargs` wrapper costs a fifth of a span)."""
    params: list[str] = []
    call: list[str] = []
    defaults: dict[str, Any] = {}
    star = slash = False
    for p in inspect.signature(fn).parameters.values():
        if p.name.startswith("_t_"):
            raise TypeError(f"{fn.__qualname__}: parameter {p.name!r} would shadow the trace wrapper's names")
        if slash and p.kind is not p.POSITIONAL_ONLY:
            params.append("/")
            slash = False
        text = p.name
        if p.default is not p.empty:
            defaults[f"_t_d{len(defaults)}"] = p.default
            text += f"=_t_d{len(defaults) - 1}"
        if p.kind is p.POSITIONAL_ONLY:
            slash = True
            call.append(p.name)
        elif p.kind is p.POSITIONAL_OR_KEYWORD:
            call.append(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            star = True
            text = "*" + p.name
            call.append(text)
        elif p.kind is p.KEYWORD_ONLY:
            if not star:
                params.append("*")
                star = True
            call.append(f"{p.name}={p.name}")
        else:
            text = "**" + p.name
            call.append(text)
        params.append(text)
    if slash:
        params.append("/")
    return ", ".join(params), ", ".join(call), defaults


def _wrapper_source(fn_name: str, params: str, call: str, *, is_async: bool, leaf: bool, named: bool,
                    timed: bool, count_errors: bool, plain: bool = False) -> str:
    """The source of a step's wrapper, with only the lines its options need.

    Off, or outside any operation (or in an ended one), it calls the function (timed for
    dockerd's action metrics if `timed`). Else a step that can have steps of its own is a
    list appended to the operation's live spans at its start, [name, parent, start, end,
    kind, attrs, error, index], its end filled in at return, and the context's current
    span meanwhile; a leaf is a tuple appended at its end: (name, parent, start, end) for
    a `plain` one (a STEP that returned; the freeze reads the rest as None), all eight
    fields otherwise."""
    def _act(indent: str, ns: str) -> list[str]:  # the action's time to the sink, if one is set
        return [f"{indent}if (_t_s := _t_state.action_sink) is not None:",
                f"{indent}    _t_s((_t_action_kind, _t_action, {ns}))"]

    aw = "await " if is_async else ""
    run = f"{aw}_t_fn({call})"
    lines = [
        f"{'async ' if is_async else ''}def {fn_name}({params}):",
        # Off, an untimed step needs no test of its own: begin_request and begin_operation
        # make no operation, so no context holds an open one (one begun before the switch
        # went off records to its end); the next line's test is the one.
        *(["    if not _t_state.on:", f"        return {run}"] if timed else []),
        "    _t_cur = _t_get()",
        "    if _t_cur is None or not (_t_live := _t_cur[0]):",  # no operation, or it ended
    ]
    if timed and count_errors:
        lines += [
            "        _t_t0 = _t_clock()",
            "        try:",
            f"            _t_r = {run}",
            "        except BaseException:",
            *_act("            ", "_t_clock() - _t_t0"),
            "            raise",
            *_act("        ", "_t_clock() - _t_t0"),
            "        return _t_r",
        ]
    elif timed:
        lines += [
            "        _t_t0 = _t_clock()",
            f"        _t_r = {run}",
            *_act("        ", "_t_clock() - _t_t0"),
            "        return _t_r",
        ]
    else:
        lines.append(f"        return {run}")
    span_name = "_t_n" if named else "_t_name"
    if named:  # from the arguments as they came
        lines.append(f"    _t_n = _t_named({call})")
    if leaf:  # one tuple at the end
        lines += [
            "    _t_t0 = _t_clock()",
            "    try:",
            f"        _t_r = {run}",
            "    except BaseException as _t_e:",
            f"        _t_live.append(({span_name}, _t_cur[1], _t_t0, _t_t1 := _t_clock(), _t_kind, None,"
            f" type(_t_e).__name__, {_LEAF}))",
            *(_act("        ", "_t_t1 - _t_t0") if timed and count_errors else []),
            "        raise",
            (f"    _t_live.append(({span_name}, _t_cur[1], _t_t0, _t_t1 := _t_clock()))" if plain else
             f"    _t_live.append(({span_name}, _t_cur[1], _t_t0, _t_t1 := _t_clock(), _t_kind, None, '', {_LEAF}))"),
            *(_act("    ", "_t_t1 - _t_t0") if timed else []),
        ]
    else:  # a list at the start, the context's current span until the end
        lines += [
            f"    _t_span = [{span_name}, _t_cur[1], _t_clock(), 0, _t_kind, None, '', _t_cur[2]()]",
            "    _t_live.append(_t_span)",
            f"    _t_token = _t_set((_t_live, _t_span[{_INDEX}], _t_cur[2], _t_cur[3]))",
            "    try:",
            f"        _t_r = {run}",
            "    except BaseException as _t_e:",
            f"        _t_span[{_END}] = _t_clock()",
            f"        _t_span[{_ERROR}] = type(_t_e).__name__",
            "        _t_restore(_t_token, _t_cur)",
            *(_act("        ", f"_t_span[{_END}] - _t_span[{_START}]") if timed and count_errors else []),
            "        raise",
            f"    _t_span[{_END}] = {'_t_end = ' if timed else ''}_t_clock()",
            "    try:",
            "        _t_reset(_t_token)",
            "    except ValueError:",  # closed in another context than it was opened in
            "        _t_set(_t_cur)",
            *(_act("    ", f"_t_end - _t_span[{_START}]") if timed else []),
        ]
    lines.append("    return _t_r")
    return "\n".join(lines) + "\n"


def touch(container_id: str) -> None:
    """Note that the current operation touched this container (the page links them)."""
    if not state.on:
        return
    cur = _current.get()
    if cur is not None and (live := cur[0]) and not live[0][_END]:  # _open, written out
        ids = cur[3].containers
        if container_id not in ids:
            ids.append(container_id)


def touches(fn: F) -> F:
    """Decorate a lookup returning a container: the current operation touched it."""
    return _touching(fn, None)


def touches_through(container_of: Callable[[Any], Any]) -> Callable[[F], F]:
    """Decorate a lookup returning what belongs to a container (an exec: `container_of`
    gives its container): the current operation touched that container."""
    return lambda fn: _touching(fn, container_of)


def _touching(fn: F, container_of: Callable[[Any], Any] | None) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = fn(*args, **kwargs)
        if state.on:
            touch((found if container_of is None else container_of(found)).ID)
        return found

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature; mypy sees a _Wrapped


def in_context(fn: F) -> F:
    """`fn` bound to the current context, for a thread of the I/O pool: the steps it
    runs become children of the step that sent it there."""
    if not state.on or _current.get() is None:
        return fn
    ctx = contextvars.copy_context()
    return functools.partial(ctx.run, fn)  # type: ignore[return-value]  # ctx.run(fn, ...) calls fn: the same signature


_submit = ThreadPoolExecutor.submit


def _load_speedups() -> Any:
    """The C parts (_speedups.c), unless they were not built (no compiler at install
    time) or BERTH_NO_EXTENSIONS is set (as aiohttp's AIOHTTP_NO_EXTENSIONS): then the
    Python code, which does the same, runs (here and in metrics)."""
    if os.environ.get("BERTH_NO_EXTENSIONS"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load_speedups()
_CStep: Callable[..., Any] | None = speedups.Step if speedups is not None else None
_c_freeze: Callable[[list[Any], int], Any] | None = speedups.freeze if speedups is not None else None


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose work runs in the context of the step that sent it while that
    context is in an operation, so the steps it runs (a layer's applyTar, ToDisk) nest
    under it: the daemon's I/O pool, and the loop's default executor while tracing is on.
    Otherwise a plain submit, after one ContextVar read."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if _current.get() is not None:
            return _submit(self, contextvars.copy_context().run, fn, *args, **kwargs)
        return _submit(self, fn, *args, **kwargs)


def current_operation() -> Operation | None:
    """The operation in progress in this context (None: none, or it ended)."""
    return _open(_current.get())
