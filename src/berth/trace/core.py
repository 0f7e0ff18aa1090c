"""The recorder: operations (one per API request) made of timed, nested steps.

The daemon's step functions carry `@traced("verifyContainerSettings")` or a
`with step("setRWLayer"):`; while nothing consumes traces (no OTLP endpoint, no
--metrics-addr) both are a flag test and nothing else. When something does, a step is
two clock reads and a list append on the operation the current context belongs to
(a ContextVar, so tasks and the I/O pool's threads each see their own); the finished
operation is handed to the sinks (OTLP export, metrics, the page's ring) once, at its
end, so the cost of a sink is paid per operation and off the steps' path.

Nothing here reads request bodies, environments or command lines: a span holds a name,
times, and the few attributes its caller passes (IDs, route templates, statuses).
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

STEP = "step"
PROCESS = "process"
REQUEST = "request"


class _State:
    """Module switches; `on` is read by every decorated call."""

    on = False
    sinks: list[Callable[[Operation], None]] = []
    # (kind, action, seconds) of a finished dockerd action, e.g. ("container", "create", 0.004)
    action_sink: Callable[[str, str, float], None] | None = None


state = _State()
_ids = itertools.count(1)
_append_lock = threading.Lock()


class Span:
    """One timed piece of an operation; `parent` indexes the operation's spans (-1: root)."""

    __slots__ = ("attrs", "end", "error", "kind", "name", "parent", "start")

    def __init__(self, name: str, parent: int, start: int, kind: str, attrs: dict[str, Any] | None) -> None:
        self.name = name
        self.parent = parent
        self.start = start
        self.end = 0
        self.kind = kind
        self.attrs = attrs
        self.error = ""

    @property
    def duration(self) -> int:
        return self.end - self.start


class FrozenSpan(NamedTuple):
    """A span of a finished operation (what the sinks see)."""

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


class Operation:
    """An API request (or another root) with its spans; spans[0] is the root."""

    __slots__ = ("containers", "id", "mono", "remote_parent", "spans", "status", "token", "wall")

    def __init__(self, name: str, kind: str, attrs: dict[str, Any] | None) -> None:
        self.id = next(_ids)
        self.mono = time.perf_counter_ns()
        self.wall = time.time_ns()
        self.spans: list[Any] = [Span(name, -1, self.mono, kind, attrs)]  # FrozenSpan once ended
        self.containers: list[str] = []
        self.status = 0
        self.remote_parent: str = ""  # a W3C traceparent the client sent, for OTLP
        self.token: contextvars.Token[Any] | None = None

    @property
    def root(self) -> Span:
        return self.spans[0]

    def wall_ns(self, mono: int) -> int:
        """A perf_counter reading of this operation as Unix nanoseconds."""
        return self.wall + (mono - self.mono)


_current: contextvars.ContextVar[tuple[Operation, int] | None] = contextvars.ContextVar(
    "berth_trace_span", default=None)


def begin_operation(name: str, attrs: dict[str, Any] | None = None, kind: str = REQUEST) -> Operation | None:
    """A new root in the current context (None when tracing is off)."""
    if not state.on:
        return None
    op = Operation(name, kind, attrs)
    op.token = _current.set((op, 0))
    return op


def end_operation(op: Operation | None, status: int = 0, error: str = "") -> None:
    """Close the root and give the operation to the sinks."""
    if op is None:
        return
    root = op.spans[0]
    op.status = status
    if error:
        root.error = error
    with _append_lock:
        root.end = time.perf_counter_ns()
        # Frozen into tuples of strings and ints, which the garbage collector stops
        # tracking: the ring's few thousand spans would otherwise be walked by every full
        # collection (and make them come sooner).
        op.spans = [FrozenSpan(s.name, s.parent, s.start, s.end, s.kind, s.attrs, s.error) for s in op.spans]
    if op.token is not None:
        try:  # aiohttp answers a connection's requests in one task: the next starts clean
            _current.reset(op.token)
        except ValueError:
            _current.set(None)
        op.token = None
    for sink in state.sinks:
        try:
            sink(op)
        except Exception:  # a broken sink must not break the request
            logging.getLogger("berth.trace").exception("trace sink %r", sink)


def _open(name: str, kind: str, attrs: dict[str, Any] | None) -> tuple[Operation, Span, contextvars.Token[Any]] | None:
    cur = _current.get()
    if cur is None:
        return None
    op, parent = cur
    span = Span(name, parent, time.perf_counter_ns(), kind, attrs)
    with _append_lock:  # the loop and the I/O pool's threads add to one operation
        spans = op.spans
        if spans[0].end:  # a task the operation started outlives it (a container's monitor)
            return None
        spans.append(span)
        idx = len(spans) - 1
    return op, span, _current.set((op, idx))


def _close(handle: tuple[Operation, Span, contextvars.Token[Any]], err: BaseException | None) -> None:
    op, span, token = handle
    span.end = time.perf_counter_ns()
    if err is not None:
        span.error = type(err).__name__
    try:
        _current.reset(token)
    except ValueError:  # closed in another context than it was opened (a moved task)
        _current.set((op, span.parent))


class _NoStep:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_STEP = _NoStep()


class _Step:
    __slots__ = ("attrs", "handle", "kind", "name")

    def __init__(self, name: str, kind: str, attrs: dict[str, Any] | None) -> None:
        self.name = name
        self.kind = kind
        self.attrs = attrs
        self.handle: Any = None

    def __enter__(self) -> None:
        self.handle = _open(self.name, self.kind, self.attrs)

    def __exit__(self, et: object, ev: BaseException | None, tb: object) -> None:
        if self.handle is not None:
            _close(self.handle, ev)


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
           network_action: str = "", image_action: str = "") -> Callable[[F], F]:
    """Decorate a step function (sync or async) to be a span named `name` (dockerd's
    name for the step). `name` may be a function of the call's arguments, for spans
    such as `runc start`. `action` / `network_action` / `image_action` also time a
    successful call into dockerd's engine_daemon_{container,network,image}_actions_seconds
    (also outside any API request: a restart policy's start counts)."""
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

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                if not state.on:
                    return await fn(*args, **kwargs)
                h = _open(span_name(args, kwargs), kind, None)
                t0 = time.perf_counter_ns() if timed is not None else 0
                err: BaseException | None = None
                try:
                    return await fn(*args, **kwargs)
                except BaseException as e:
                    err = e
                    raise
                finally:
                    if h is not None:
                        _close(h, err)
                    if timed is not None and err is None and state.action_sink is not None:
                        state.action_sink(timed[0], timed[1], (time.perf_counter_ns() - t0) / 1e9)

            return awrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature; mypy sees a _Wrapped

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not state.on:
                return fn(*args, **kwargs)
            h = _open(span_name(args, kwargs), kind, None)
            t0 = time.perf_counter_ns() if timed is not None else 0
            err: BaseException | None = None
            try:
                return fn(*args, **kwargs)
            except BaseException as e:
                err = e
                raise
            finally:
                if h is not None:
                    _close(h, err)
                if timed is not None and err is None and state.action_sink is not None:
                    state.action_sink(timed[0], timed[1], (time.perf_counter_ns() - t0) / 1e9)

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature; mypy sees a _Wrapped

    return deco


def touch(container_id: str) -> None:
    """Note that the current operation touched this container (the page links them)."""
    if not state.on:
        return
    cur = _current.get()
    if cur is not None and not cur[0].spans[0].end and container_id not in cur[0].containers:
        cur[0].containers.append(container_id)


def touches(fn: F) -> F:
    """Decorate a lookup returning a container (or what has one as `.container`, such
    as an exec): the current operation touched it."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = fn(*args, **kwargs)
        if state.on:
            touch(getattr(found, "container", found).ID)
        return found

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature; mypy sees a _Wrapped


def in_context(fn: F) -> F:
    """`fn` bound to the current context, for a thread of the I/O pool: the steps it
    runs become children of the step that sent it there."""
    if not state.on or _current.get() is None:
        return fn
    ctx = contextvars.copy_context()
    return functools.partial(ctx.run, fn)  # type: ignore[return-value]  # ctx.run(fn, ...) calls fn: the same signature


def current_operation() -> Operation | None:
    cur = _current.get()
    return cur[0] if cur is not None else None
