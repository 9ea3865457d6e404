"""A GGUF without a chat template (a base model) runs with the plain documented layout and one warning line."""

from __future__ import annotations

from pathlib import Path

from valuescope.backends.chat_template import ChatTemplate


def test_base_model_gets_the_plain_layout_with_one_warning_line(capsys):
    tpl = ChatTemplate.from_metadata({}, Path("base.gguf"))
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("warning: base.gguf has no chat template")
    text = tpl.render([{"role": "system", "content": "You are Ann."}, {"role": "user", "content": "Q?"},
                       {"role": "assistant", "content": "A."}, {"role": "user", "content": "Q2?"}])
    assert text == "You are Ann.\n\nUser: Q?\n\nAssistant: A.\n\nUser: Q2?\n\nAssistant: "
    assert tpl.system_role
    own = ChatTemplate.from_metadata({"tokenizer.chat_template": "{% for m in messages %}{{ m['content'] }}"
                                      "{% endfor %}"}, Path("chat.gguf"))
    assert capsys.readouterr().err == "" and own.render([{"role": "user", "content": "x"}]) == "x"


def test_persona_files_accept_other_genders_and_pvq_falls_back_to_neutral_wording(tmp_path: Path):
    import pytest

    from valuescope.design.instruments import choose_wording, load_instrument
    from valuescope.design.personas import build_population
    from valuescope.study.spec import SpecError, study_from_dict

    f = tmp_path / "p.jsonl"
    f.write_text('{"description": "You are Sam.", "gender": "Non-binary"}\n'
                 '{"description": "You are Bo.", "gender": "m"}\n{"description": "You are Al."}\n')
    study = study_from_dict({"name": "g", "models": [{"name": "synthetic", "backend": "synthetic"}],
                             "population": {"baseline": False, "sources": [{"kind": "file", "path": str(f)}]}})
    sam, bo, al = build_population(study.population)
    assert (sam.gender, bo.gender, al.gender) == ("non-binary", "male", None)
    pvq = load_instrument(name="pvq40")
    assert [choose_wording(pvq, "auto", p.gender) for p in (sam, bo, al)] == ["first", "male", "male"]
    f.write_text('{"description": "You are X.", "gender": "42"}\n')
    with pytest.raises(SpecError, match="gender must be a word"):
        build_population(study.population)
