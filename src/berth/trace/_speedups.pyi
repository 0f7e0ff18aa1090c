from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

def count_spans(rows: list[Any], series: list[list[Any]], bounds: tuple[int, ...], /) -> None: ...

def freeze(spans: list[Any], width: int, /) -> Any: ...

class Step:
    """A synchronous step function recorded as a span (see berth.trace.core.traced)."""

    span_name: str

    def __init__(self, fn: Callable[..., Any], name: str, kind: str, leaf: bool, current: ContextVar[Any]) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
