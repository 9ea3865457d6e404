"""Issue 13: llama.cpp's AMX extra buffers segfault on Sapphire Rapids and newer Xeons; every place
valuescope loads a GGUF with llama.cpp must turn them off where llama.cpp reports AMX.

The real-model tests elsewhere run on whatever CPU this is; these tests inject llama.cpp's system
report so that the rule is checked on every machine, AMX or not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from valuescope.backends import llama_load
from valuescope.backends.base import BackendError

AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
            "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
            "REPACK = 1 |")
NO_AMX_INFO = AMX_INFO.replace("AMX_INT8 = 1 | ", "")


def test_rule_from_the_system_report():
    assert llama_load.reports_amx(AMX_INFO)
    assert not llama_load.reports_amx(NO_AMX_INFO)
    assert not llama_load.reports_amx("AMX_INT8 = 0 |")
    assert llama_load.use_extra_buffers("auto", AMX_INFO) is False
    assert llama_load.use_extra_buffers("auto", NO_AMX_INFO) is True
    assert llama_load.use_extra_buffers("on", AMX_INFO) is True
    assert llama_load.use_extra_buffers("off", NO_AMX_INFO) is False
    with pytest.raises(ValueError, match="extra_buffers"):
        llama_load.use_extra_buffers("maybe", NO_AMX_INFO)


def test_the_real_system_report_is_read():
    info = llama_load.system_info()
    assert "CPU" in info or "AVX" in info or "NEON" in info
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        cpu_has_amx = "amx_int8" in f.read()
    if llama_load.reports_amx(info):
        assert cpu_has_amx, "llama.cpp reports AMX on a CPU that does not list amx_int8"


@pytest.mark.parametrize(("info", "setting", "expected"), [
    (AMX_INFO, "auto", False), (NO_AMX_INFO, "auto", True), (AMX_INFO, "on", True), (NO_AMX_INFO, "off", False),
])
def test_embedded_backend_builds_the_params_the_rule_says(monkeypatch, info, setting, expected):
    """The params the backend actually loads the model with, with llama.cpp's report injected."""
    from valuescope.backends.llamacpp import LlamaCppBackend
    from valuescope.core.types import Message, ScoreRequest

    if expected and llama_load.reports_amx(llama_load.system_info()):
        pytest.skip("this CPU has AMX: extra buffers on would crash here")
    monkeypatch.setattr(llama_load, "system_info", lambda: info)
    backend = LlamaCppBackend(extra_buffers=setting, n_ctx=512, batch_size=2)
    try:
        assert backend.llama.model_params.use_extra_bufts is expected
        # a model loaded without extra buffers still answers
        req = ScoreRequest(messages=(Message("user", "Pick one. (A) yes (B) no"),), letters=("A", "B"),
                           answer_prefix="Answer: (")
        [s] = backend.score([req])
        assert s.valid and abs(sum(s.probs) - 1) < 1e-9
    finally:
        backend.close()
    # nothing leaks: a plain Llama() afterwards gets llama.cpp's own default again
    import llama_cpp.llama_cpp as lib

    assert lib.llama_model_default_params().use_extra_bufts is True


def test_model_spec_option_and_bad_value():
    from valuescope.study.spec import SpecError, study_from_dict

    study = study_from_dict({"models": [{"name": "m", "extra_buffers": "off"}]})
    assert study.models[0].extra_buffers == "off"
    with pytest.raises(SpecError, match="extra_buffers"):
        study_from_dict({"models": [{"name": "m", "extra_buffers": "sometimes"}]})


def test_answers_with_and_without_extra_buffers_agree(embedded_backend):
    """On a CPU without AMX both settings run; the answers agree (SmolLM2's Q4_1 weights)."""
    from valuescope.backends.llamacpp import LlamaCppBackend
    from valuescope.core.types import Message, ScoreRequest

    if llama_load.reports_amx(llama_load.system_info()):
        pytest.skip("this CPU has AMX: extra buffers on would crash here")
    req = ScoreRequest(messages=(Message("system", "You are a farmer."), Message("user", "Pick. (A) x (B) y (C) z")),
                       letters=("A", "B", "C"), answer_prefix="Answer: (")
    off = LlamaCppBackend(extra_buffers="off", n_ctx=512, batch_size=2)
    try:
        [a] = off.score([req])
    finally:
        off.close()
    [b] = embedded_backend.score([req])
    assert max(abs(x - y) for x, y in zip(a.probs, b.probs, strict=True)) < 0.02


def test_server_launcher_applies_the_rule_in_its_process():
    """``python -m valuescope.backends.llama_server`` patches model loading before llama_cpp.server loads."""
    from valuescope.backends.llama_server import split_args

    assert split_args(["--model", "m.gguf", "--extra-buffers", "off", "--port", "1"]) == (
        "off", ["--model", "m.gguf", "--port", "1"])
    assert split_args(["--extra-buffers=on"]) == ("on", [])
    assert split_args(["--model", "x"]) == ("auto", ["--model", "x"])
    with pytest.raises(SystemExit):
        split_args(["--extra-buffers", "sometimes"])
    code = ("from valuescope.backends import llama_load as L\n"
            f"print(L.patch_globally('auto', info={AMX_INFO!r}))\n"
            "import llama_cpp.llama_cpp as lib\n"
            "print(lib.llama_model_default_params().use_extra_bufts)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]


def test_bad_extra_buffers_is_a_backend_error():
    from valuescope.backends.llamacpp import LlamaCppBackend

    with pytest.raises(BackendError, match="extra_buffers"):
        LlamaCppBackend(extra_buffers="sometimes")
