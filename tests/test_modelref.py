"""Short model references for `run --model` / `judge-eval --judge` / valuescope.run(model=...)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import yaml
from helpers import cli_in_process, embedded_gguf

from valuescope.study.modelref import parse_model
from valuescope.study.spec import SpecError


def test_gguf_path(tmp_path):
    gguf = embedded_gguf()
    m = parse_model(str(gguf))
    assert (m.backend, m.path, m.name) == ("llamacpp", str(gguf.resolve()), gguf.stem)


def test_hf_forms(tmp_path):
    m = parse_model("hf:HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (m.backend, m.path, m.name) == ("hf", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct")
    d = tmp_path / "my-model"
    d.mkdir()
    m = parse_model(f"hf:{d}")
    assert (m.backend, m.path, m.name) == ("hf", str(d.resolve()), "my-model")
    gguf = embedded_gguf()
    m = parse_model(f"hf:{gguf}")
    assert (m.backend, m.path) == ("hf", str(gguf.resolve()))


def test_openai_forms():
    m = parse_model("openai:http://127.0.0.1:8000/v1")
    assert (m.backend, m.base_url, m.model, m.name) == ("openai", "http://127.0.0.1:8000/v1", None, "127.0.0.1:8000")
    m = parse_model("openai:http://127.0.0.1:8000/v1@Qwen/Qwen2.5-7B-Instruct")
    assert (m.base_url, m.model, m.name) == ("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct",
                                            "Qwen2.5-7B-Instruct")
    m = parse_model("openai:https://api.example.com/v1/@gpt-4o-mini")
    assert (m.base_url, m.model) == ("https://api.example.com/v1", "gpt-4o-mini")


def test_key_value_form_unchanged():
    m = parse_model("backend=openai,base_url=http://h:1/v1,model=qwen,name=q,concurrency=2")
    assert (m.backend, m.base_url, m.model, m.name, m.concurrency) == ("openai", "http://h:1/v1", "qwen", "q", 2)


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("hf:", "give a model after 'hf:'"),
        ("hf:./no/such/dir", "no such directory"),
        ("hf:not a hub id", "ORG/NAME"),
        ("openai:", "expected openai:http://HOST:PORT/v1"),
        ("openai:localhost:8000", "expected openai:http://HOST:PORT/v1"),
        ("openai:http://h:1/v1@", "empty model name"),
        ("vllmm:foo", "unknown model prefix 'vllmm:'"),
        ("missing.gguf", "no such model file 'missing.gguf'"),
        ("backend=openai,oops", "expected key=value, got 'oops'"),
        ("backend=telepathy", "field 'models.0.backend'"),
        ("", "empty model reference"),
        ("synthetic:", "no such synthetic model spec file"),
        ("synthetic:nope.yaml", "no such synthetic model spec file 'nope.yaml'"),
    ],
)
def test_malformed_references_are_one_line(option, needle, tmp_path):
    with pytest.raises(SpecError) as exc:
        parse_model(option)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg and msg.startswith("--model")


def test_directory_needs_hf_prefix(tmp_path):
    with pytest.raises(SpecError, match="hf:"):
        parse_model(str(tmp_path))


def vs(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "valuescope", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_malformed_model_exit_2(tmp_path):
    # in process (issue 28: no interpreter start); the entry point as a process: test_hf_hub_id_offline_is_one_line
    res = cli_in_process("run", "--model", "openai:localhost", cwd=tmp_path)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "openai:http://HOST:PORT/v1" in lines[0]
    assert not (tmp_path / "valuescope-results").exists()


def test_hf_hub_id_offline_is_one_line(tmp_path, monkeypatch):
    """A process of its own: huggingface_hub reads HF_HUB_OFFLINE when it is imported."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("the hf extra (torch, transformers) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-cache"))
    res = vs("run", "--model", "hf:valuescope-test/no-such-model", "-q", "--no-report", cwd=tmp_path)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "hf backend could not load valuescope-test/no-such-model" in lines[0]


@pytest.mark.slow  # a real llama.cpp server
def test_openai_short_form_runs_against_a_real_server(llama_server, tmp_path):
    base, _ = llama_server
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({
        "name": "short", "output": str(tmp_path / "out"),
        "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED"]}],
        "population": {"baseline": True, "sources": []},
        "option_order": "permute-persona"}))  # one order per condition: the counts below
    res = cli_in_process("run", str(study), "--model", f"openai:{base}", "--json", "-q", "--no-report")
    assert res.returncode == 0, res.stderr
    import json

    (summary,) = json.loads(res.stdout)
    host = base.split("//")[1].split("/")[0]
    assert summary["model"] == host and summary["session"]["new"] == 2 and summary["counts"]["answered"] == 2


def test_synthetic_forms(tmp_path):
    m = parse_model("synthetic")
    assert (m.backend, m.name, m.path) == ("synthetic", "synthetic", None)
    spec = tmp_path / "truth.yaml"
    spec.write_text("seed: 3\n")
    m = parse_model(f"synthetic:{spec}")
    assert (m.backend, m.name, m.path) == ("synthetic", "truth", str(spec.resolve()))


def test_synthetic_short_form_runs(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({
        "name": "syn", "output": str(tmp_path / "out"),
        "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED"]}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 2, "seeds": [111]}]},
        "option_order": "permute-persona"}))  # one order per condition: the counts below
    res = cli_in_process("run", str(study), "--model", "synthetic", "--json", "-q", "--no-report")
    assert res.returncode == 0, res.stderr
    import json

    (summary,) = json.loads(res.stdout)
    assert summary["model"] == "synthetic" and summary["session"]["new"] == 6 == summary["counts"]["answered"]
