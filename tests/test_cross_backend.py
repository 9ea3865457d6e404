"""One study, three backends: the same MFQ-30 study runs unchanged but for its model block on the
embedded llama.cpp backend, the OpenAI-compatible backend against a real ``llama_cpp.server`` on
127.0.0.1 (completions route: ``path`` names the served GGUF), and the Hugging Face backend on the
same GGUF read through transformers. All three models sit in one study's ``models:`` list and write
to one store; the answers and headline metrics must agree.

Tolerances (measured on this study, 40 queries x 6 options):

- server vs embedded: both are llama.cpp on the same file with flash attention off; measured max
  |diff| 1.3e-5 per option, so the issue's bound of 0.05 holds with a wide margin.
- HF vs embedded: transformers dequantises the Q4_1 weights to float32, llama.cpp multiplies
  Q4_1 x Q8 blocks; the logits move by ~0.1. Measured max |diff| 0.042, mean 0.008, same argmax in
  every query (tests/test_backend_hf.py measured max 0.050 on PVQ prompts). Bounds: max 0.08,
  mean 0.02, argmax agreement >= 90%.
- headline metrics: server vs embedded measured <= 3e-6 (bound 0.002); HF vs embedded measured
  <= 0.0013 for inertia_soft (bound 0.005); steerability and position bias are undefined under this study's
  per-persona option orders (no like-for-like pair, no respondent under two orders): NaN with the same note.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SharedBackend

from valuescope.analysis.metrics import headline
from valuescope.analysis.tables import load_run
from valuescope.execution.runner import run_study
from valuescope.execution.session import make_backend
from valuescope.store.sqlite import Store
from valuescope.study.spec import study_from_dict

pytestmark = pytest.mark.slow

# two items per foundation, one from each MFQ-30 part (relevance, agreement)
ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY",
         "COMPASSION", "FAIRLY", "HISTORY", "KIDRESPECT", "HARMLESSDG"]
N_PERSONAS = 3
PLANNED = (N_PERSONAS + 1) * len(ITEMS)
PROBS = [f"p_{i}" for i in range(1, 7)]
SHAPE = ["condition", "persona_id", "context", "repeat", "instrument", "item_id", "part", "wording",
         "position", "option_order"]
HF_NEEDS = ("torch", "transformers", "gguf", "accelerate")


def study_dict(output: Path, models: list[dict]) -> dict:
    """The study; only ``models`` changes between backends."""
    return {
        "name": "xb",
        "output": str(output),
        "models": models,
        "instruments": [{"name": "mfq30", "items": ITEMS}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": N_PERSONAS, "seeds": [111]}]},
        "contexts": {"topics": ["none"]},
        "seed": 0,
        "option_order": "permute-persona",
        "forced_choice": True,
        "extraction": "logprobs",
        "layout": "shared-prefix",
        "report": False,
    }


def _embedded_gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python (the embedded backend) is not installed")
    from valuescope.backends.base import BackendError
    from valuescope.backends.llamacpp import embedded_model_path

    try:
        return embedded_model_path()
    except BackendError as exc:
        pytest.skip(f"the embedded model is not available: {exc}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_missing() -> str | None:
    for mod in ("llama_cpp.server", "uvicorn", "sse_starlette"):
        try:
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not importable (pip install 'llama-cpp-python[server]')"
        except ModuleNotFoundError:
            return f"{mod} is not importable (pip install 'llama-cpp-python[server]')"
    return None


def _hf_missing() -> str | None:
    missing = [m for m in HF_NEEDS if importlib.util.find_spec(m) is None]
    return f"the hf extra is not installed (missing: {', '.join(missing)})" if missing else None


@pytest.fixture(scope="module")
def xb_llama_server(request):
    """The session's real llama.cpp server (tests/conftest.py) as a base URL; None when it cannot run."""
    if _server_missing():
        return None
    base, _ = request.getfixturevalue("llama_server")
    return base


@pytest.fixture(scope="module")
def xb(tmp_path_factory, xb_llama_server, request):
    """Run the study once with all available backends in its ``models:`` list, into one store. The
    embedded and hf models are the session's (tests/conftest.py: each loaded once per test run); their
    answers do not depend on what they evaluated before (tests/test_determinism.py)."""
    gguf = str(_embedded_gguf())
    models = [{"name": "embedded", "backend": "llamacpp", "path": gguf}]
    shared = {"embedded": request.getfixturevalue("embedded_backend")}
    if xb_llama_server is not None:
        models.append({"name": "server", "backend": "openai", "base_url": xb_llama_server, "path": gguf,
                       "concurrency": 2})
    if _hf_missing() is None:
        models.append({"name": "hf", "backend": "hf", "path": gguf, "batch_size": 4})
        shared["hf"] = request.getfixturevalue("hf_embedded_backend")

    made = {}

    def factory(model):
        if model.name in shared:
            return SharedBackend(shared[model.name])
        made[model.name] = make_backend(model)
        return made[model.name]

    out = tmp_path_factory.mktemp("vsxb") / "results"
    study = study_from_dict(study_dict(out, models))
    results = {r.model: r for r in run_study(study, backend_factory=factory)}
    with Store(out) as store:
        runs = {r.model: load_run(store, r.run_id) for r in results.values()}
    return {"study": study, "out": out, "results": results, "runs": runs, "factory": factory, "made": made}


def _need(xb, model: str) -> None:
    if model not in xb["runs"]:
        pytest.skip(_server_missing() if model == "server" else _hf_missing())


def _aligned(xb, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(embedded, other) tidy tables, rows matched by query shape."""
    a = xb["runs"]["embedded"].responses.set_index(SHAPE).sort_index()
    b = xb["runs"][model].responses.set_index(SHAPE).sort_index()
    assert a.index.equals(b.index)
    return a, b


def test_every_backend_answers_every_planned_query(xb):
    for name, res in xb["results"].items():
        assert (res.planned, res.new, res.invalid, res.failed) == (PLANNED, PLANNED, 0, 0), name
        r = xb["runs"][name].responses
        assert len(r) == PLANNED and r["valid"].all() and (r["method"] == "logprobs").all()
        np.testing.assert_allclose(r[PROBS].sum(axis=1), 1.0, atol=1e-9)
        assert r["outside_mass"].between(0.0, 0.5).all()  # "Answer: (" makes letters likely


def test_runs_differ_only_in_their_model_block(xb):
    runs = xb["runs"]
    shapes = {name: set(map(tuple, t.responses[SHAPE].astype(str).to_numpy())) for name, t in runs.items()}
    first = shapes["embedded"]
    assert len(first) == PLANNED
    assert all(s == first for s in shapes.values())  # same planned queries, options permuted alike
    orders = runs["embedded"].responses.groupby("persona_id")["option_order"].nunique()
    assert (orders == 1).all() and runs["embedded"].responses["option_order"].nunique() > 1  # per persona
    keys = [set(t.responses["key"]) for t in runs.values()]
    assert sum(map(len, keys)) == len(set().union(*keys))  # a model's answers never mix with another's
    studies = []
    for t in runs.values():
        s = dict(t.info.study)
        assert [m["name"] for m in s.pop("models")] == [t.model]
        studies.append(s)
    assert all(s == studies[0] for s in studies)
    prompts = {name: t.info.example_prompt for name, t in runs.items()}
    assert len(set(prompts.values())) == 1, "every backend renders the same prompt through the GGUF template"


def test_server_letter_distributions_match_embedded(xb):
    _need(xb, "server")
    assert xb["made"]["server"].mode == "completions"  # ``path`` given: the GGUF's template, raw prompts
    a, b = _aligned(xb, "server")
    diff = np.abs(a[PROBS].to_numpy() - b[PROBS].to_numpy())
    assert diff.max() < 0.05  # the bound (measured 1.3e-5)
    assert diff.mean() < 0.005
    assert (a["argmax"].to_numpy() == b["argmax"].to_numpy()).mean() >= 0.9
    assert np.abs(a["outside_mass"].to_numpy() - b["outside_mass"].to_numpy()).max() < 0.01


def test_hf_letter_distributions_match_embedded(xb):
    _need(xb, "hf")
    a, b = _aligned(xb, "hf")
    diff = np.abs(a[PROBS].to_numpy() - b[PROBS].to_numpy())
    assert diff.max() < 0.08  # measured 0.042: float32 dequantised weights vs Q4_1 x Q8 kernels
    assert diff.mean() < 0.02  # measured 0.008
    assert (a["argmax"].to_numpy() == b["argmax"].to_numpy()).mean() >= 0.9  # measured 1.0
    assert np.abs(a["outside_mass"].to_numpy() - b["outside_mass"].to_numpy()).max() < 0.05


@pytest.mark.parametrize(("model", "tol_inertia"), [("server", 0.002), ("hf", 0.005)])
def test_headline_metrics_agree(xb, model, tol_inertia):
    _need(xb, model)
    cols = ["instrument", "context", "dimension"]
    a = headline(xb["runs"]["embedded"].metrics).set_index(cols).sort_index()
    b = headline(xb["runs"][model].metrics).set_index(cols).sort_index()
    assert a.index.equals(b.index)
    assert sorted(a.index.get_level_values("dimension")) == ["Authority", "Fairness", "Harm", "Ingroup", "Purity"]
    assert (a["n"] == N_PERSONAS * 2).all() and (b["n"] == a["n"]).all()  # personas x items per dimension
    assert a["inertia_soft"].notna().all() and b["inertia_soft"].notna().all()
    assert np.abs(a["inertia_soft"] - b["inertia_soft"]).max() < tol_inertia
    # options are permuted per persona and the baseline is asked under one order: steerability is compared
    # like for like only, so it is undefined here -- on every backend, with the same note
    for run in (xb["runs"]["embedded"].metrics, xb["runs"][model].metrics):
        steer = run[run["metric"] == "steerability_jsd_soft"]
        assert steer["value"].isna().all() and steer["note"].str.contains("like for like").all()
    # no respondent answers an item under two orders, so the position bias is not identified either: NaN on
    # every backend, with the same note
    pa, pb = (r.metrics.set_index("metric").loc["position_bias_soft"] for r in (xb["runs"]["embedded"],
                                                                                xb["runs"][model]))
    assert np.isnan(float(pa["value"])) and np.isnan(float(pb["value"])) and pa["note"] == pb["note"]
    assert "option_order: balanced" in str(pa["note"])


def test_one_model_per_output_dir_gives_the_same_run(xb, tmp_path):
    """The study with only the embedded model block, into its own directory: same run id, same answers
    (a run never depends on the other models of its study)."""
    study = study_from_dict(study_dict(tmp_path / "alone", [xb["study"].models[0].model_dump(mode="json")]))
    [res] = run_study(study, backend_factory=xb["factory"])
    assert res.run_id == xb["results"]["embedded"].run_id and res.new == PLANNED
    with Store(tmp_path / "alone") as store:
        alone = load_run(store, res.run_id, with_metrics=False).responses.set_index(SHAPE).sort_index()
    shared = xb["runs"]["embedded"].responses.set_index(SHAPE).sort_index()
    assert list(alone["key"]) == list(shared["key"])
    np.testing.assert_allclose(alone[PROBS].to_numpy(), shared[PROBS].to_numpy(), atol=1e-6)


def test_rerunning_the_three_model_study_resumes_with_nothing_new(xb):
    again = run_study(xb["study"], backend_factory=xb["factory"])
    assert [(r.model, r.already_done, r.new) for r in again] == [(m, PLANNED, 0) for m in xb["results"]]
