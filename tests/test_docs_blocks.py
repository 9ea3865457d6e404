"""Every code block in README.md and docs/*.md is checked as written (issue 26).

``HOW`` lists each block (file, its number in the file, how it starts) with what is done with it; a new block,
a removed one, or one whose first line changed fails ``test_every_block_is_checked`` until ``HOW`` says how it is
checked. Where a block names something this machine cannot run in a test (a large population, a model or server
it lacks, a file of the reader's), the test substitutes as little as it can, lists the substitution in ``HOW``,
and the doc says so next to the block. Blocks are read from the files at test time: an edited example is checked
as edited.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import block, cli_at_width, cli_in_process, code_blocks, table_cells

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]

#: (file, block number from 1, the block's first line) -> how it is checked
HOW: dict[tuple[str, int, str], str] = {
    ("README.md", 1, "# Install and run the demo study"): "test_readme_demo_command: `valuescope run` in-process, "
        "--model synthetic --scale 0.25 (the install half is what .ci/run does)",
    ("README.md", 2, "# Install and run the tests:"): "test_readme_test_command_is_what_ci_runs",
    ("README.md", 3, "demo-smollm2-135m-"): "test_readme_output_sample: run id and "
        "count of `--preset demo --scale 0.5`, planned without a model",
    ("README.md", 4, "import valuescope"): "test_readme_python_block: executed with model=\"synthetic\" added",
    ("README.md", 5, "name: my-study"): "test_readme_study: run on the synthetic model with n: 2 and one seed per "
        "WVS source, 6 evidence items, 2 personas from each list and file; my_instrument.yaml and personas.csv "
        "from examples/",
    ("README.md", 6, "python3 -m valuescope power --preset inertia"): "test_power_commands: --sizes 10,20 --reps 2; "
        "my_study.yaml = a small study, my_model.yaml = backends.md's synthetic spec",
    ("README.md", 7, "python3 -m pip install -e \".[test]\""): "test_readme_test_command_is_what_ci_runs",
    ("docs/backends.md", 1, "models:"): "test_study_fragments_validate (a GGUF this machine lacks)",
    ("docs/backends.md", 2, "models:"): "test_study_fragments_validate (a server)",
    ("docs/backends.md", 3, "models:"): "test_study_fragments_validate (model directories and a Hub id)",
    ("docs/backends.md", 4, "models:"): "test_study_fragments_validate (vLLM needs a GPU)",
    ("docs/backends.md", 5, "models:"): "test_study_fragments_validate (a paid API)",
    ("docs/backends.md", 6, "models:"): "test_study_fragments_validate (a paid API and a judge server)",
    ("docs/backends.md", 7, "models:"): "test_synthetic_model_blocks: run with block 8 as my_model.yaml",
    ("docs/backends.md", 8, "# my_model.yaml"): "test_synthetic_model_blocks",
    ("docs/geometry.md", 1, "models:"): "test_study_fragments_validate; run as written by test_geometry_hf's "
    "steered study (its geometry and steer from this block, the embedded model through transformers)",
    ("docs/human_norms.md", 1, "instrument: mfq30"): "test_human_norms_blocks: the template with its '...' "
        "filled by numbers, read by load_norms",
    ("docs/human_norms.md", 2, "from valuescope.analysis.metrics.human import"): "test_human_norms_blocks: on a "
        "synthetic run of WVS personas with identities",
    ("docs/human_norms.md", 3, "human:"): "test_study_fragments_validate",
    ("docs/human_norms.md", 4, "valuescope run --preset fidelity-political"): "test_human_study.py (norms_run): "
        "the command at --scale 0.1 through the CLI, its output, show, export and the report's section",
    ("docs/human_norms.md", 5, "position bias smollm2-135m"): "a measured output (the embedded model, 455 CPU-s): "
        "not rerun; test_human_study checks these tables' titles and columns on the synthetic model",
    ("docs/instruments.md", 1, "from valuescope.design.instruments import"): "test_instruments_python_block",
    ("docs/instruments.md", 2, "scoring:"): "test_instrument_scoring_block: into pvq_rr.yaml (levels) with "
        "mfq30.yaml's MATH item (the catch rule)",
    ("docs/instruments.md", 3, "instruments:"): "test_generated_instruments_block: the item counts its comments give",
    ("docs/personas.md", 1, "population:"): "test_population_block: built with block 2 as my_space.yaml and "
        "examples/political_personas.csv as personas.jsonl",
    ("docs/personas.md", 2, "id: shop"): "test_population_block",
    ("docs/personas.md", 3, "contexts:"): "test_threads_block: examples/threads.jsonl as threads.jsonl",
    ("docs/power.md", 1, "python3 -m valuescope power --preset inertia"): "test_power_commands: README's "
        "first power command with other sizes (checked equal but for them)",
    ("docs/python.md", 1, "import valuescope"): "test_api::test_docs_python_md_runs (the page as one script)",
    ("docs/python.md", 2, "(run,) = valuescope.run(study"): "test_api::test_docs_python_md_runs",
    ("docs/python.md", 3, "mean_profile = responses"): "test_api::test_docs_python_md_runs",
    ("docs/python.md", 4, "fig = valuescope.figures.inertia(run)"): "test_api::test_docs_python_md_runs",
    ("docs/python.md", 5, "(fixed,) = valuescope.run("): "test_api::test_docs_python_md_runs",
    ("docs/python.md", 6, "results = valuescope.open(\"results\")"): "test_api::test_docs_python_md_runs",
    ("docs/python.md", 7, "try:"): "test_api::test_docs_python_md_runs",
    ("docs/python.md", 8, "valuescope run study.yaml --json -q"): "test_cli_json_documented_keys (the keys its "
        "comments list; jq aside)",
    ("docs/scale.md", 1, "executor: ray"): "test_study_fragments_validate (a Ray cluster)",
    ("docs/scale.md", 2, "models:"): "test_study_fragments_validate (three GPU servers)",
}




def test_every_block_is_checked() -> None:
    found = {(name, i, text.strip().splitlines()[0] if text.strip() else "")
             for name in DOC_FILES for i, (_, text) in enumerate(code_blocks(name), 1)}
    listed = {(name, i, start) for name, i, start in HOW}
    missing = sorted((n, i, first) for n, i, first in found
                     if not any(n == ln and i == li and first.startswith(s) for ln, li, s in listed))
    gone = sorted((ln, li, s) for ln, li, s in listed
                  if not any(n == ln and i == li and first.startswith(s) for n, i, first in found))
    assert not missing and not gone, (
        f"code blocks without a check in HOW: {missing}; entries of HOW matching no block: {gone}")


def _yaml(name: str, number: int) -> dict:
    data = yaml.safe_load(block(name, number))
    assert isinstance(data, dict), f"{name} block {number} is not a YAML mapping"
    return data


# --------------------------------------------------------------------------------------------- commands


def _command(line: str) -> list[str]:
    """``python3 -m valuescope ARGS`` (after any ``&&``) -> ARGS."""
    words = shlex.split(line.split("&&")[-1], comments=True)
    assert words[:3] == ["python3", "-m", "valuescope"], line
    return words[3:]


def test_readme_test_command_is_what_ci_runs() -> None:
    """README's test command (its top and its "Development" section) is the command .ci/run runs."""
    top = [ln for ln in block("README.md", 2).splitlines() if not ln.startswith("#")][0].strip()
    dev = block("README.md", 7).splitlines()[0].split("#")[0].strip()
    assert dev == top
    ci = (REPO / ".ci" / "run").read_text()
    assert top.replace("python3 ", "python ") in ci.splitlines()


@pytest.mark.slow  # the demo at a quarter scale on the synthetic model, through the CLI: ~10 s
def test_readme_demo_command(tmp_path: Path) -> None:
    args = _command([ln for ln in block("README.md", 1).splitlines() if not ln.startswith("#")][0])
    assert args == ["run"]
    res = cli_in_process(*args, "--model", "synthetic", "--scale", "0.25", "--no-report", "-o", str(tmp_path))
    assert res.returncode == 0, res.stderr
    first = res.stdout.strip().splitlines()[0]
    m = re.search(r"(\d+) queries planned, 0 already stored, \1 new, 0 unreadable, 0 failed", first)
    assert m and int(m.group(1)) > 0, first


def test_readme_output_sample() -> None:
    """The run id and query count the README shows are those of the command it names under the block."""
    import valuescope
    from valuescope.output import operations

    first = block("README.md", 3).splitlines()[0]
    run_id, count = re.match(r"(\S+): (\d+) queries planned", first).groups()
    after = (REPO / "README.md").read_text().split(block("README.md", 3), 1)[1][:400]
    assert "`--preset demo --scale 0.5`" in after
    study = operations.adapt_study(valuescope.preset("demo"), scale=0.5)
    (plan,) = operations.plan(study, 0)
    assert (plan.run_id, plan.queries) == (run_id, int(count))


def _tiny_study(path: Path, **extra) -> Path:
    """A small study file on the synthetic model (the stand-in for a reader's own study)."""
    study = {"name": "tiny", "output": str(path.parent / "results"),
             "models": [{"name": "truth", "backend": "synthetic"}],
             "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT",
                                                         "DECENCY"]}],
             "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 4, "seeds": [111]}]}, **extra}
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.mark.slow  # two small power simulations through the CLI: ~15 s
def test_power_commands(tmp_path: Path) -> None:
    readme = [ln for ln in block("README.md", 6).replace("\\\n", " ").splitlines() if ln.strip()]
    power_md = block("docs/power.md", 1).replace("\\\n", " ").strip()
    (tmp_path / "my_model.yaml").write_text(block("docs/backends.md", 8))
    # the stand-in study holds every dimension the spec names (Harm; PVQ-RR's Tradition and Universalism)
    _tiny_study(tmp_path / "my_study.yaml", instruments=[{"name": "mfq30"}, {"name": "pvq_rr"}])
    # power.md's command is README's first with other sizes: the same once checked, then run once
    assert _command(power_md)[:5] == _command(readme[0])[:5]
    for line in [readme[0], readme[1]]:
        args = _command(line)
        if "--sizes" in args:  # the documented sizes and replications take minutes: the same command, smaller
            args[args.index("--sizes") + 1] = "10,20"
            args[args.index("--reps") + 1] = "2"
        else:
            args += ["--sizes", "10,20", "--reps", "2"]
        out = tmp_path / f"power{len(list(tmp_path.glob('power*')))}"
        res = cli_in_process(*args, "-o", str(out), cwd=tmp_path)
        assert res.returncode == 0, (line, res.stderr)
        written = {p.name for p in out.iterdir()}
        assert {"power.csv", "power.png", "power.html"} <= written, (line, written)  # as README's comment says
        table = pd.read_csv(out / "power.csv")
        assert set(table["n_personas"]) == {10, 20}, table.columns.tolist()


# --------------------------------------------------------------------------------------------- studies


def test_study_fragments_validate() -> None:
    """Blocks that name a model, server, cluster or GPU this machine lacks: each is a valid study (every key
    known, every value allowed), as a reader's study file holding it would be."""
    from valuescope.study.spec import Study

    for name, number in [("docs/backends.md", i) for i in range(1, 7)] + [
            ("docs/geometry.md", 1), ("docs/scale.md", 1), ("docs/scale.md", 2), ("docs/human_norms.md", 3)]:
        study = Study.model_validate(_yaml(name, number))
        assert study.model_dump(exclude_defaults=True), (name, number)


@pytest.mark.slow  # a small synthetic run through the CLI: ~10 s
def test_synthetic_model_blocks(tmp_path: Path) -> None:
    """backends.md's synthetic model entry with its spec file (the next block) runs a study."""
    (tmp_path / "my_model.yaml").write_text(block("docs/backends.md", 8))
    models = _yaml("docs/backends.md", 7)["models"]
    # the spec names MFQ-30's Harm and PVQ-RR's Tradition and Universalism: the study holds both
    study = _tiny_study(tmp_path / "study.yaml", models=models,
                        instruments=[{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED"]}, {"name": "pvq_rr"}])
    res = cli_in_process("run", str(study), "--no-report", "--json", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (summary,) = json.loads(res.stdout)
    assert summary["model"] == "truth" and summary["counts"]["answered"] == summary["counts"]["planned"] > 0


@pytest.mark.slow  # the README study at a small size on the synthetic model: conversations, 4 instruments
def test_readme_study(tmp_path: Path) -> None:
    """README's study as written, smaller: `show` at 80 columns leads with the evidence instrument's table, then
    every instrument's own dimensions (each in the answers and the probabilities table), no row empty, no cell
    cut."""
    data = _yaml("README.md", 5)
    assert "steer" not in data and "geometry" not in data  # hf-only settings are commented out there
    for source in data["population"]["sources"]:
        if source["kind"] == "wvs":
            source["n"] = 2
            source["seeds"] = source["seeds"][:1]
        elif source["kind"] in ("named", "file"):
            source["limit"] = 2
    for ref in data["instruments"]:
        if ref.get("n_items"):
            ref["n_items"] = 6  # the smallest size the generator allows (6 topics)
    shutil.copy(REPO / "examples" / "my_instrument.yaml", tmp_path / "my_instrument.yaml")
    shutil.copy(REPO / "examples" / "political_personas.csv", tmp_path / "personas.csv")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(data))
    res = cli_in_process("run", "study.yaml", "--model", "synthetic", "--no-report", "--json", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (summary,) = json.loads(res.stdout)
    assert summary["counts"]["answered"] == summary["counts"]["planned"] > 0
    show, text = cli_at_width(80, "show", summary["run_id"], "--dir", str(tmp_path / data["output"]), cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text  # cells may wrap, none is cut
    assert "right when the truth suits the identity" in " ".join(text.split("headline:")[0].split())  # first
    shown = table_cells(text, 1)  # several contexts: column 0 is the context, 1 the dimension
    from valuescope.design.instruments import load_instrument

    for ref in data["instruments"]:
        if "path" in ref:
            inst = load_instrument(path=tmp_path / ref["path"])
            dims = {inst.item(i).dimension for i in ref["items"]} if "items" in ref else set(inst.dimensions)
        elif ref["name"] == "evidence":
            continue  # evidence items have no scored dimensions: their table is test_tension_run's
        else:
            inst = load_instrument(ref["name"])
            dims = set(inst.dimensions)
        for part in ("answers (hard)", "probabilities (soft)"):
            got = shown[f"headline: {inst.id}, {part}"]
            assert got == dims, (inst.id, part, sorted(got), sorted(dims))
    for line in text.splitlines():  # no row without a number (an empty one is left out, its note says why)
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0]:
            assert any(c not in ("", "–") for c in cells[2:]), line


@pytest.mark.slow  # the demo at a quarter scale and its report, on the synthetic model: ~15 s
def test_readme_python_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = block("README.md", 4)
    call = 'valuescope.run("demo", scale=0.25)'
    assert call in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace(call, call[:-1] + ', model="synthetic", progress=False)'), "README.md", "exec"), scope)
    run = scope["run"]
    assert len(run.responses) == run.counts["answered"] > 0
    assert [r.run_id for r in scope["runs"]] == [run.run_id]  # the store holds this one run
    assert set(scope["table"].columns.get_level_values("run")) == {run.model}  # runs are labelled by model
    assert {"inertia_soft", "rank_order"} <= set(scope["table"].columns.get_level_values("metric"))
    assert (tmp_path / "report").is_dir() and list((tmp_path / "report").glob("*.html"))
    assert scope["fig"].axes


def _filled_norms(path: Path) -> dict:
    """human_norms.md's template with every '...' replaced by a number (the template, not human data)."""
    from valuescope.analysis.metrics.human import load_norms
    from valuescope.design.instruments import load_instrument

    text = block("docs/human_norms.md", 1)
    dims = list(load_instrument("mfq30").dimensions)
    whole = "{" + ", ".join(f"{d}: {2.0 + i / 4}" for i, d in enumerate(dims)) + "}"
    text = text.replace("{...}", whole).replace(": ...", ": 2.5")
    path.write_text(text)
    norms = load_norms(path)
    template = yaml.safe_load(block("docs/human_norms.md", 1).replace("...", "0"))
    assert list(template["groups"]["liberal"]["means"]) == dims  # the template names MFQ-30's foundations
    return norms


@pytest.mark.slow  # a synthetic run of 12 personas and the human metrics' bootstrap: ~10 s
def test_human_norms_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import valuescope

    _filled_norms(tmp_path / "my_norms.yaml")
    monkeypatch.chdir(tmp_path)
    (run,) = valuescope.run({"name": "norms", "output": "results", "instruments": [{"name": "mfq30"}],
                             "population": {"baseline": True,
                                            "sources": [{"kind": "wvs", "n": 6, "seeds": [1], "identity": True}]}},
                            model="synthetic", report=False, progress=False)
    scope = {"run": run}
    exec(compile(block("docs/human_norms.md", 2), "human_norms.md", "exec"), scope)
    rows = scope["rows"]
    distance = rows[rows["metric"] == "human_distance"]
    assert set(distance["dimension"]) == {"liberal", "conservative"}
    assert {"political_gap_r", "political_gap_slope"} <= set(rows["metric"])


# --------------------------------------------------------------------------------------------- instruments


def test_instruments_python_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository (the block's path is relative to it); the list it shows is the list returned."""
    code = block("docs/instruments.md", 1)
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(code, "instruments.md", "exec"), scope)
    shown = re.search(r"list_instruments\(\)\s*#\s*(\[.*\])", code).group(1)
    assert scope["list_instruments"]() == yaml.safe_load(shown)
    assert scope["mfq"].id == "mfq30" and scope["mine"].id == "curiosity_caution"


def test_instrument_scoring_block(tmp_path: Path) -> None:
    """The scoring example names PVQ-RR's dimensions and MFQ-30's catch item: it is applied to pvq_rr.yaml with
    MFQ-30's MATH item added, and every part of it takes effect."""
    from valuescope.design.instruments import load_instrument

    data_dir = REPO / "src" / "valuescope" / "design" / "instruments" / "data"
    pvq = yaml.safe_load((data_dir / "pvq_rr.yaml").read_text())
    mfq = yaml.safe_load((data_dir / "mfq30.yaml").read_text())
    math_item = next(i for i in mfq["items"] if i["id"] == "MATH")
    math_item = {k: v for k, v in math_item.items() if k not in ("part", "text")} | {
        "part": pvq["parts"][0]["id"], "variants": {w: math_item["text"] for w in pvq["wordings"]}}
    pvq["items"].append(math_item)
    pvq["scoring"] = _yaml("docs/instruments.md", 2)["scoring"]
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(pvq))
    inst = load_instrument(path=tmp_path / "mine.yaml")
    assert inst.scoring["centre"] == "mrat"
    assert inst.scoring["levels"]["basic"] == {"Self-Direction": ["SDT", "SDA"], "Power": ["POD", "POR"]}
    assert inst.scoring["catch"][0]["item"] == "MATH" and inst.item("MATH").catch


def test_generated_instruments_block() -> None:
    from valuescope.design.instruments import instrument_for_ref
    from valuescope.study.spec import Study

    code = block("docs/instruments.md", 3)
    study = Study.model_validate(yaml.safe_load(code))
    plain, debiased, dilemmas = (instrument_for_ref(ref) for ref in study.instruments)
    assert len(plain.items) == 24 and "24 tables" in code
    def table(item) -> dict:
        return {k: v for k, v in item.meta.items() if k != "condition"}

    assert [table(i) for i in debiased.items] == [table(i) for i in plain.items]  # "the same tables"
    assert {i.meta["condition"] for i in debiased.items} == {"consider-both-sides"}
    for key, part in plain.parts.items():  # "+ an instruction": the same part, its instructions extended
        extra = debiased.parts[key].instructions.removeprefix(part.instructions)
        assert extra.strip() and debiased.parts[key].scale == part.scale
    assert len(dilemmas.items) == int(re.search(r"# (\d+) fixed items", code).group(1))


# --------------------------------------------------------------------------------------------- personas


def test_population_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """personas.md's population, with its own attribute-space example as my_space.yaml and the example
    persona CSV as personas.jsonl: every source gives what its line says."""
    from valuescope.design.personas import build_population, named_personas
    from valuescope.study.spec import Study

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_space.yaml").write_text(block("docs/personas.md", 2))
    people = pd.read_csv(REPO / "examples" / "political_personas.csv").to_dict("records")
    (tmp_path / "personas.jsonl").write_text("".join(json.dumps(p) + "\n" for p in people))
    study = Study.model_validate(_yaml("docs/personas.md", 1))
    population = build_population(study.population)
    sources = study.population.sources
    expected = 1 + 200 * 3 + 50 + len(named_personas("tolkien")) + min(100, len(people))
    assert len(population) == expected and sources[0].n == 200
    shop = [p for p in population if p.id.startswith("shop-")]
    assert len(shop) == 50 and all("You live in " in p.description for p in shop)
    assert {p.gender for p in shop} <= {"male", "female"} and len({p.gender for p in shop}) == 2
    assert study.contexts.topics == ["none", "joke", "chess", "riddle"] and study.contexts.n_messages == [1, 3, 5]


@pytest.mark.slow  # conversations from a file for a small study on the synthetic model: ~10 s
def test_threads_block(tmp_path: Path) -> None:
    shutil.copy(REPO / "examples" / "threads.jsonl", tmp_path / "threads.jsonl")
    study = _tiny_study(tmp_path / "study.yaml", contexts=_yaml("docs/personas.md", 3)["contexts"])
    res = cli_in_process("run", str(study), "--no-report", "--json", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (summary,) = json.loads(res.stdout)
    assert summary["counts"]["answered"] == summary["counts"]["planned"] > 0


# --------------------------------------------------------------------------------------------- JSON output


def _documented_keys(comment: str) -> list[str]:
    return re.findall(r'"(\w+)"', comment)


@pytest.mark.slow  # one small synthetic run and five CLI calls: ~10 s
def test_cli_json_documented_keys(tmp_path: Path) -> None:
    """python.md's JSON commands give the keys their comments list."""
    lines = block("docs/python.md", 8).splitlines()
    comments = {}
    for line in lines:
        if line.startswith("valuescope "):
            current = line.split("#")[0].split()[1:3]
            comments[" ".join(current)] = line.split("#", 1)[1] if "#" in line else ""
        elif line.strip().startswith("#"):
            comments[" ".join(current)] += line.strip()[1:]
    study = _tiny_study(tmp_path / "study.yaml")
    first = cli_in_process("run", str(study), "--json", "-q", "--no-report")
    second = cli_in_process("run", str(study), "--json", "-q", "--no-report",
                            "-o", str(tmp_path / "results"), "--model", "synthetic")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = json.loads(first.stdout)[0]["run_id"], json.loads(second.stdout)[0]["run_id"]
    results = str(tmp_path / "results")
    ls = json.loads(cli_in_process("ls", results, "--json").stdout)
    assert set(ls[0]) == set(_documented_keys(comments["ls results"]))
    show = json.loads(cli_in_process("show", a, "--dir", results, "--json").stdout)
    documented = _documented_keys(comments["show RUN"])
    assert set(show) == set(documented) - {"metrics"}  # "--all adds metrics"
    full = json.loads(cli_in_process("show", a, "--dir", results, "--json", "--all").stdout)
    assert set(full) == set(documented)
    pair = json.loads(cli_in_process("show", a, b, "--dir", results, "--json").stdout)
    assert set(pair) == set(_documented_keys(comments["show A"]))
    presets = json.loads(cli_in_process("presets", "--json").stdout)
    assert set(presets[0]) == set(_documented_keys(comments["presets --json"]))
