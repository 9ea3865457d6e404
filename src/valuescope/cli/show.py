"""``valuescope show``: a run's position bias, counts and metric tables in the terminal (two runs: also their
differences and ablation comparison); ``--json`` the API's run summaries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from valuescope.cli import console
from valuescope.cli.console import (
    fail,
    json_option,
    print_frame,
    print_json,
    print_report_table,
    stored_run,
    user_errors,
)
from valuescope.cli.guard import guarded, where
from valuescope.study import DEFAULT_DIR

if TYPE_CHECKING:
    from valuescope.output.api import Run


@guarded
def show(
    run_ids: Annotated[list[str], typer.Argument(help="Run id (or a unique prefix); two runs of an ablation pair "
                                                 "are also compared.")],
    directory: Annotated[Path, typer.Option("--dir", "-d")] = Path(DEFAULT_DIR),
    all_metrics: Annotated[bool, typer.Option("--all", help="Every metric row, not just the headline.")] = False,
    effects: Annotated[bool, typer.Option("--effects", help="The Hedges' g grid: g [95% CI], q and group sizes "
                                          "per attribute level and dimension.")] = False,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Print a run's position bias, counts and metric tables (two runs: also their ablation comparison).

    --json: the run's summary object (several runs: {"runs": [...], "comparison": [...] for two})."""
    where(directory, lambda: run_ids)
    if as_json:
        _show_json(directory, run_ids, all_metrics)
        return
    loaded = [stored_run(directory, rid) for rid in run_ids]
    for run in loaded:
        _print_position(run.model, run.metrics)
        c = run.counts
        console.out.print(Text.assemble(
            (run.run_id, "bold"), f" model={run.model} answered={c['answered']}/{c['planned']} "
            f"unreadable={c['invalid']} failed={c['failed']} personas={c['personas']} "
            f"contexts={c['contexts']} outside-letter mass mean={c['outside_mass_mean']:.4f}"))
        methods = ", ".join(f"{n} by {m}" for m, n in c["methods"].items()) or "none"
        console.out.print(f"answers read: {methods}", highlight=False)
        for source, n in c["reused_from"].items():
            console.out.print(f"{n} answers reused from run {source}", highlight=False)
        if len(c["methods"]) > 1:
            console.out.print(Text.assemble(
                ("mixed readings:", "yellow"), " full distributions (logprobs) and parsed one-hot answers are "
                "kept apart: metrics use the logprob answers only (see the 'mixed_readings' rows)"))
        _print_congruence(run)
        _print_metrics_or_why(run, "headline")
        _print_human(run)
        _print_notes(run.metrics)
        _print_geometry(run)
        if effects or all_metrics:
            _print_effects(run)
        if all_metrics and not run.metrics.empty:
            print_frame(run.metrics, title="all metrics", max_rows=10_000)
    if len(loaded) == 2:
        from valuescope.output.report.data import RunData
        from valuescope.output.report.tables_compare import difference_tables

        pair = [RunData(run_id=t.run_id, model=t.model, metrics=t.metrics, responses=t.responses) for t in loaded]
        for t in difference_tables(pair):
            print_report_table(t)
        _print_comparison(loaded[0].ablation(loaded[1]))


def _show_json(directory: Path, run_ids: list[str], all_metrics: bool) -> None:
    from valuescope.output.api import Run, records

    try:
        runs = [Run(directory, rid) for rid in run_ids]
        data = [r.summary() for r in runs]
        comparison = runs[0].ablation(runs[1]) if len(runs) == 2 else None
    except user_errors() as exc:
        fail(str(exc))
    if all_metrics:
        for d, r in zip(data, runs, strict=True):
            d["metrics"] = records(r.metrics)
    if len(runs) == 1:
        print_json(data[0])
        return
    print_json({"runs": data, **({"comparison": records(comparison)} if comparison is not None else {})})


def print_headline(store_dir: Path, run_id: str) -> Run:
    """What ``valuescope run`` prints after each run: position bias, the headline tables and their notes. Returns
    the ``Run`` it read (its tables computed once: ``run`` writes the report from it)."""
    from valuescope.output.api import Run

    run = Run(store_dir, run_id)
    _print_position(run.model, run.metrics)
    _print_congruence(run)
    _print_metrics_or_why(run, f"{run.model}: headline")
    _print_human(run)
    _print_notes(run.metrics)
    _print_geometry(run)
    return run


def _print_position(model: str, metrics) -> None:
    """Position bias first: the least share that follows the letter shown, and a warning worded after it."""
    from valuescope.output.api import position_warning

    pb = metrics[metrics["metric"].isin(["position_bias_hard", "position_bias_soft"])] if len(metrics) else metrics
    if pb is None or pb.empty:
        return
    for inst, g in pb.groupby("instrument", sort=True):
        parts = []
        for r in g.itertuples(index=False):
            reading = "answers" if r.metric.endswith("_hard") else "probabilities"
            if r.value == r.value:  # not NaN
                parts.append(f"{reading} {r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]")
            else:
                parts.append(f"{reading} n/a ({r.note})")
        console.out.print(f"position bias {model} {inst} (least share that follows the letter): "
                          + "; ".join(dict.fromkeys(parts)), highlight=False)
        soft = g[g["metric"] == "position_bias_soft"]["value"]
        text = position_warning(float(soft.iloc[0])) if len(soft) else None
        if text:
            console.out.print(Text.assemble(("warning:", "bold yellow"), f" {model} {inst}: {text}"))


def _print_notes(metrics) -> None:
    """Why a headline number is missing (one line per distinct note)."""
    if metrics is None or metrics.empty:
        return
    keys = {"inertia_hard", "steerability_jsd_hard", "steerability_jsd_soft", "steerability_p_soft"}
    m = metrics[metrics["metric"].isin(keys) & (metrics["note"].astype(str) != "")]
    for note, g in m.groupby("note", sort=True):
        names = ", ".join(sorted(set(g["metric"])))
        console.out.print(f"note ({names}): {note}", highlight=False)


def _print_congruence(run) -> None:
    """Evidence instruments (paper 004) first: the motivated-reasoning tables (output.report.tables_tension)."""
    from valuescope.output.report.tables_tension import congruence_tables

    for t in congruence_tables(run.congruence, run.model):
        print_report_table(t)


def _print_human(run) -> None:
    """Persona groups against people (docs/human_norms.md), when the study asks for it: the tables, or why not."""
    from valuescope.output.report.tables_human import human_tables

    tables, notes = human_tables(run.metrics, run.model)
    for t in tables:
        print_report_table(t)
    for n in notes:
        console.out.print(f"note: {n}", highlight=False)


def _print_metrics_or_why(run, title: str) -> None:
    """The headline table, or one line saying why there is none (no answers stored yet)."""
    if run.metrics.empty:
        console.out.print(f"{run.run_id}: no answers stored, so no metrics (run the study again to answer its queries)",
                          highlight=False)
        return
    head = run.headline
    head = head[~head["instrument"].isin(run.congruence["instrument"] if len(run.congruence) else [])]
    for inst, g in head.groupby("instrument", sort=False):
        for part, frame in _compact(g).items():
            print_frame(frame, title=f"{title}: {inst}, {part}")


def _print_geometry(run) -> None:
    """Persona-space and steering rows (docs/geometry.md), when the run has any."""
    m = run.metrics
    if m is None or m.empty:
        return
    g = m[m["metric"].str.startswith(("geometry_", "steer_")) & ~m["dimension"].str.len().astype(bool)
          | m["metric"].str.startswith("geometry_") & m["dimension"].str.startswith("layer=")]
    if g.empty:
        return
    cols = ["metric", "instrument", "dimension", "context_a", "value", "ci_low", "ci_high", "n", "note"]
    print_frame(g[cols].rename(columns={"dimension": "layer", "context_a": "context"}),
                 title=f"{run.model}: persona space and steering (docs/geometry.md)", max_rows=200)


def _compact(head) -> dict:
    """The headline table of one instrument for a terminal, split so each part fits 80 columns (a cell may
    wrap, none is cut): the answers (hard: inertia and steerability, permutation p), the probabilities (soft) and
    the answers' concentration (with the rank order across contexts). Every column keeps its reading (hard =
    answers, soft = probabilities); every cell is value [95% CI] from the headline's ``_low``/``_high`` columns
    (the long table's interval, as exported; a p has none), in the shared number format; the context column only
    when there are several."""
    import pandas as pd

    from valuescope.output.numbers import fmt_ci

    #: part -> (shown column, headline metric)
    parts = {
        "answers (hard)": [("inert_hard", "inertia_hard"), ("steer_hard", "steerability_jsd_hard"),
                           ("p_hard", "steerability_p_hard")],
        "probabilities (soft)": [("inert_soft", "inertia_soft"), ("steer_soft", "steerability_jsd_soft"),
                                 ("p_soft", "steerability_p_soft")],
        "concentration": [("top1_hard", "top1_share_hard"), ("top2adj_hard", "top2_adjacent_hard"),
                          ("rank_order", "rank_order")],
    }
    several = head["context"].nunique() > 1
    rows: dict[str, list[dict]] = {part: [] for part in parts}
    for _, r in head.iterrows():
        key = ({"context": r["context"]} if several else {}) | {"dimension": r["dimension"]}
        for part, cols in parts.items():
            cells = {shown: fmt_ci(r[m], r[f"{m}_low"], r[f"{m}_high"]) for shown, m in cols}
            rows[part].append({**key, **cells, **({"n": str(int(r["n"]))} if part == "answers (hard)" else {})})

    def drop_empty(part_rows):  # a column with no value says nothing (the notes say why); nor does a table
        frame = pd.DataFrame(part_rows)
        frame = frame[[c for c in frame.columns if not (len(frame) and (frame[c] == "–").all())]]
        return frame if len(frame.columns) > (2 if several else 1) else None

    shown = {part: drop_empty(r) for part, r in rows.items()}
    return {k: v for k, v in shown.items() if v is not None}


def _print_effects(run) -> None:
    """The d grid as the report's table (one per instrument), or why there is none."""
    from valuescope.output.report.data import RunData
    from valuescope.output.report.tables import effects_tables

    shown = effects_tables(RunData(run_id=run.run_id, model=run.model, effects=run.effects))
    if not shown:
        console.out.print(f"{run.run_id}: no Hedges' g grid (no persona attributes or no persona scores)",
                          highlight=False)
    for t in shown:
        print_report_table(t)


def _print_comparison(frame) -> None:
    kind = str(frame["comparison"].iloc[0]) if len(frame) else "none"
    if kind == "none":
        console.out.print(f"comparison: {frame['note'].iloc[0] if len(frame) else 'nothing to compare'}",
                          highlight=False)
        return
    from valuescope.output.numbers import fmt_ci

    shown = frame.assign(**{"value [95% CI]": [fmt_ci(*x) for x in frame[["value", "ci_low", "ci_high"]].to_numpy()]})
    cols = ["instrument", "condition", "context", "metric", "dimension", "value [95% CI]", "n", "note"]
    print_frame(shown[cols], title=f"ablation pair ({kind}): {frame['run_a'].iloc[0]} vs {frame['run_b'].iloc[0]}")
