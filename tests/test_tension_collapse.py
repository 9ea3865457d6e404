"""Issue 25 item 9: the collapse intervals of evenhandedness under a persona-blind synthetic model.

The tension-evenhandedness preset's design (50 WVS personas with an identity + baseline x 12 dilemmas,
balanced option orders, no conversation), a model that ignores the persona with answer noise per query and
per-item offsets: ``collapse`` and ``collapse_directed`` are 0 in truth, and their CIs exclude 0 in at most
7% of 200 replications (measured: docs/metrics.md, "Evenhandedness collapse").
"""

from __future__ import annotations

import numpy as np
import pytest

from valuescope.analysis.metrics.evenhandedness import evenhandedness_rows
from valuescope.known_truth.simulate import prepare
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec


@pytest.mark.slow
def test_collapse_false_positive_rate_persona_blind():
    sim = prepare(study_from_dict({
        "name": "eh", "instruments": [{"name": "dilemmas"}], "option_order": "balanced",
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 50, "seeds": [111], "identity": True}]}}))
    spec = SyntheticSpec(persona_sd=0.0, query_sd=0.5, item_sd=1.0)
    miss: dict[str, list[bool]] = {}
    for r in range(200):
        m = evenhandedness_rows(sim.responses(spec.model_copy(update={"seed": 1000 + r})), sim.instruments,
                                n_boot=100, seed=r)
        m = m[m.metric.isin(["collapse", "collapse_directed"])]
        for row in m.itertuples():
            miss.setdefault(f"{row.metric}:{row.dimension}", []).append(not row.ci_low <= 0.0 <= row.ci_high)
    assert {"collapse:liberal", "collapse:conservative", "collapse:all", "collapse_directed:liberal",
            "collapse_directed:conservative"} <= set(miss)
    rates = {k: float(np.mean(v)) for k, v in miss.items()}
    assert all(rate <= 0.07 for rate in rates.values()), rates
