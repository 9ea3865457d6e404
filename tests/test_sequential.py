"""Issue 15: sequential administration — prompts hold the earlier answers, resume rebuilds the chain bit
for bit on the embedded model, and the item-order ablation really changes prompts and answers.

Issue 28: what the prompts are made of does not depend on the model (the runner builds them from the stored
answers): that runs on the synthetic backend. The embedded model runs one small sequential study once per
module on a backend of its own (2 personas x 4 items, 8 queries: was 8 questionnaires x 6 items, 48 queries,
and every test its own run), for the prefix cache's token count and as the uninterrupted run that the resumed
one must equal; the item-order test runs its two reduced presets on one persona x 3 items without the baseline
(6 queries, was 108)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from valuescope.analysis.metrics.robustness import item_order_correlation
from valuescope.analysis.tables import load_run
from valuescope.backends.base import create_backend
from valuescope.core.types import LetterScores
from valuescope.design.prompts import answer_turn, chosen_letter
from valuescope.execution.runner import run_study
from valuescope.store.sqlite import Store
from valuescope.study.presets import adapt, load_preset
from valuescope.study.spec import study_from_dict

ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY", "COMPASSION"]


class Recording:
    """A backend shared beyond one run, recording every prompt, never closed by the runner."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.requests = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def score(self, requests):
        self.requests.extend(requests)
        return self.backend.score(requests)

    def close(self) -> None:
        pass


def _study(tmp_path, name="seq", items=ITEMS, **extra):
    data = {"name": name, "output": str(tmp_path / name), "report": False, "administration": "sequential",
            "option_order": "balanced", "instruments": [{"name": "mfq30", "items": list(items)}],
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]}, **extra}
    return study_from_dict(data)


def _stored(study, run_id):
    with Store(study.output) as store:
        return {r["key"]: r for r in store.responses(run_id)}


def test_sequential_prompts_hold_the_earlier_items_and_their_answers(tmp_path):
    """On the synthetic backend (issue 28: was the embedded model; the prompts are the runner's, built from
    the stored answers, whatever model gave them): 2 personas + the baseline under 6 option orders."""
    study = _study(tmp_path)
    rec = Recording(create_backend("synthetic", name="s"))
    (res,) = run_study(study, backend_factory=lambda _m: rec)
    # (2 personas + the baseline under 6 orders) questionnaires x 6 items, each asked once
    assert res.planned == res.new == (2 + 6) * 6 and res.failed == 0
    with Store(study.output) as store:  # in the order written = the order asked
        rows = [dict(r) for r in store.db.execute("SELECT * FROM responses WHERE run_id = ? ORDER BY rowid",
                                                  (res.run_id,))]
    assert len(rec.requests) == len(rows)
    chains: dict[tuple[str, str], list[tuple[dict, object]]] = {}
    for row, req in zip(rows, rec.requests, strict=True):
        chains.setdefault((row["persona_id"], row["option_order"]), []).append((row, req))
    assert len(chains) == 8
    for chain in chains.values():
        assert [row["position"] for row, _ in chain] == list(range(6))  # asked in order
        for i, (_row, req) in enumerate(chain):
            users = [m.content for m in req.messages if m.role == "user"]
            shown = [m.content for m in req.messages if m.role == "assistant"]
            # the earlier items' user turns, as they were asked, then this item's
            assert users[:-1] == [[m.content for m in r.messages if m.role == "user"][-1] for _, r in chain[:i]]
            # each followed by the letter its stored answer chose
            chosen = [answer_turn("Answer: (", chosen_letter(LetterScores(tuple(json.loads(r["probs"])), 0.0),
                                                             q.letters)) for r, q in chain[:i]]
            assert shown == chosen
            assert all(len(t) == len("Answer: (C)") for t in shown)
    # the chosen letters vary, so "the letter of its own answer" is not one constant turn
    assert len({m.content for r in rec.requests for m in r.messages if m.role == "assistant"}) > 1


SMALL = {"baseline": False, "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]}  # 2 questionnaires
SMALL_ITEMS = ITEMS[:4]  # issue 28: was 6 (2 x 6 = 12 queries, now 8)
SMALL_N = 2 * len(SMALL_ITEMS)


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    """The small sequential study on the embedded model, once per module, on a backend of its own: its cache
    starts empty, whatever other tests evaluated (1 thread: the answers and the count of evaluated tokens do
    not depend on it, and 2 spinning threads crawl on a loaded machine). Evaluated tokens are read right
    after the run, before any test uses the backend."""
    from valuescope.backends.llamacpp import LlamaCppBackend

    study = _study(tmp_path_factory.mktemp("seq"), "whole", items=SMALL_ITEMS, population=SMALL)
    backend = LlamaCppBackend(n_threads=1)
    try:
        rec = Recording(backend)
        (res,) = run_study(study, backend_factory=lambda _m: rec)
        yield {"backend": backend, "rec": rec, "res": res, "study": study,
               "evaluated": backend.stats["evaluated_tokens"]}
    finally:
        backend.close()


@pytest.mark.slow  # the embedded model: 8 sequential queries (module fixture)
def test_prefix_evaluates_each_chain_token_about_once(embedded_run):
    """The default ``prefix`` scheduler keeps a questionnaire's conversation, each earlier item
    included, in the cache: per query it evaluates the answer left in the conversation, its own turn
    and the answer prefix again, not the earlier turns (issue 20's sequential workload)."""
    r = embedded_run
    _count_chain_tokens(r["backend"], r["rec"], r["res"], r["evaluated"])


def _count_chain_tokens(backend, rec, res, evaluated) -> None:
    trie: dict = {}
    unique = again = 0
    for req in rec.requests:
        toks = backend.tokens(backend.render(req))
        node = trie
        for tok in toks:
            if tok not in node:
                node[tok] = {}
                unique += 1
            node = node[tok]
        if req.boundaries:  # the answer prefix, evaluated and dropped for each query
            again += len(toks) - backend.answer_start(req, toks)
        else:  # a chain's first item: its item is dropped with it and evaluated again with the next item
            again += len(toks) - backend.split_points(req, toks)[1]
    assert res.new == len(rec.requests) == SMALL_N
    # from an empty cache every distinct prefix token is evaluated at least once; beyond that, only what
    # each query drops again
    assert unique <= evaluated <= unique + again, (evaluated, unique, again)
    assert again < 0.25 * unique


@pytest.mark.slow  # the embedded model: the study again in 3 parts (8 queries)
def test_sequential_resume_gives_identical_answers(tmp_path, embedded_run):
    """Interrupted inside a questionnaire twice (after 3 answers: in the first; 3 more: in the second), the
    resumed chain is the uninterrupted one bit for bit. The same backend answered the uninterrupted run, so
    its cache holds that run's prompts here: the answers must not depend on it (tests/test_determinism.py)."""
    backend, a, whole = embedded_run["backend"], embedded_run["res"], embedded_run["study"]
    parts = _study(tmp_path, "parts", items=SMALL_ITEMS, population=SMALL)
    (b1,) = run_study(parts, backend_factory=lambda _m: Recording(backend), max_queries=3)
    assert b1.new == 3
    (b2,) = run_study(parts, backend_factory=lambda _m: Recording(backend), max_queries=3)
    assert b2.new == 3
    (b3,) = run_study(parts, backend_factory=lambda _m: Recording(backend))
    assert b1.new + b2.new + b3.new == a.new == a.planned == SMALL_N
    sa, sb = _stored(whole, a.run_id), _stored(parts, b3.run_id)
    keys = set(sa)
    assert keys == set(sb)  # same run id, same keys: the chain's keys do not depend on the interruption
    for k in keys:
        assert sa[k]["probs"] == sb[k]["probs"], k  # bit-identical (JSON of the floats)


def _reduced(tmp_path, name, n, baseline, items=ITEMS):
    study = adapt(load_preset(name), scale=0.05, output=str(tmp_path / name))
    wvs = study.population.sources[0].model_copy(update={"n": n, "seeds": [111]})
    return study.model_copy(update={
        "report": False, "population": study.population.model_copy(update={"sources": [wvs], "baseline": baseline}),
        "instruments": [study.instruments[0].model_copy(update={"items": list(items)})]})


def _preset_runs(tmp_path, backend, n, baseline, items=ITEMS):
    runs = {}
    for name in ("inertia", "inertia-item-order"):
        study = _reduced(tmp_path, name, n, baseline, items)
        rec = Recording(backend)
        (res,) = run_study(study, backend_factory=lambda _m, rec=rec: rec)
        with Store(study.output) as store:
            runs[name] = (rec, load_run(store, res.run_id, with_metrics=False))
    return runs


def _assert_conversations_shuffled(runs, questionnaires, n_items=6, shuffled=True):
    fixed_prompts = {tuple(m.content for m in r.messages) for r in runs["inertia"][0].requests}
    seq_prompts = [tuple(m.content for m in r.messages) for r in runs["inertia-item-order"][0].requests]
    assert len(seq_prompts) == len(fixed_prompts) == questionnaires * n_items
    # the ablation's prompts are conversations; only a questionnaire's first item can match a prompt of inertia
    assert sum(p in fixed_prompts for p in seq_prompts) <= questionnaires
    if shuffled:  # several questionnaires: shuffled per persona
        positions = runs["inertia-item-order"][1].responses.groupby("item_id")["position"].nunique()
        assert (positions > 1).any()


def test_item_order_preset_prompts_are_shuffled_conversations(tmp_path):
    """The presets' prompts at their reduced scale, baseline included (3 personas + the baseline under 6
    orders), on the synthetic backend: the prompts are the runner's, whatever model answers (issue 28)."""
    runs = _preset_runs(tmp_path, create_backend("synthetic", name="s"), 3, True)
    _assert_conversations_shuffled(runs, 3 + 6)


@pytest.mark.slow  # the embedded model: 2 x 3 queries
def test_item_order_preset_changes_prompts_and_correlation(tmp_path, embedded_backend):
    """On the embedded model the conversations change the answers: the per-item means of the personas
    correlate below 1 with inertia's (one persona x 3 items, no baseline: issue 28, was 3 + 6 questionnaires x
    6 items, then 2 personas; the baseline's prompts, 6-item questionnaires and the shuffle per persona are
    checked on the synthetic backend above)."""
    items = ITEMS[:3]  # a correlation of 3 per-item means can be below 1 (of 2 it is +-1)
    runs = _preset_runs(tmp_path, embedded_backend, 1, False, items)
    _assert_conversations_shuffled(runs, 1, len(items), shuffled=False)
    corr = item_order_correlation(runs["inertia"][1].responses, runs["inertia-item-order"][1].responses)
    r = corr[(corr["condition"] == "persona")]["r"].to_numpy(float)
    assert len(r) == 1 and np.isfinite(r).all() and (r < 1 - 1e-6).all()
