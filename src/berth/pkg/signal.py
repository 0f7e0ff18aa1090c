"""Signal names (moby/pkg/signal/signal.go, signal_linux.go)."""
from __future__ import annotations

import signal as _signal

SIGNAL_MAP: dict[str, int] = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1,
    "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27,
    "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15,
    "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12,
    "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25,
}
_RTMIN = int(_signal.SIGRTMIN)
_RTMAX = int(_signal.SIGRTMAX)
SIGNAL_MAP["RTMIN"] = _RTMIN
for _i in range(1, 16):
    SIGNAL_MAP[f"RTMIN+{_i}"] = _RTMIN + _i
for _i in range(14, 0, -1):
    SIGNAL_MAP[f"RTMAX-{_i}"] = _RTMAX - _i
SIGNAL_MAP["RTMAX"] = _RTMAX


def parse_signal(raw: str) -> int:
    """ParseSignal: a non-zero decimal number, or a name with or without `SIG`.

    Raises ValueError with dockerd's message `Invalid signal: <raw>`.
    """
    try:
        num = int(raw)
    except ValueError:
        pass
    else:
        if num == 0:
            raise ValueError(f"Invalid signal: {raw}")
        return num
    name = raw.upper()
    if name.startswith("SIG"):
        name = name[3:]
    sig = SIGNAL_MAP.get(name)
    if sig is None:
        raise ValueError(f"Invalid signal: {raw}")
    return sig
