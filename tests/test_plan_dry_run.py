"""valuescope plan / run --dry-run: the plan's numbers against what the run then does (synthetic backend)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from valuescope.cli import app
from valuescope.execution.dry_run import plan_study
from valuescope.execution.runner import run_study
from valuescope.store.sqlite import STORE_NAME
from valuescope.study import presets
from valuescope.study.modelref import parse_model


def _demo(out: Path):
    return presets.adapt(presets.load_preset("demo"), model=parse_model("synthetic"), scale=0.5, output=str(out))


def test_plan_counts_what_the_run_asks_and_its_disk(tmp_path: Path):
    study = _demo(tmp_path / "out")
    (plan,) = plan_study(study, calibrate=8)
    assert not (tmp_path / "out" / STORE_NAME).exists()  # a dry run writes nothing
    assert plan.stored == 0 and plan.calibration_queries == 8 and plan.per_query_s > 0
    assert plan.prompt_tokens > plan.queries * 20 and not plan.tokens_counted  # synthetic: chars / 4
    (res,) = run_study(study)
    assert plan.queries == res.planned and plan.run_id == res.run_id
    measured = (tmp_path / "out" / STORE_NAME).stat().st_size / res.planned
    assert 0.5 < plan.bytes_per_answer / measured < 2.0, (plan.bytes_per_answer, measured)
    (again,) = plan_study(study, calibrate=0)
    assert again.stored == again.queries and again.pending == 0


def test_plan_and_dry_run_cli_print_the_plan_and_ask_nothing(tmp_path: Path):
    out = tmp_path / "o"
    for args in (["plan", "--preset", "demo", "--model", "synthetic", "--scale", "0.5", "-o", str(out)],
                 ["run", "--preset", "demo", "--model", "synthetic", "--scale", "0.5", "-o", str(out), "--dry-run"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "queries" in res.output and "prompt tokens" in res.output and "calibration queries" in res.output
        assert not (out / STORE_NAME).exists()


def test_example_prompt_of_a_context_study_shows_its_conversation(tmp_path: Path):
    """The report's "exact prompt of one query" of a context study includes the simulated conversation."""
    from valuescope.analysis.tables import load_run
    from valuescope.store.sqlite import Store
    from valuescope.study.spec import study_from_dict

    study = study_from_dict({
        "name": "ctx", "output": str(tmp_path / "o"), "models": [{"name": "synthetic", "backend": "synthetic"}],
        "instruments": [{"name": "pvq40", "items": ["Q01", "Q02"]}],
        "population": {"baseline": False, "sources": [{"kind": "named", "list": "tolkien", "limit": 2}]},
        "contexts": {"topics": ["poem"], "n_messages": [3]}, "option_order": "fixed"})
    (res,) = run_study(study)
    with Store(tmp_path / "o", create=False) as store:
        tables = load_run(store, res.run_id)
    (pid, _, msgs) = next(iter([(c["persona_id"], c["context_json"], c["messages_json"])
                               for c in tables.conversations]))
    import json

    first = json.loads(msgs)[0]["content"]
    prompt = tables.info.example_prompt
    assert first[:40] in prompt


def test_show_fits_80_and_120_columns_and_prints_every_dimension(tmp_path: Path):
    """show on a synthetic run: every line within the terminal width, each instrument's own dimensions, no
    empty headline row, and the g grid with --effects."""
    import io

    from rich.console import Console

    import valuescope.cli.console as console

    (res,) = run_study(_demo(tmp_path / "out"))
    for width in (80, 120):
        buf = io.StringIO()
        saved = console.out
        console.out = Console(width=width, file=buf, force_terminal=False)
        try:
            result = CliRunner().invoke(app, ["show", res.run_id, "--dir", str(tmp_path / "out"), "--effects"])
        finally:
            console.out = saved
        text = buf.getvalue()
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in text.splitlines()) <= width
        for dim in ("Authority", "Fairness", "Harm", "Ingroup", "Purity"):
            assert dim in text
        assert "inert_hard" in text and "Hedges' g" in text and "│ –" not in text.split("Hedges' g")[0]


def test_help_texts_name_every_command_and_option():
    """Top-level help: every command (migrate too), no literal backticks; run --help: -q explained, --model
    names the synthetic model."""
    from helpers import cli_command, cli_in_process

    top = cli_in_process("--help").stdout
    assert "`" not in top
    for name in cli_command().commands:
        assert f" {name} " in top, name
    words = " ".join(top.split())
    assert "Commands: run, plan, ls, show, export, report, presets, migrate, judge-eval, power." in words
    run_help = " ".join(cli_in_process("run", "--help").stdout.replace("│", " ").split())
    assert "-q <bool> No progress bar and no tables" in run_help and "synthetic (the known-truth model" in run_help
