"""The recorder: operations (one per API request) made of timed, nested steps.

The daemon's step functions carry `@traced("verifyContainerSettings")` or a
`with step("setRWLayer"):`; while nothing consumes traces (no OTLP endpoint, no
--metrics-addr) both are a flag test and nothing else. When something does, a step is
two clock reads and a list append on the operation the current context belongs to
(a ContextVar, so tasks and the I/O pool's threads each see their own). At its end an
operation is only marked ended and queued; its spans are frozen once the loop is done
with the callback that ended it (its answer written), and the page's ring and the sinks
(OTLP export, metrics) get the queue in batches (`flush`: every FLUSH_DELAY seconds or
FLUSH_AT operations, and before a reader looks), so that work runs back to back over
many operations, off the requests' path. (Under callgrind, bench/trace_cost.py
--instructions: what a create's trace costs the daemon is interpreter work, about 5,000
instructions a span and as much again for the request's operation and the sinks; so the
request's path does as little of it as it can.)

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
    # (kind, action, seconds) of a finished dockerd action, e.g. ("container", "create", 0.004)
    action_sink: Callable[[str, str, float], None] | None = None


state = _State()
_ids = itertools.count(1)
_clock = time.perf_counter_ns

# A live span is a list, [name, parent's index, start, end, kind, attrs, error, index]
# (times from perf_counter_ns; end 0 while open; the root's index 0, its parent -1): the
# cheapest object to make and to fill in from the loop and the I/O pool's threads alike
# (list.append and next() on the operation's counter are atomic, so no lock).
# An ended operation's spans are frozen into seven columns (`Operation.columns`) with one
# zip; `Operation.spans` reads them as FrozenSpans.
_NAME, _PARENT, _START, _END, _KIND, _ATTRS, _ERROR, _INDEX = range(8)


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


# The columns of a finished operation's spans: names, parents, starts, ends, kinds, attrs, errors.
Columns = tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[str, ...],
                tuple[dict[str, Any] | None, ...], tuple[str, ...]]


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
        """The spans of the ended operation as seven columns (tuples of strings and ints):
        a handful of objects whatever the number of spans, which the garbage collector
        stops tracking. Made at the first read (end_operation only marks the end)."""
        columns = self._columns
        if columns is None:
            columns = _freeze(self)
        return columns

    @columns.setter
    def columns(self, columns: Columns) -> None:
        self._columns = columns

    @property
    def spans(self) -> list[FrozenSpan]:
        """The spans of the finished operation, the root first (made at each read)."""
        return [FrozenSpan._make(row) for row in zip(*self.columns, strict=True)]

    def wall_ns(self, mono: int) -> int:
        """A perf_counter reading of this operation as Unix nanoseconds."""
        return self.wall + (mono - self.mono)


_current: contextvars.ContextVar[tuple[Operation, list[Any]] | None] = contextvars.ContextVar(
    "berth_trace_span", default=None)


def begin_operation(name: str, attrs: dict[str, Any] | None = None, kind: str = REQUEST) -> Operation | None:
    """A new root in the current context (None when tracing is off)."""
    if not state.on:
        return None
    op = Operation(name, kind, attrs)
    _current.set((op, op.live[0]))
    return op


_new = object.__new__


def begin_request(method: str, route: str, version: str, traceparent: str = "") -> Operation | None:
    """The operation of one API request: `POST /containers/create` with the route template,
    never the path's values or the query (they can carry names a user keeps private).

    Operation.__init__ written out, and the wall clock left for the freeze: every Python
    call on a request's path adds to its answer's time."""
    if not state.on:
        return None
    op = _new(Operation)
    op.id = next(_ids)
    op.mono = mono = _clock()
    op.wall = 0
    op.live = [[f"{method} {route}", -1, mono, 0, REQUEST, {
        "http.request.method": method, "http.route": route, "docker.api.version": version or "default"}, "", 0]]
    op.seq = itertools.count(1)
    op.n = 0
    op._columns = None
    op.containers = []
    op.status = 0
    op.remote_parent = traceparent
    _current.set((op, op.live[0]))
    return op


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
    """The ended operation's columns, made from its spans as they were at its end; the
    live lists go. Its wall clock too, when it has none yet."""
    live = op.live
    n = op.n
    if len(live) != n:
        live = live[:n]
    names, parents, starts, ends, kinds, attrs, errors, order = zip(*live, strict=True)
    if order != _indices(n):  # threads of one operation crossed, or one was left out
        names, parents, starts, ends, kinds, attrs, errors = _reordered(live)
    op._columns = columns = (names, parents, starts, ends, kinds, attrs, errors)
    op.live = []
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


_INDICES: list[tuple[int, ...]] = [tuple(range(n)) for n in range(64)]


def _indices(n: int) -> tuple[int, ...]:
    """(0, 1, ..., n-1), kept for the usual sizes."""
    return _INDICES[n] if n < 64 else tuple(range(n))


def _reordered(live: list[list[Any]]) -> tuple[tuple[Any, ...], ...]:
    """The columns of spans whose list order is not their index order (two threads of the
    operation appended in the other order than they counted) or with an index missing (a
    span opened as the operation ended is left out): by index, parents as positions (a
    parent left out: the root)."""
    live = sorted(live, key=lambda s: s[_INDEX])
    position = {s[_INDEX]: i for i, s in enumerate(live)}
    cols = list(zip(*live, strict=True))
    cols[_PARENT] = tuple(-1 if p < 0 else position.get(p, 0) for p in cols[_PARENT])
    return tuple(cols[:_INDEX])


def _restore(token: contextvars.Token[Any], cur: tuple[Operation, list[Any]]) -> None:
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
        if cur is None or not (live := cur[0].live) or live[0][_END]:  # no operation, or it ended
            return
        op = cur[0]
        self.span = span = [self.name, cur[1][_INDEX], _clock(), 0, self.kind, self.attrs, "", next(op.seq)]
        live.append(span)
        self.cur = cur
        self.token = _current.set((op, span))

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


def _act(timed: tuple[str, str], ns: int) -> None:
    sink = state.action_sink
    if sink is not None:
        sink(timed[0], timed[1], ns / 1e9)


def traced(name: str | Callable[..., str], kind: str = STEP, action: str = "",
           network_action: str = "", image_action: str = "", count_errors: bool = False,
           leaf: bool = False) -> Callable[[F], F]:
    """Decorate a step function (sync or async) to be a span named `name` (dockerd's
    name for the step). `name` may be a function of the call's arguments, for spans
    such as `runc start`. `action` / `network_action` / `image_action` also time a
    successful call into dockerd's engine_daemon_{container,network,image}_actions_seconds
    (also outside any API request: a restart policy's start counts); `count_errors` times
    failed calls too (dockerd's pull and push call UpdateSince before looking at the error).

    The span is opened and closed in the wrapper itself (a call costs the wrapper and two
    clock reads), and a timed call's duration is its span's. A `leaf` step records no
    step of its own (a step it ran would become its parent's child): it is not made the
    context's current span, which saves a ContextVar set and reset, a sixth of a span's
    cost."""
    timed = (("container", action) if action else ("network", network_action) if network_action
             else ("image", image_action) if image_action else None)

    def deco(fn: F) -> F:
        def span_name(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if not callable(name):
                return name
            try:
                return name(*args, **kwargs)
            except Exception:  # a call shaped otherwise: the function's own name
                return fn.__name__

        fixed = name if isinstance(name, str) else ""

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def astep(*args: Any, **kwargs: Any) -> Any:
                if not state.on:
                    return await fn(*args, **kwargs)
                cur = _current.get()
                if cur is None or not (live := cur[0].live) or live[0][_END]:  # no operation, or it ended
                    if timed is None:
                        return await fn(*args, **kwargs)
                    t0 = _clock()
                    try:
                        r = await fn(*args, **kwargs)
                    except BaseException:
                        if count_errors:
                            _act(timed, _clock() - t0)
                        raise
                    _act(timed, _clock() - t0)
                    return r
                op = cur[0]
                span = [fixed or span_name(args, kwargs), cur[1][_INDEX], _clock(), 0, kind, None, "", next(op.seq)]
                live.append(span)
                token = None if leaf else _current.set((op, span))
                try:
                    r = await fn(*args, **kwargs)
                except BaseException as e:
                    span[_END] = _clock()
                    span[_ERROR] = type(e).__name__
                    if token is not None:
                        _restore(token, cur)
                    if timed is not None and count_errors:
                        _act(timed, span[_END] - span[_START])
                    raise
                span[_END] = end = _clock()
                if token is not None:
                    try:
                        _current.reset(token)
                    except ValueError:  # closed in another context than it was opened (a moved task)
                        _current.set(cur)
                if timed is not None:
                    _act(timed, end - span[_START])
                return r

            return astep  # type: ignore[return-value]  # functools.wraps keeps fn's signature; mypy sees a _Wrapped

        @functools.wraps(fn)
        def step_(*args: Any, **kwargs: Any) -> Any:
            if not state.on:
                return fn(*args, **kwargs)
            cur = _current.get()
            if cur is None or not (live := cur[0].live) or live[0][_END]:  # no operation, or it ended
                if timed is None:
                    return fn(*args, **kwargs)
                t0 = _clock()
                try:
                    r = fn(*args, **kwargs)
                except BaseException:
                    if count_errors:
                        _act(timed, _clock() - t0)
                    raise
                _act(timed, _clock() - t0)
                return r
            op = cur[0]
            span = [fixed or span_name(args, kwargs), cur[1][_INDEX], _clock(), 0, kind, None, "", next(op.seq)]
            live.append(span)
            token = None if leaf else _current.set((op, span))
            try:
                r = fn(*args, **kwargs)
            except BaseException as e:
                span[_END] = _clock()
                span[_ERROR] = type(e).__name__
                if token is not None:
                    _restore(token, cur)
                if timed is not None and count_errors:
                    _act(timed, span[_END] - span[_START])
                raise
            span[_END] = end = _clock()
            if token is not None:
                try:
                    _current.reset(token)
                except ValueError:  # the function switched contexts and did not switch back
                    _current.set(cur)
            if timed is not None:
                _act(timed, end - span[_START])
            return r

        return step_  # type: ignore[return-value]  # functools.wraps keeps fn's signature; mypy sees a _Wrapped

    return deco


def touch(container_id: str) -> None:
    """Note that the current operation touched this container (the page links them)."""
    if not state.on:
        return
    cur = _current.get()
    if cur is not None and cur[0].live and not cur[0].live[0][_END] and container_id not in cur[0].containers:
        cur[0].containers.append(container_id)


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


class ContextExecutor(ThreadPoolExecutor):
    """The loop's default executor while tracing is on: what a step sends to a thread with
    `loop.run_in_executor(None, ...)` runs in the step's context, so the steps it runs
    (a layer's applyTar, Register) nest under it. Asyncio's own default otherwise."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if _current.get() is not None:
            return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
        return super().submit(fn, *args, **kwargs)


def current_operation() -> Operation | None:
    """The operation in progress in this context (None: none, or it ended)."""
    cur = _current.get()
    if cur is None or not cur[0].live or cur[0].live[0][_END]:
        return None
    return cur[0]
