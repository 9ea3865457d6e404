"""The distribution metrics read a table's columns once (metrics.answer_rows) and cut them by row index: every
slice must give what the slice's own DataFrame gives, bit for bit (the per-slice reading they replaced)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuescope.analysis.metrics.answer_rows import QUERY_COLUMNS, Answers, strata
from valuescope.analysis.metrics.inertia import row_distributions, sums_by_unit, unit_sums
from valuescope.analysis.metrics.steerability import _group_deviations, match_strata
from valuescope.core.units import unit_ids
from valuescope.known_truth.simulate import prepare
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec


def _responses() -> pd.DataFrame:
    """Baseline and 6 personas, two contexts, repeats, balanced orders; a letter habit and invalid answers."""
    sim = prepare(study_from_dict({
        "name": "rows", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
        "instruments": [{"name": "mfq30"}], "option_order": "balanced", "repeats": 2,
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 6, "seeds": [111]}]},
        "contexts": {"topics": ["joke", "chess"], "n_messages": [1]}}))
    resp = sim.responses(SyntheticSpec(persona_sd=0.8, drift_sd=0.4, query_sd=0.3, letter_weight=0.3,
                                       letter_bias=[0.1, 0.12, 0.45, 0.13, 0.1, 0.1]))
    resp.loc[resp.index[::17], "valid"] = False
    return resp[resp["dimension"].notna()].reset_index(drop=True)


def test_slices_read_what_their_own_frames_read():
    resp = _responses()
    answers = Answers(resp)
    keys = resp[["condition", "context", "dimension"]].astype(str).agg("|".join, axis=1).to_numpy()
    assert len(set(keys)) > 20
    for key in sorted(set(keys)):
        idx = np.flatnonzero(keys == key)
        rows, frame = answers.rows(idx), resp.iloc[idx]
        for got, want in zip(rows.distributions(6), row_distributions(frame, 6), strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(rows.unit, unit_ids(frame).to_numpy())
        np.testing.assert_array_equal(rows.stratum, strata(frame))
        # the query codes, as the per-slice reading computed them (each row's key joined as one string)
        key_strings = frame[[c for c in QUERY_COLUMNS if c in frame.columns]].astype(str).agg("|".join, axis=1)
        np.testing.assert_array_equal(rows.query, pd.factorize(key_strings)[0])
        assert rows.single_k() == 6 and list(rows.k_values()) == [6]
        units = sorted(set(rows.unit))
        for got, want in zip(sums_by_unit(*rows.distributions(6), rows.unit, units), unit_sums(frame, 6, units),
                             strict=True):
            np.testing.assert_array_equal(got, want)
        if key.startswith("persona"):
            a, b = _group_deviations(rows, 6), _group_deviations(frame, 6)
            assert a.keys() == b.keys()
            for reading in a:
                assert a[reading].keys() == b[reading].keys()
                for u in a[reading]:
                    np.testing.assert_array_equal(a[reading][u][0], b[reading][u][0])
                    assert a[reading][u][1] == b[reading][u][1]


def test_match_of_slices_is_the_match_of_frames():
    resp = _responses()
    answers = Answers(resp)
    for ctx in ("joke@1", "chess@1"):
        for dim in ("Harm", "Purity"):
            here = (resp["context"].astype(str) == ctx) & (resp["dimension"] == dim)
            b_idx = np.flatnonzero(here & (resp["condition"] == "baseline"))
            p_idx = np.flatnonzero(here & (resp["condition"] == "persona"))
            assert len(b_idx) and len(p_idx)
            got = match_strata(answers.rows(b_idx), answers.rows(p_idx), 6)
            want = match_strata(resp.iloc[b_idx], resp.iloc[p_idx], 6)
            assert len(got.pers_soft) > 0
            for field, value in vars(want).items():
                np.testing.assert_array_equal(getattr(got, field), value, err_msg=field)
