"""Open a local HTML file in headless Chromium and report what a reader's browser would see.

Uses the Chrome DevTools Protocol over a websocket (PyPI ``websocket-client``): console errors,
uncaught exceptions, log errors and failed loads are collected as events (no log scraping), every
network request is recorded (a self-contained page makes none but file:/data:), images are checked
to have decoded, and a PNG screenshot is taken.

    from browser import find_chromium, open_page
    page = open_page(Path("report.html"), Path("shot.png"))
    assert not page.errors
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
]
CANDIDATES = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "headless_shell",
]


def find_chromium() -> str | None:
    """The Chromium binary: $VALUESCOPE_CHROMIUM, else the first candidate name on PATH."""
    env = os.environ.get("VALUESCOPE_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    images: int = 0
    broken_images: int = 0
    title: str = ""
    screenshot: Path | None = None


class _CDP:
    def __init__(self, ws_url: str, timeout: float) -> None:
        import websocket  # PyPI: websocket-client

        self.timeout = timeout
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.settimeout(self.timeout)
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(e["method"] == method for e in self.events):
                return
            self.ws.settimeout(max(0.05, end - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except Exception:  # noqa: BLE001 - websocket timeout: check the clock again
                continue
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"no {method} within {timeout}s")

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ws.settimeout(max(0.05, end - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except Exception:  # noqa: BLE001 - nothing more within the window
                return
            if "method" in msg:
                self.events.append(msg)

    def close(self) -> None:
        self.ws.close()


def _wait_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    port_file = profile / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port_file.exists():
            lines = port_file.read_text().split()
            if lines and lines[0].isdigit():
                return int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited early with code {proc.returncode}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not write DevToolsActivePort")


def _errors(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    errors, requests = [], []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(
                "console."
                + p["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
            )
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append("log: " + str(p["entry"].get("text")) + " " + str(p["entry"].get("url", "")))
        elif m == "Network.loadingFailed":
            errors.append("load failed: " + str(p.get("errorText")))
        elif m == "Network.requestWillBeSent":
            requests.append(str(p.get("request", {}).get("url", "")))
    return errors, requests


def open_page(
    html: Path,
    screenshot: Path | None = None,
    width: int = 1280,
    height: int = 2000,
    full_page: bool = False,
    timeout: float = 60.0,
) -> PageReport:
    """Load ``html`` in headless Chromium; collect errors and requests; optionally save a PNG screenshot
    (the first ``width`` x ``height`` CSS pixels, or the whole page with ``full_page``)."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="vs-chromium-") as tmp:
        profile = Path(tmp)
        cmd = [
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            port = _wait_port(profile, proc, timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as resp:
                targets = json.load(resp)
            page = next(t for t in targets if t.get("type") == "page")
            cdp = _CDP(page["webSocketDebuggerUrl"], timeout)
            try:
                for domain in ("Runtime", "Log", "Network", "Page"):
                    cdp.call(f"{domain}.enable")
                cdp.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                cdp.call("Page.navigate", url=html.resolve().as_uri())
                cdp.wait_event("Page.loadEventFired", timeout)
                cdp.drain(0.5)
                probe = cdp.call(
                    "Runtime.evaluate",
                    returnByValue=True,
                    expression=(
                        "JSON.stringify({title: document.title, n: document.images.length, "
                        "broken: Array.from(document.images)"
                        ".filter(i => !i.complete || i.naturalWidth === 0).length})"
                    ),
                )
                info = json.loads(probe["result"]["value"])
                report = PageReport(title=info["title"], images=info["n"], broken_images=info["broken"])
                if screenshot is not None:
                    params: dict[str, Any] = {"format": "png"}
                    if full_page:
                        size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
                        params.update(
                            captureBeyondViewport=True,
                            clip={
                                "x": 0,
                                "y": 0,
                                "width": width,
                                "height": min(size["height"], 16000),
                                "scale": 1,
                            },
                        )
                    shot = cdp.call("Page.captureScreenshot", **params)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                    report.screenshot = screenshot
                cdp.drain(0.2)
                report.errors, report.requests = _errors(cdp.events)
                return report
            finally:
                cdp.close()
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def distinct_colours(png: Path) -> int:
    """Number of distinct RGB colours in a PNG (read with matplotlib)."""
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(png)
    rgb = (np.asarray(img)[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    return len(np.unique(rgb, axis=0))
