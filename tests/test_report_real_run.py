"""Issue 7 on a real run: two models through the CLI, a persona whose text carries markup, the report
rendered in headless Chromium. Issue 28: the second model is the synthetic one (was a second embedded model:
a second load and 30 more real queries); the page still compares two models, one of them real."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from browser import distinct_colours, find_chromium, open_page

SCRIPT = "<script>alert('persona')</script>"


pytestmark = pytest.mark.slow  # an embedded-model run through a process and a browser


@pytest.fixture(scope="module")
def two_model_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-report")
    personas = tmp / "personas.txt"
    personas.write_text(f"You are a lighthouse keeper who writes {SCRIPT} in every letter.\n"
                        "You are a retired judge from Lisbon.\n")
    study = {
        "name": "realreport",
        "output": str(tmp / "out"),
        "models": [{"name": "smol-a", "backend": "llamacpp"},
                   {"name": "truth-b", "backend": "synthetic", "synthetic": {"query_sd": 0.5}}],
        # the smallest study whose report still compares the two models in every figure it draws (11 figures
        # on this study's shape, synthetic check): one item per MFQ dimension and the catch item, 4 personas
        # and the baseline, one repeat (30 queries per model; was 8 items x 6 respondents x 2 repeats = 96)
        "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "RESPECT", "DECENCY", "LOVECOUNTRY",
                                                    "MATH"]}],
        "population": {"baseline": True, "sources": [{"kind": "file", "path": str(personas)},
                                                     {"kind": "wvs", "n": 2, "seeds": [111]}]},
        "repeats": 1,
        "option_order": "permute-persona",
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    res = subprocess.run([sys.executable, "-m", "valuescope", "run", str(path), "-q"], capture_output=True, text=True,
                         timeout=1800)  # a deadline for a hung run: two model loads beside other tests take minutes
    assert res.returncode == 0, res.stderr
    html = next((tmp / "out" / "report").glob("*.html"))
    assert f"report: {html}" in res.stdout.replace("\n", "")
    return html


def test_report_of_a_real_run_compares_both_models(two_model_report):
    text = two_model_report.read_text()
    assert "smol-a" in text and "truth-b" in text
    assert "<script" not in text.lower()
    assert "&lt;script&gt;" in text  # the persona's markup is shown as text
    assert re.search(r"Answer: \(", text)  # the exact example prompt is there
    figures = list((two_model_report.parent / f"{two_model_report.stem}-figures").glob("*.png"))
    assert len(figures) >= 6


def test_report_of_a_real_run_in_chromium(two_model_report, tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    n_img = two_model_report.read_text(encoding="utf-8").count("<img ")
    page = open_page(two_model_report, tmp_path / "shot.png", 1280, 2400, full_page=False)
    assert page.errors == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests), [u[:80] for u in page.requests]
    # every figure of the page decoded (test_report's synthetic page is no longer opened in Chromium: one browser
    # start per test run, on the page of a real run)
    assert page.images == n_img >= 6 and page.broken_images == 0
    assert page.title.startswith("valuescope report")
    assert distinct_colours(tmp_path / "shot.png") > 200
