"""Regenerate docs/screenshot-report.png and docs/screenshot-show.png (the README's pictures).

    python3 docs/screenshots.py            # needs chromium on PATH (apt-get install chromium)

The demo study on the synthetic known-truth model (no download, a few seconds): its report at 1400 px wide
(the top of the page, 1400 x 2400, headless Chromium) and ``valuescope show RUN --effects`` at 80 columns,
rendered as an HTML page of monospaced text and captured the same way.
"""

from __future__ import annotations

import html
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
WIDTH_PX, HEIGHT_PX, COLUMNS = 1400, 2400, 80


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no chromium on PATH (apt-get install chromium)")


def shoot(page: Path, png: Path, width: int, height: int) -> None:
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=300)


def main() -> None:
    from rich.console import Console

    import valuescope.cli as cli
    import valuescope.cli.console as console
    from valuescope.execution.runner import run_study
    from valuescope.output.api import Run, write_report
    from valuescope.study import presets
    from valuescope.study.modelref import parse_model

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        study = presets.adapt(presets.load_preset("demo"), model=parse_model("synthetic"), output=str(out))
        (res,) = run_study(study)
        report = write_report([Run(out, res.run_id)], out / "report")
        shoot(report, DOCS / "screenshot-report.png", WIDTH_PX, HEIGHT_PX)

        buf = io.StringIO()
        console.out = Console(width=COLUMNS, file=buf, force_terminal=False)
        try:
            cli.app(["show", res.run_id, "--dir", str(out), "--effects"], standalone_mode=False)
        finally:
            console.out = Console()
        text = buf.getvalue()
        lines = text.count("\n") + 1
        page = Path(tmp) / "show.html"
        page.write_text("<!doctype html><meta charset='utf-8'><body style='margin:8px;background:#fff'>"
                        "<pre style='font:13px/1.25 DejaVu Sans Mono,monospace;margin:0'>"
                        f"$ valuescope show {html.escape(res.run_id)} --effects\n{html.escape(text)}</pre>",
                        encoding="utf-8")
        shoot(page, DOCS / "screenshot-show.png", 8 * COLUMNS + 40, 17 * (lines + 2) + 16)
    print(DOCS / "screenshot-report.png", DOCS / "screenshot-show.png")


if __name__ == "__main__":
    main()
