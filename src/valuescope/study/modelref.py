"""Model references on the command line (``run --model``, ``judge-eval --judge``) and in ``valuescope.run``.

Accepted forms (each becomes one :class:`valuescope.study.spec.ModelSpec`):

- ``path/to/model.gguf`` (any existing file): the embedded llama.cpp backend on that GGUF;
- ``hf:ORG/NAME`` or ``hf:/a/local/dir`` (or ``hf:file.gguf``): the transformers backend;
- ``openai:http://host:port/v1`` or ``openai:http://host:port/v1@MODEL``: an OpenAI-compatible
  server (without ``@MODEL``, the first model the server lists); the model is what follows the last ``@``;
- ``synthetic`` or ``synthetic:SPEC.yaml``: the synthetic known-truth model (its defaults, or the spec file);
- ``key=value,key=value``: the fields of a model block, e.g. ``backend=openai,base_url=...,model=qwen,name=qwen``.

A malformed reference is a :class:`~valuescope.study.spec.SpecError` with one line naming the flag.
"""

from __future__ import annotations

import re
from pathlib import Path

from valuescope.study.spec import ModelSpec, SpecError, study_from_dict

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FORMS = "a .gguf path, hf:ORG/NAME, hf:DIR, openai:URL[@MODEL], synthetic[:SPEC.yaml] or key=value,..."


def _spec(fields: dict[str, object], flag: str) -> ModelSpec:
    return study_from_dict({"models": [fields]}, source=flag).models[0]


def _hf(rest: str, flag: str, option: str) -> ModelSpec:
    if not rest:
        raise SpecError(f"{flag}: {option!r}: give a model after 'hf:' (ORG/NAME or a local directory)")
    p = Path(rest).expanduser()
    if p.exists():
        if not (p.is_dir() or p.suffix == ".gguf"):
            raise SpecError(f"{flag}: {option!r}: {p} is neither a model directory nor a .gguf file")
        resolved = p.resolve()
        return _spec({"name": resolved.stem if resolved.is_file() else resolved.name, "backend": "hf",
                      "path": str(resolved)}, flag)
    if rest.startswith(("/", ".", "~")) or not _HUB_ID.fullmatch(rest):
        raise SpecError(f"{flag}: {option!r}: no such directory, and not a Hugging Face id of the form ORG/NAME")
    return _spec({"name": rest.split("/")[-1], "backend": "hf", "path": rest}, flag)


def _openai(rest: str, flag: str, option: str) -> ModelSpec:
    if not re.match(r"https?://[^/@\s]+", rest):
        raise SpecError(f"{flag}: {option!r}: expected openai:http://HOST:PORT/v1 or openai:http://HOST:PORT/v1@MODEL")
    scheme_end = rest.index("://") + 3
    at = rest.rfind("@")
    base_url, model = (rest[:at], rest[at + 1:]) if at >= scheme_end else (rest, None)
    if model is not None and not model.strip():
        raise SpecError(f"{flag}: {option!r}: empty model name after '@'")
    host = re.sub(r"^https?://", "", base_url).split("/")[0]
    name = model.split("/")[-1] if model else host
    fields: dict[str, object] = {"name": name, "backend": "openai", "base_url": base_url.rstrip("/")}
    if model:
        fields["model"] = model
    return _spec(fields, flag)


def _synthetic(rest: str, has_colon: bool, flag: str, option: str) -> ModelSpec:
    if not has_colon:
        return _spec({"name": "synthetic", "backend": "synthetic"}, flag)
    p = Path(rest).expanduser()
    if not rest or not p.is_file():
        raise SpecError(f"{flag}: {option!r}: no such synthetic model spec file {rest!r}")
    return _spec({"name": p.stem, "backend": "synthetic", "path": str(p.resolve())}, flag)


def parse_model(option: str, flag: str = "--model") -> ModelSpec:
    """A model reference (see the module docstring) -> a validated model block."""
    option = option.strip()
    if not option:
        raise SpecError(f"{flag}: empty model reference (give {_FORMS})")
    prefix, _, rest = option.partition(":")
    if prefix == "hf" and _:
        return _hf(rest.strip(), flag, option)
    if prefix == "openai" and _:
        return _openai(rest.strip(), flag, option)
    if prefix == "synthetic":
        return _synthetic(rest.strip(), bool(_), flag, option)
    if "=" in option:
        fields: dict[str, object] = {}
        for pair in option.split(","):
            if "=" not in pair:
                raise SpecError(f"{flag}: expected key=value, got {pair!r}")
            k, v = pair.split("=", 1)
            fields[k.strip()] = v.strip()
        return _spec(fields, flag)
    p = Path(option).expanduser()
    if p.is_file():
        return ModelSpec(name=p.stem, backend="llamacpp", path=str(p.resolve()))
    if p.is_dir():
        raise SpecError(f"{flag}: {option!r} is a directory; for a Hugging Face model directory write hf:{option}")
    if re.fullmatch(r"[a-z]+", prefix) and _ and not p.suffix == ".gguf":
        raise SpecError(f"{flag}: unknown model prefix {prefix + ':'!r} (give {_FORMS})")
    raise SpecError(f"{flag}: no such model file {option!r} (give {_FORMS})")
