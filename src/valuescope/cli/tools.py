"""``valuescope presets``, ``judge-eval`` and ``power``: the shipped studies, a judge model's accuracy on
labelled replies, and simulated power against the number of personas."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuescope.cli import console
from valuescope.cli.console import fail, json_option, print_json, print_rows, user_errors
from valuescope.cli.guard import guarded
from valuescope.core.levels import ALPHA
from valuescope.study import DEFAULT_DIR


@guarded
def presets(
    action: Annotated[str | None, typer.Argument(help="'show' to print one preset")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """List the shipped presets, or print one (valuescope presets show NAME) to copy and edit."""
    from valuescope.output import operations as ops

    if action is None and as_json:
        print_json([{"name": n, "description": d} for n, d in ops.presets()])
        return
    if action is None:
        table = Table(title="presets")
        table.add_column("name")
        table.add_column("description")
        for n, desc in ops.presets():
            table.add_row(n, desc)
        console.out.print(table)
        return
    if action != "show" or not name:
        fail("usage: valuescope presets [show NAME]")
    try:
        text = ops.preset_text(name)
        if as_json:
            study = ops.load_preset(name)
    except user_errors() as exc:
        fail(str(exc))
    if as_json:
        desc = dict(ops.presets())[name]
        print_json({"name": name, "description": desc, "study": study.model_dump(mode="json"), "yaml": text})
        return
    sys.stdout.write(text)


@guarded
def judge_eval(
    sample: Annotated[Path, typer.Option("--sample", "-s", help="Labelled replies, JSONL: text, letters and/or "
                                         "labels, gold (a letter, or null for none).")],
    judge: Annotated[str, typer.Option(help="The judge model: a GGUF path or key=value,... (as run --model).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Measure how often a judge model (and the rule-based parser) reads labelled replies right."""
    import json

    from valuescope.output.operations import judge_eval as evaluate

    try:
        spec, report = evaluate(sample, judge)
    except user_errors() as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps({"judge": spec.name, "backend": spec.backend, **report}) + "\n")
        return
    console.out.print(f"judge-eval: {report['n']} samples from {sample}; judge {spec.name} ({spec.backend})",
                      highlight=False)
    console.out.print(f"judge accuracy: {report['accuracy']:.3f}  rule accuracy: {report['rule_accuracy']:.3f}  "
                      f"n: {report['n']}  judge invalid: {report['n_invalid']}", highlight=False)
    conf = report["confusion"]
    cols = sorted({p for row in conf.values() for p in row} | set(conf), key=lambda c: (c == "none", c))
    console.out.print("confusion (rows: gold, columns: the judge's answer; none = no single option)", highlight=False)
    table = Table()
    table.add_column("gold")
    for c in cols:
        table.add_column(c, justify="right")
    for g in sorted(conf, key=lambda c: (c == "none", c)):
        table.add_row(g, *[str(conf[g].get(c, 0)) for c in cols])
    console.out.print(table)


@guarded
def power(
    study_file: Annotated[Path | None, typer.Argument(help="Study YAML (or --preset).")] = None,
    preset: Annotated[str | None, typer.Option(help="A shipped preset instead of a study file.")] = None,
    effect: Annotated[list[str] | None, typer.Option(
        "--effect", "-e", help="attribute=level:dimension=d, e.g. religious_denomination=Orthodox:Tradition=0.3 "
        "(a Cohen's d on the measured score; repeat for several).")] = None,
    synthetic: Annotated[Path | None, typer.Option(help="Synthetic model spec YAML (default: persona_sd 1, "
                                                        "nothing else).")] = None,
    sizes: Annotated[str, typer.Option(help="Numbers of personas to simulate, comma-separated.")]
    = "50,100,200,400,800",
    reps: Annotated[int, typer.Option(help="Replications per size.")] = 50,
    alpha: Annotated[float, typer.Option(help="Significance level of the planned contrast's Welch test.")] = ALPHA,
    target: Annotated[float, typer.Option("--power", help="Power to read the needed personas at.")] = 0.8,
    latent: Annotated[bool, typer.Option(help="--effect values are latent shifts, not Cohen's d.")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where power.csv/.png/.html go.")]
    = Path(DEFAULT_DIR) / "power",
) -> None:
    """Simulate a study with planted effects at several sizes: power and CI widths against personas."""
    import time

    from valuescope.output import operations as ops
    from valuescope.output.numbers import fmt_num
    from valuescope.output.power_report import needed_lines, power_rows, width_summary, write_power

    t0 = time.perf_counter()
    try:
        study = ops.load_study(study_file, preset, default="inertia")
        spec, effects, size_list, latent = ops.power_inputs(synthetic, effect or [], sizes, alpha, target, latent)
        from valuescope.core.progress import ProgressBar

        progress = ProgressBar(console.err)
        try:
            table = ops.power_analysis(study, spec, effects, sizes=size_list, reps=reps, alpha=alpha, seed=seed,
                                   latent=latent, progress=progress)
        finally:
            progress.close()
    except user_errors() as exc:
        fail(str(exc))
    header, rows = power_rows(table)
    if rows:
        print_rows(header, rows, "power [Monte-Carlo 95% interval]")
        console.out.print(
            f"power = share of {reps} replications per size with Welch p < {alpha:g} and the planted sign",
            highlight=False)
        for line in needed_lines(table, target):
            console.out.print(line, highlight=False)
    widths = width_summary(table)
    if len(widths):
        w = widths.pivot_table(index="n_personas", columns="metric", values="ci_width")
        print_rows(["personas", *map(str, w.columns)],
                    [[f"{int(n)}", *(fmt_num(v) for v in r)] for n, r in zip(w.index, w.to_numpy(), strict=True)],
                    "95% CI width (median over dimensions)")
    settings = (f"{study.name}: sizes {size_list}, {reps} replications, alpha {alpha:g}, seed {seed}, "
                f"{'latent shifts' if latent else 'effects as Cohen d on the measured score'}; "
                f"synthetic model {synthetic or 'default (persona_sd 1)'}")
    paths = write_power(table, output, f"valuescope power: {study.name}", settings, target)
    console.out.print(f"power: {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f} s)", highlight=False)
