"""Bounded retries with exponential backoff, full jitter, and the server's Retry-After honoured.

The HTTP backends switch their client's own retries off and use this, so the policy is the same
for every server and can be tested against a real local server that answers 429.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from valuescope.backends.base import BackendError

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After is capped, not obeyed blindly


@dataclass(frozen=True)
class Verdict:
    """How one failure should be handled: retry it (after ``retry_after`` s if the server said)."""

    retry: bool
    retry_after: float | None = None


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP date), or None."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def backoff_delay(attempt: int, rng: random.Random, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt))."""
    return rng.uniform(0.0, min(cap, base * 2.0**attempt))


def call_with_retries(
    fn: Callable[[], T],
    classify: Callable[[Exception], Verdict],
    *,
    max_retries: int,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    base: float = 0.5,
) -> T:
    """Call ``fn`` at most ``max_retries + 1`` times; re-raise the last failure.

    ``classify`` says whether a failure is worth retrying and whether the server asked for a
    wait (Retry-After); without one the wait is :func:`backoff_delay`."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classify decides what is retried
            verdict = classify(exc)
            if not verdict.retry or attempt >= max_retries:
                raise
            if verdict.retry_after is not None:
                wait = min(verdict.retry_after, MAX_RETRY_AFTER)
            else:
                wait = backoff_delay(attempt, rng, base=base)
            sleep(wait)
            attempt += 1


class Fatal(Exception):
    """Every query would fail the same way (server down, key refused): stop the whole batch."""


def run_concurrently(fn: Callable[[Any], T], items: Sequence[Any], concurrency: int) -> list[T]:
    """``[fn(x) for x in items]`` on at most ``concurrency`` threads, in order; a :class:`Fatal`
    from any item cancels the rest and becomes one :class:`BackendError`."""
    if not items:
        return []
    try:
        if concurrency == 1 or len(items) == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
            futures = [pool.submit(fn, x) for x in items]
            try:
                return [f.result() for f in futures]
            except Fatal:
                for f in futures:
                    f.cancel()
                raise
    except Fatal as exc:
        raise BackendError(str(exc)) from None
