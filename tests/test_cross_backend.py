"""One study, three backends: the same MFQ-30 study runs unchanged but for its model block on the
embedded llama.cpp backend, the OpenAI-compatible backend against a real ``llama_cpp.server`` on
127.0.0.1 (completions route: ``path`` names the served GGUF), and the Hugging Face backend on the
same GGUF read through transformers. All three models sit in one study's ``models:`` list and write
to one store; the answers and headline metrics must agree.

Issue 28: 15 queries (2 personas and the baseline x one item per foundation, from both MFQ-30 parts: three
option orders) instead of 40 (3 personas x two items per foundation); its queries are a subset of the old
study's. That a run does not depend on the other models of its study runs on the synthetic backend.

Tolerances of the answers (measured on the 40-query study, 6 options; on this one, 2026-12-05: server max
1.5e-5, mean 5.6e-6; HF max 0.033, mean 0.0074, argmax agreement 1.0):

- server vs embedded: both are llama.cpp on the same file with flash attention off; measured max
  |diff| 1.3e-5 per option, so the issue's bound of 0.05 holds with a wide margin.
- HF vs embedded: transformers dequantises the Q4_1 weights to float32, llama.cpp multiplies
  Q4_1 x Q8 blocks; the logits move by ~0.1. Measured max |diff| 0.042, mean 0.008, same argmax in
  every query (tests/test_backend_hf.py measured max 0.050 on PVQ prompts). Bounds: max 0.08,
  mean 0.02, argmax agreement >= 90%.

The headline inertia_soft of a dimension is ``I(p) = 1 - H(p)/log2 K`` of the pooled distribution ``p`` (the
mean of the persona answers), jackknife-corrected over personas. Its bound is derived from the answers'
differences at this study's n, not measured: H is concave, so ``|H(q) - H(p)| <= max(|grad H(p) . (q - p)|,
|grad H(q) . (q - p)|)``, and since the differences sum to 0 over the options, ``|grad H(x) . d| <= (max_j log2
x_j - min_j log2 x_j) / 2 * ||d||_1`` with ``||q - p||_1 <= mean_i ||q_i - p_i||_1`` (the answers' mean L1
difference); the jackknife ``n I(p) - (n - 1) mean_i I(p_-i)`` adds the same bound of each leave-one-out pool,
weighted alike. The old fixed bound (0.005, measured 0.0013 with n = 6) does not hold at n = 2: the 15-query
study measured 0.0081 (Ingroup). Steerability and position
bias are undefined under this study's per-persona option orders (no like-for-like pair, no respondent under two
orders): NaN with the same note.
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

# one item per foundation, from both MFQ-30 parts (3 relevance, 2 agreement)
ITEMS = ["EMOTIONALLY", "TREATED", "HISTORY", "KIDRESPECT", "DECENCY"]
N_PERSONAS = 2  # and the baseline: three option orders
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


@pytest.mark.slow  # the xb fixture: three real backends (the embedded model, a llama.cpp server, transformers)
def test_every_backend_answers_every_planned_query(xb):
    for name, res in xb["results"].items():
        assert (res.planned, res.new, res.invalid, res.failed) == (PLANNED, PLANNED, 0, 0), name
        r = xb["runs"][name].responses
        assert len(r) == PLANNED and r["valid"].all() and (r["method"] == "logprobs").all()
        np.testing.assert_allclose(r[PROBS].sum(axis=1), 1.0, atol=1e-9)
        assert r["outside_mass"].between(0.0, 0.5).all()  # "Answer: (" makes letters likely


@pytest.mark.slow
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


@pytest.mark.slow
def test_server_letter_distributions_match_embedded(xb):
    _need(xb, "server")
    assert xb["made"]["server"].mode == "completions"  # ``path`` given: the GGUF's template, raw prompts
    a, b = _aligned(xb, "server")
    diff = np.abs(a[PROBS].to_numpy() - b[PROBS].to_numpy())
    assert diff.max() < 0.05  # the bound (measured 1.3e-5)
    assert diff.mean() < 0.005
    assert (a["argmax"].to_numpy() == b["argmax"].to_numpy()).mean() >= 0.9
    assert np.abs(a["outside_mass"].to_numpy() - b["outside_mass"].to_numpy()).max() < 0.01


@pytest.mark.slow
def test_hf_letter_distributions_match_embedded(xb):
    _need(xb, "hf")
    a, b = _aligned(xb, "hf")
    diff = np.abs(a[PROBS].to_numpy() - b[PROBS].to_numpy())
    assert diff.max() < 0.08  # measured 0.042: float32 dequantised weights vs Q4_1 x Q8 kernels
    assert diff.mean() < 0.02  # measured 0.008
    assert (a["argmax"].to_numpy() == b["argmax"].to_numpy()).mean() >= 0.9  # measured 1.0
    assert np.abs(a["outside_mass"].to_numpy() - b["outside_mass"].to_numpy()).max() < 0.05


def _inertia(q: np.ndarray) -> float:
    return 1 + float(np.sum(q * np.log2(q))) / np.log2(len(q))


def _inertia_bound(a: pd.DataFrame, b: pd.DataFrame, dimension: str) -> tuple[float, float, float]:
    """(inertia_soft of a, of b, the bound on their difference) for one dimension, from the aligned tidy tables.

    The metric is the jackknife-corrected inertia over personas: ``n I(p) - (n - 1) mean_i I(p_-i)`` clipped to
    [0, 1] (``p``: the persona answers pooled, ``p_-i``: without persona i; metrics.dimension_metrics). Each
    ``I`` moves by at most the concavity bound of the module's docstring for its own pool, and the clip does
    not add to a difference, so the bound is ``n b(p) + (n - 1)/n sum_i b(p_-i)``."""
    rows = (a.index.get_level_values("condition") == "persona") & (a["dimension"] == dimension).to_numpy()
    units = a.index.get_level_values("persona_id")[rows]
    pa, pb = (t.loc[rows, PROBS].to_numpy(float) for t in (a, b))
    pa, pb = pa / pa.sum(axis=1, keepdims=True), pb / pb.sum(axis=1, keepdims=True)

    def pooled(keep: np.ndarray) -> tuple[float, float, float]:
        qa, qb = pa[keep].mean(axis=0), pb[keep].mean(axis=0)
        spread = max(np.ptp(np.log2(qa)), np.ptp(np.log2(qb)))  # bits
        l1 = float(np.abs(pb[keep] - pa[keep]).sum(axis=1).mean())  # the answers' mean L1 difference
        return _inertia(qa), _inertia(qb), spread / 2 * l1 / np.log2(len(PROBS))

    n = len(set(units))
    ia, ib, bound = pooled(np.ones(len(units), bool))
    loo = [pooled(units != u) for u in sorted(set(units))]
    corrected = [float(np.clip(n * v - (n - 1) * np.mean([x[k] for x in loo]), 0, 1)) for k, v in ((0, ia), (1, ib))]
    return corrected[0], corrected[1], n * bound + (n - 1) / n * sum(x[2] for x in loo)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["server", "hf"])
def test_headline_metrics_agree(xb, model):
    _need(xb, model)
    cols = ["instrument", "context", "dimension"]
    a = headline(xb["runs"]["embedded"].metrics).set_index(cols).sort_index()
    b = headline(xb["runs"][model].metrics).set_index(cols).sort_index()
    assert a.index.equals(b.index)
    assert sorted(a.index.get_level_values("dimension")) == ["Authority", "Fairness", "Harm", "Ingroup", "Purity"]
    assert (a["n"] == N_PERSONAS).all() and (b["n"] == a["n"]).all()  # personas x items per dimension (1)
    ra, rb = _aligned(xb, model)
    for (_, _, dim), ia, ib in zip(a.index, a["inertia_soft"], b["inertia_soft"], strict=True):
        want_a, want_b, bound = _inertia_bound(ra, rb, dim)
        # each headline is the jackknifed inertia of its own run's answers (recomputed here from the stored rows)
        assert ia == pytest.approx(want_a, abs=1e-9) and ib == pytest.approx(want_b, abs=1e-9), dim
        # and the two differ by no more than their answers' differences allow (derived: module docstring)
        assert abs(ia - ib) <= bound + 1e-12, (dim, ia - ib, bound)
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


def test_one_model_per_output_dir_gives_the_same_run(tmp_path):
    """A model's run in a study of two models equals the study with its model block alone, in its own directory:
    same run id, same keys, same answers (a run never depends on the other models of its study). On the
    synthetic backend (issue 28: was the embedded model against the three-backend store, 30 s): which run a
    model's answers belong to is the runner's, whatever model answers."""
    models = [{"name": name, "backend": "synthetic", "synthetic": {"seed": seed, "query_sd": 0.5}}
              for name, seed in (("truth", 1), ("other", 2))]
    both = {r.model: r for r in run_study(study_from_dict(study_dict(tmp_path / "both", models)))}
    [alone] = run_study(study_from_dict(study_dict(tmp_path / "alone", models[:1])))
    assert both["truth"].run_id == alone.run_id != both["other"].run_id
    assert alone.new == both["truth"].new == both["other"].new == PLANNED
    with Store(tmp_path / "both") as store:
        shared = load_run(store, alone.run_id, with_metrics=False).responses.set_index(SHAPE).sort_index()
        other = load_run(store, both["other"].run_id, with_metrics=False).responses.set_index(SHAPE).sort_index()
    with Store(tmp_path / "alone") as store:
        own = load_run(store, alone.run_id, with_metrics=False).responses.set_index(SHAPE).sort_index()
    assert list(own["key"]) == list(shared["key"]) and not set(own["key"]) & set(other["key"])
    assert own[PROBS].to_numpy().tolist() == shared[PROBS].to_numpy().tolist()  # bit for bit
    assert not np.allclose(other[PROBS].to_numpy(), shared[PROBS].to_numpy())  # the other model answers otherwise


@pytest.mark.slow
def test_rerunning_the_three_model_study_resumes_with_nothing_new(xb):
    again = run_study(xb["study"], backend_factory=xb["factory"])
    assert [(r.model, r.already_done, r.new) for r in again] == [(m, PLANNED, 0) for m in xb["results"]]
