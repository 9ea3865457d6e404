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
