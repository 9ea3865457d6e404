"""Render chat messages through a model's own chat template (Jinja, as stored in GGUF metadata
under ``tokenizer.chat_template`` or in a Hugging Face tokenizer config)."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from valuescope.backends.base import BackendError
from valuescope.core.types import Message

#: the layout of a model without a chat template (a base model): the system text, then "User: " and
#: "Assistant: " turns separated by blank lines; the answer prefix follows the last "Assistant: "
PLAIN_LAYOUT = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n\n"
    "{% else %}Assistant: {{ m['content'] }}\n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}"
)


class _TemplateRaised(Exception):
    pass


def _raise(message: str) -> None:
    raise _TemplateRaised(message)


@dataclass
class ChatTemplate:
    source: str
    bos_token: str = ""
    eos_token: str = ""
    add_bos: bool = False

    def __post_init__(self) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
        try:
            self._tpl = env.from_string(self.source)
        except TemplateError as exc:
            raise BackendError(f"the model's chat template does not parse: {exc}") from exc
        probe = "\x1esystem-probe\x1e"
        try:
            text = self.render([{"role": "system", "content": probe}, {"role": "user", "content": "hi"}],
                               add_generation_prompt=True)
            self.system_role = probe in text
        except BackendError:
            self.system_role = False

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], model_path: Path) -> ChatTemplate:
        """The GGUF's own template; a base model without one gets :data:`PLAIN_LAYOUT` and one warning line
        on stderr."""
        source = metadata.get("tokenizer.chat_template")
        add_bos = str(metadata.get("tokenizer.ggml.add_bos_token", "false")) == "true"
        if not source:
            print(f"warning: {model_path} has no chat template (a base model?): prompts use the plain layout "
                  "(the system text, then 'User: ' and 'Assistant: ' turns; docs/backends.md)", file=sys.stderr)
            return cls(source=PLAIN_LAYOUT, add_bos=add_bos)
        return cls(source=source, add_bos=add_bos)

    @property
    def stop(self) -> list[str]:
        stops = ["<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>", "<|end|>"]
        return [s for s in stops if s in self.source] + ([self.eos_token] if self.eos_token else [])

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        try:
            return self._tpl.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except _TemplateRaised as exc:
            raise BackendError(f"the model's chat template refused the messages: {exc}") from exc
        except TemplateError as exc:
            raise BackendError(f"the model's chat template failed: {exc}") from exc


def render_prompt(template: ChatTemplate, messages: Sequence[Message], answer_prefix: str = "") -> str:
    """Chat-rendered prompt text with the assistant turn opened and ``answer_prefix`` after it,
    exactly as the embedded backend renders it (the tokenizer adds BOS where the model wants one)."""
    return template.render([m.as_dict() for m in messages], add_generation_prompt=True) + answer_prefix


def load_chat_template(path: str | Path) -> ChatTemplate:
    """The chat template of a GGUF file or an HF model directory (``tokenizer_config.json``).

    Used by the HTTP backends to render a prompt exactly as the served model would."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        from valuescope.backends.llama_load import load_llama

        llm = load_llama(str(p), vocab_only=True, verbose=False)
        try:
            return ChatTemplate.from_metadata(llm.metadata, p)
        finally:
            llm.close()
    cfg = p / "tokenizer_config.json" if p.is_dir() else p
    if not (cfg.is_file() and cfg.suffix == ".json"):
        raise BackendError(f"{p}: expected a .gguf file, an HF model directory or a tokenizer_config.json")
    data = json.loads(cfg.read_text(encoding="utf-8"))
    source = data.get("chat_template")
    jinja = cfg.parent / "chat_template.jinja"
    if not source and jinja.is_file():
        source = jinja.read_text(encoding="utf-8")
    if isinstance(source, list):  # named templates: take "default"
        source = next((t["template"] for t in source if t.get("name") == "default"), None)
    if not source:
        raise BackendError(f"{cfg}: no chat_template")

    def tok(v: object) -> str:
        return str(v.get("content", "")) if isinstance(v, dict) else str(v or "")

    return ChatTemplate(source=source, bos_token=tok(data.get("bos_token")), eos_token=tok(data.get("eos_token")),
                        add_bos=bool(data.get("add_bos_token", False)))
