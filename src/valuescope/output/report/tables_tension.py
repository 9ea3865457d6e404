"""The motivated-reasoning tables of evidence instruments (paper 004), for the report's headline and
``valuescope show``: per evidence instrument and context, D = accuracy when the correct conclusion suits the
persona's identity minus when it does not [95% CI] with its p, then D against the baseline's and the placebo
control (which must be 0). Two narrow tables each, so a terminal of 80 columns shows every cell on one line."""

from __future__ import annotations

import pandas as pd

from valuescope.output.numbers import fmt_ci, fmt_num
from valuescope.output.report.tables import Table

#: where the per-topic inertia/steerability of evidence instruments are, since they are not headline rows
EVIDENCE_NOTE = ("the per-topic inertia and steerability of {names} are not shown (no finding on evidence "
                 "items): valuescope export RUN (metrics.csv) or show --all")


def congruence_tables(bias: pd.DataFrame, model: str = "") -> list[Table]:
    """Tables of the congruence summary (``analysis.metrics.tension.congruence_summary``), titled
    ``[model: ]instrument[, context]: ...``; the last carries :data:`EVIDENCE_NOTE`."""
    if bias is None or not len(bias):
        return []
    several = bias["context"].nunique() > 1
    prefix = f"{model}: " if model else ""
    out = []
    for (inst, ctx), g in bias.groupby(["instrument", "context"], sort=False):
        where = prefix + str(inst) + (f", {ctx}" if several else "")
        rows = [[str(r.identity), str(int(r.n)), fmt_num(r.right_if_suits), fmt_num(r.right_if_not),
                 fmt_ci(r.diff, r.diff_low, r.diff_high), fmt_num(r.p)] for r in g.itertuples(index=False)]
        out.append(Table(f"{where}: right when the truth suits the identity vs not (answers)",
                         ["identity", "n", "if suits", "if not", "D [95% CI]", "p"], rows))
        rows = [[str(r.identity), fmt_ci(r.vs_baseline, r.vs_baseline_low, r.vs_baseline_high),
                 fmt_ci(r.control_diff, r.control_low, r.control_high), fmt_num(r.control_p)]
                for r in g.itertuples(index=False)]
        out.append(Table(f"{where}: against the baseline; the placebo control must be 0",
                         ["identity", "D - baseline D [95% CI]", "placebo D [95% CI]", "placebo p"], rows))
    out[-1].notes.append(EVIDENCE_NOTE.format(names=", ".join(dict.fromkeys(bias["instrument"].astype(str)))))
    return out


def report_congruence_tables(runs: list) -> list[Table]:
    """The report's motivated-reasoning tables (before the headline), one set per run with evidence
    instruments, titled with the model where several runs are shown."""
    from valuescope.analysis.metrics.tension import congruence_summary

    out = []
    for run in runs:
        if run.metrics is None or run.metrics.empty:
            continue
        out += congruence_tables(congruence_summary(run.metrics), run.model if len(runs) > 1 else "")
    return out
