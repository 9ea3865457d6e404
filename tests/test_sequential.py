"""Issue 15: sequential administration on the embedded model — prompts hold the earlier answers,
resume rebuilds the chain bit for bit, and the item-order ablation really changes prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from valuescope.analysis.metrics.robustness import item_order_correlation
from valuescope.analysis.tables import load_run
from valuescope.core.types import LetterScores
from valuescope.design.prompts import answer_turn, chosen_letter
from valuescope.execution.runner import run_study
from valuescope.store.sqlite import Store
from valuescope.study.presets import adapt, load_preset
from valuescope.study.spec import study_from_dict

pytestmark = pytest.mark.slow  # the embedded model: letter answers left in the prompt, its prefix cache

ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY", "COMPASSION"]


class Recording:
    """The session's embedded backend, recording every prompt, never closed by the runner."""

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


def _study(tmp_path, name="seq", **extra):
    data = {"name": name, "output": str(tmp_path / name), "report": False, "administration": "sequential",
            "option_order": "balanced", "instruments": [{"name": "mfq30", "items": ITEMS}],
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]}, **extra}
    return study_from_dict(data)


def _stored(study, run_id):
    with Store(study.output) as store:
        return {r["key"]: r for r in store.responses(run_id)}


def test_sequential_prompts_hold_the_earlier_items_and_their_answers(tmp_path, embedded_backend):
    study = _study(tmp_path)
    rec = Recording(embedded_backend)
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


def test_prefix_evaluates_each_chain_token_about_once(tmp_path):
    """The default ``prefix`` scheduler keeps a questionnaire's conversation, each earlier item
    included, in the cache: per query it evaluates the answer left in the conversation, its own turn
    and the answer prefix again, not the earlier turns (issue 20's sequential workload)."""
    from valuescope.backends.llamacpp import LlamaCppBackend

    study = _study(tmp_path, "count", population={"baseline": False,
                                                  "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]})
    # a backend of its own: its cache starts empty, whatever other tests evaluated (1 thread: the count of
    # evaluated tokens does not depend on it, and 2 spinning threads crawl on a loaded machine)
    backend = LlamaCppBackend(n_threads=1)
    try:
        rec = Recording(backend)
        (res,) = run_study(study, backend_factory=lambda _m: rec)
        evaluated = backend.stats["evaluated_tokens"]
        _count_chain_tokens(backend, rec, res, evaluated)
    finally:
        backend.close()


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
    assert res.new == len(rec.requests) == 12
    # from an empty cache every distinct prefix token is evaluated at least once; beyond that, only what
    # each query drops again
    assert unique <= evaluated <= unique + again, (evaluated, unique, again)
    assert again < 0.25 * unique


def test_sequential_resume_gives_identical_answers(tmp_path, embedded_backend):
    whole = _study(tmp_path, "whole")
    (a,) = run_study(whole, backend_factory=lambda _m: Recording(embedded_backend))
    parts = _study(tmp_path, "parts")
    (b1,) = run_study(parts, backend_factory=lambda _m: Recording(embedded_backend), max_queries=11)
    assert b1.new == 11
    (b2,) = run_study(parts, backend_factory=lambda _m: Recording(embedded_backend), max_queries=17)
    (b3,) = run_study(parts, backend_factory=lambda _m: Recording(embedded_backend))
    assert b1.new + b2.new + b3.new == a.new == a.planned
    sa, sb = _stored(whole, a.run_id), _stored(parts, b3.run_id)
    keys = set(sa)
    assert keys == set(sb)  # same run id, same keys: the chain's keys do not depend on the interruption
    for k in keys:
        assert sa[k]["probs"] == sb[k]["probs"], k  # bit-identical (JSON of the floats)


def test_item_order_preset_changes_prompts_and_correlation(tmp_path, embedded_backend):
    def reduced(name):
        study = adapt(load_preset(name), scale=0.05, output=str(tmp_path / name))
        wvs = study.population.sources[0].model_copy(update={"n": 3, "seeds": [111]})
        return study.model_copy(update={
            "report": False, "population": study.population.model_copy(update={"sources": [wvs]}),
            "instruments": [study.instruments[0].model_copy(update={"items": ITEMS})]})

    runs = {}
    for name in ("inertia", "inertia-item-order"):
        study = reduced(name)
        rec = Recording(embedded_backend)
        (res,) = run_study(study, backend_factory=lambda _m, rec=rec: rec)
        with Store(study.output) as store:
            runs[name] = (rec, load_run(store, res.run_id, with_metrics=False))
    fixed_prompts = {tuple(m.content for m in r.messages) for r in runs["inertia"][0].requests}
    seq_prompts = [tuple(m.content for m in r.messages) for r in runs["inertia-item-order"][0].requests]
    assert len(seq_prompts) == len(fixed_prompts) == (3 + 6) * 6
    # the ablation's prompts are conversations; only a questionnaire's first item can match a prompt of inertia
    assert sum(p in fixed_prompts for p in seq_prompts) <= (3 + 6)
    positions = runs["inertia-item-order"][1].responses.groupby("item_id")["position"].nunique()
    assert (positions > 1).any()  # shuffled per persona
    corr = item_order_correlation(runs["inertia"][1].responses, runs["inertia-item-order"][1].responses)
    r = corr[(corr["condition"] == "persona")]["r"].to_numpy(float)
    assert np.isfinite(r).all() and (r < 1 - 1e-6).all()
