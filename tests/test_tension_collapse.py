"""Issue 25 item 9: the collapse intervals of evenhandedness under a persona-blind synthetic model.

The tension-evenhandedness preset's design (50 WVS personas with an identity + baseline x 12 dilemmas,
balanced option orders, no conversation), a model that ignores the persona with answer noise per query and
per-item offsets: ``collapse`` and ``collapse_directed`` are 0 in truth, and their CIs exclude 0 in about 5%
of replications (measured over 200: docs/metrics.md, "Evenhandedness collapse"). The test runs 100 (issue 28:
time); its ceiling was 0.07 over 200, the nominal 0.05 plus 1.30 binomial SDs (sqrt(0.05 * 0.95 / 200) = 0.0154),
and is the same 1.30 SDs over 100 (0.0218): 0.078, i.e. at most 7 misses in 100.
"""

from __future__ import annotations

import math

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
    reps = 100
    for r in range(reps):
        m = evenhandedness_rows(sim.responses(spec.model_copy(update={"seed": 1000 + r})), sim.instruments,
                                n_boot=100, seed=r)
        m = m[m.metric.isin(["collapse", "collapse_directed"])]
        for row in m.itertuples():
            miss.setdefault(f"{row.metric}:{row.dimension}", []).append(not row.ci_low <= 0.0 <= row.ci_high)
    assert {"collapse:liberal", "collapse:conservative", "collapse:all", "collapse_directed:liberal",
            "collapse_directed:conservative"} <= set(miss)
    assert all(len(v) == reps for v in miss.values())
    rates = {k: float(np.mean(v)) for k, v in miss.items()}
    ceiling = 0.05 + 1.30 * math.sqrt(0.05 * 0.95 / reps)  # module docstring
    assert all(rate <= ceiling for rate in rates.values()), rates
