"""Prefix-group routing over several servers of one model (rendezvous hashing).

Every query carries a prefix group (persona + context, :func:`valuescope.design.plan.prefix_group`). All
queries of a group go to the same server, so that server's prefix cache serves the whole group. The
server of a group is the live one with the highest ``sha256(url, group)``: stable across runs,
processes and machines (no ``hash()``), spread evenly, and when a server goes down only *its*
groups move, each to its next-highest server; the other groups stay where their cache is.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

from valuescope.backends.retry import Fatal


def _weight(url: str | None, group: str) -> bytes:
    return hashlib.sha256(f"{url}\x00{group}".encode()).digest()


class Router:
    """Which server answers a group; servers found down (nothing listens) are skipped from then on."""

    def __init__(self, urls: Sequence[str | None]) -> None:
        if not urls:
            raise ValueError("at least one server is needed")
        self.urls: list[str | None] = list(urls)
        self._down: dict[str | None, str] = {}  # url -> why
        self._lock = threading.Lock()
        self.sent: dict[str, int] = {str(u): 0 for u in self.urls}  # requests per server (stats)

    def ranking(self, group: str) -> list[str | None]:
        """All servers, best first, for ``group`` (dead or alive)."""
        return sorted(self.urls, key=lambda u: _weight(u, group), reverse=True)

    def pick(self, group: str) -> str | None:
        """The live server for ``group``; :class:`Fatal` when none is left."""
        with self._lock:
            for url in self.ranking(group):
                if url not in self._down:
                    self.sent[str(url)] += 1
                    return url
            reasons = "; ".join(self._down.values())
        if len(self.urls) == 1:
            raise Fatal(reasons)
        raise Fatal(f"none of the {len(self.urls)} servers can be reached: {reasons}")

    def mark_down(self, url: str | None, reason: str) -> None:
        with self._lock:
            self._down.setdefault(url, reason)

    @property
    def down(self) -> list[str]:
        with self._lock:
            return [str(u) for u in self._down]
