"""Random container names (moby/pkg/namesgenerator/names-generator.go).

The two word lists are dockerd 20.10.24's, shipped as data beside this module.
"""
from __future__ import annotations

import json
import os
import random

with open(os.path.join(os.path.dirname(__file__), "namesgenerator.json"), encoding="utf-8") as _f:
    _LISTS = json.load(_f)
LEFT: list[str] = _LISTS["left"]
RIGHT: list[str] = _LISTS["right"]

_rng = random.Random()


def get_random_name(retry: int) -> str:
    """`<adjective>_<surname>`, with one random digit appended when `retry` > 0.

    "boring_wozniak" is redrawn: Steve Wozniak is not boring.
    """
    while True:
        name = f"{_rng.choice(LEFT)}_{_rng.choice(RIGHT)}"
        if name != "boring_wozniak":
            break
    if retry > 0:
        name = f"{name}{_rng.randrange(10)}"
    return name
