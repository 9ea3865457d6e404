"""Conversations before the questionnaire (Kovač et al. 2024, section 2 and appendix A).

Procedure (:func:`simulate_conversation`):

1. The persona model gets the persona messages (:func:`valuescope.design.personas.persona_messages`;
   none for the baseline).
2. The interlocutor is the same backend, instructed "You are simulating a human using a chatbot.
   Your every reply must be in one sentence only.", with "The chatbot is pretending to be
   {name}." as the second sentence when the persona has a name.
3. The interlocutor's first message is the topic's fixed opening (:data:`TOPICS`).
4. The two exchange ``n`` generated messages, persona model first: generated message 1, 3, 5, ...
   is the persona model's, 2, 4, ... the interlocutor's. As in the paper ("n = 3 messages, not
   including the manually set first and last interlocutor's messages") ``n`` counts neither the
   fixed opening nor the questionnaire item that follows, and must be odd so that the last
   generated message is the persona model's and the item comes next as a user message.
   The conversation therefore holds ``n + 1`` messages, user first, roles alternating.
5. Each side sees the conversation from its own seat: for the interlocutor the roles are swapped
   (its own messages are ``assistant``, the persona model's are ``user``). Without a system role
   the persona goes in a user message followed by "OK", and the interlocutor's instruction is a
   user message its opening answers. With a system role the interlocutor's history starts
   ``system, user(""), assistant(opening)``: the empty user turn keeps roles alternating, as in
   the authors' code (``fix_alternating_msg_order``).

Replies are cleaned: a leading role label ("User:", "Gandalf:", "HUMAN:") is removed, text after
a line that starts a new labelled turn is dropped, and the interlocutor's reply is cut to its
first sentence. Sampling uses ``temperature`` (default 0.6, the authors' value for open models)
and ``seed = ctx.seed`` for every turn, so a conversation is deterministic given its seed on a
deterministic backend. A conversation is generated once per (model, persona, topic, n, seed) and
stored by the runner under :func:`conversation_key`.

Real conversations (``contexts.files``, :func:`read_threads`): a JSONL file, one conversation per
line, either a list of ``{"role": "user"|"assistant", "content": ...}`` messages (user first, roles
alternating) or a list of plain text turns (read as user, assistant, user, ...). ``n_messages``
counts as for a topic: the messages after the first user message, odd, so the prompt holds the
thread's first ``n + 1`` turns and ends with an assistant turn before the questionnaire item. Each
line is one context labelled ``<file stem>#<line>@<n>``; ``contexts.threads`` samples that many lines
per file with the study seed. Nothing is generated: the thread's turns are stored as the
conversation, under a key that covers their text, and the run id covers each file's content
(:func:`valuescope.study.identity.threads_digest`), so an edited file is a new run.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuescope.core.capabilities import capabilities
from valuescope.core.types import ContextSpec, GenerateRequest, Message, Persona
from valuescope.design.personas import persona_messages
from valuescope.study.spec import ContextsSpec, SpecError

# Openings of Kovač et al. (2024), appendix A.3 (straight apostrophes, as in the authors' code;
# their code also has " \n " between the two grammar sentences, the paper a space).
TOPICS: dict[str, str] = {
    "poem": "Hello, let's write a poem together. You start by the first verse I'll add the second one, "
            "and so on.",
    "joke": "Tell me a joke.",
    "history": "What is the significance of the battle of Hastings. Answer in two sentences.",
    "chess": "1. e4",
    "grammar": "Can you check this sentence for grammar? Whilst Jane was waiting to meet hers friend "
               "their nose started bleeding.",
}
INTERLOCUTOR_ROLE = "You are simulating a human using a chatbot."
INTERLOCUTOR_NAME = "The chatbot is pretending to be {name}."
INTERLOCUTOR_RULE = "Your every reply must be in one sentence only."
INTERLOCUTOR_PRIMER = ""  # the user turn between the interlocutor's system message and its opening
DEFAULT_TEMPERATURE = 0.6
PROCEDURE = "kovac2024-v1"  # part of every conversation key; bump when the procedure changes

_LABELS = {"user", "human", "assistant", "chatbot", "bot", "ai", "system", "me", "you", "interlocutor"}
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "prof", "mt", "no"}
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")


# --------------------------------------------------------------------------- contexts


def topics_with(custom: dict[str, str]) -> dict[str, str]:
    """Built-in topics plus a study's ``custom_topics`` (which may not replace a built-in one)."""
    out = dict(TOPICS)
    for name, opening in custom.items():
        where = f"contexts.custom_topics.{name}"
        if not name or name == "none" or "@" in name or name != name.strip():
            raise SpecError(f"{where}: a topic name must be non-empty, not 'none', without '@'")
        if name in TOPICS:
            raise SpecError(f"{where}: '{name}' is a built-in topic; give your topic another name")
        if not isinstance(opening, str) or not opening.strip():
            raise SpecError(f"{where}: the opening message must be a non-empty text")
        out[name] = opening
    return out


MAX_THREADS_BYTES = 50_000_000
_ROLES = ("user", "assistant")


def _thread_turns(item: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(item, list) or not item:
        raise SpecError(f"{where}: a conversation must be a non-empty JSON list of messages or text turns")
    if all(isinstance(t, str) for t in item):
        turns = [(_ROLES[i % 2], t) for i, t in enumerate(item)]
    elif all(isinstance(t, dict) for t in item):
        turns = []
        for i, t in enumerate(item):
            if set(t) != {"role", "content"} or not isinstance(t["content"], str):
                raise SpecError(f"{where}: message {i + 1} must be {{\"role\": ..., \"content\": text}}")
            turns.append((t["role"], t["content"]))
    else:
        raise SpecError(f"{where}: mix of messages and plain text turns; use one or the other")
    for i, (role, text) in enumerate(turns):
        if role != _ROLES[i % 2]:
            raise SpecError(f"{where}: message {i + 1} has role {role!r}, expected {_ROLES[i % 2]!r} "
                            f"(user first, roles alternating)")
        if not text.strip():
            raise SpecError(f"{where}: message {i + 1} is empty")
    return tuple(turns)


def read_threads(path: str) -> list[tuple[int, tuple[tuple[str, str], ...]]]:
    """``(line number, turns)`` per non-blank line of a conversations file; one-line errors with the
    line number for a malformed line."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"contexts.files: conversations file not found: {p}")
    if p.stat().st_size > MAX_THREADS_BYTES:
        raise SpecError(f"{p}: conversations file is larger than {MAX_THREADS_BYTES // 1_000_000} MB")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{p} line {number}: not JSON ({exc.msg}, column {exc.colno})") from None
        out.append((number, _thread_turns(item, f"{p} line {number}")))
    if not out:
        raise SpecError(f"{p}: no conversations in the file")
    return out


def thread_contexts(spec: ContextsSpec, seed: int) -> list[ContextSpec]:
    """One context per (conversation, n) of every file in ``spec.files``."""
    out: list[ContextSpec] = []
    for path in spec.files:
        threads = read_threads(path)
        if spec.threads is not None and spec.threads < len(threads):
            picked = sorted(random.Random(f"{seed}:{Path(path).name}").sample(range(len(threads)), spec.threads))
            threads = [threads[i] for i in picked]
        for number, turns in threads:
            for n in spec.n_messages:
                if n < 1 or n % 2 == 0:
                    raise SpecError(f"contexts.n_messages: {n} is not allowed with a conversations file: n "
                                    f"counts the messages after the first user message and must be odd")
                if len(turns) < n + 1:
                    raise SpecError(f"{path} line {number}: {len(turns)} messages, contexts.n_messages {n} "
                                    f"needs at least {n + 1}")
                out.append(ContextSpec(topic=f"{Path(path).stem}#{number}", n_messages=n, seed=seed,
                                       thread=turns[: n + 1]))
    return out


def context_specs(spec: ContextsSpec, seed: int) -> list[ContextSpec]:
    """One context per (topic, n) in the spec's order, then one per (conversation, n) of the
    conversations files; "none" gives ``ContextSpec()`` (no conversation) once, whatever the
    lengths. Duplicates are dropped. With files, ``topics`` left at its default ["none"] adds no
    context-free one."""
    topics = topics_with(spec.custom_topics)
    out: list[ContextSpec] = []
    for topic in spec.topics:
        if topic == "none":
            candidates = [ContextSpec()]
        elif topic not in topics:
            raise SpecError(f"contexts.topics: unknown topic {topic!r}; known: none, "
                            f"{', '.join(topics)} (add your own under contexts.custom_topics)")
        else:
            for n in spec.n_messages:
                if n < 1 or n % 2 == 0:
                    raise SpecError(f"contexts.n_messages: {n} is not allowed with a topic: n counts "
                                    f"the generated messages, persona model first, and must be odd "
                                    f"(1, 3, 5, ...)")
            candidates = [ContextSpec(topic=topic, opening=topics[topic], n_messages=n, seed=seed)
                          for n in spec.n_messages]
        for c in candidates:
            if c not in out:
                out.append(c)
    if spec.files:
        if "topics" not in spec.model_fields_set:
            out = []
        out += [c for c in thread_contexts(spec, seed) if c not in out]
    return out


def conversation_key(model: str, persona: Persona, ctx: ContextSpec, **settings: Any) -> str:
    """Stable hash of everything that defines a conversation: the procedure version, the model,
    the persona (id, text, name), topic, opening, length, seed, and any generation ``settings``
    (e.g. ``max_tokens=96``) the caller passes."""
    payload = {
        "procedure": PROCEDURE,
        "model": model,
        "persona": [persona.id, persona.description, persona.name],
        "context": [ctx.topic, ctx.opening, ctx.n_messages, ctx.seed],
        "settings": settings,
    }
    if ctx.thread:  # a real conversation: its text (an edited file is another conversation)
        payload["thread"] = [list(t) for t in ctx.thread]
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


# --------------------------------------------------------------------------- text cleaning


def _labels_for(persona: Persona) -> set[str]:
    labels = set(_LABELS)
    if persona.name:
        name = persona.name.lower()
        labels |= {name, f"{name} (chatbot)", f"{name}(chatbot)"}
    return labels


def strip_role_prefix(text: str, labels: set[str]) -> str:
    """Drop leading "Label:" prefixes (case-insensitive, optionally in ** or []) and anything
    after a later line that starts a new labelled turn."""
    text = text.strip()
    while True:
        m = re.match(r"^[\*\[\s]*([^:\n]{1,40}?)[\*\]\s]*:[\*\]]*\s*", text)
        if not m or m.group(1).strip().lower() not in labels:
            break
        text = text[m.end():].strip()
    for m in re.finditer(r"\n[\*\[\s]*([^:\n]{1,40}?)[\*\]\s]*:", text):
        if m.group(1).strip().lower() in labels:
            return text[: m.start()].strip()
    return text


def first_sentence(text: str) -> str:
    """The first sentence of the first non-empty line. A full stop after a number ("1. e4"),
    a single letter ("J. R. R.") or a common abbreviation ("Mr.") does not end a sentence."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for m in _SENTENCE_END.finditer(line):
        if m.group().startswith("."):
            before = line[: m.start()].split()
            word = before[-1].lower().lstrip("(\"'") if before else ""
            if word.isdigit() or (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS:
                continue
        return line[: m.end()].strip()
    return line


def _clean(text: str, persona: Persona, interlocutor: bool) -> str:
    text = strip_role_prefix(text, _labels_for(persona))
    if interlocutor:
        text = first_sentence(text)
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1].strip()
    return text


# --------------------------------------------------------------------------- simulation


def interlocutor_instruction(persona: Persona) -> str:
    parts = [INTERLOCUTOR_ROLE]
    if persona.name:
        parts.append(INTERLOCUTOR_NAME.format(name=persona.name))
    parts.append(INTERLOCUTOR_RULE)
    return " ".join(parts)


def _alternate(texts: Sequence[str], first: str) -> list[Message]:
    second = "assistant" if first == "user" else "user"
    return [Message(first if i % 2 == 0 else second, t) for i, t in enumerate(texts)]  # type: ignore[arg-type]


def turn_messages(persona: Persona, texts: Sequence[str], system_role: bool) -> list[Message]:
    """The prompt for the next generated message of a conversation whose messages so far are
    ``texts`` (the fixed opening first). An odd number of texts means the persona model speaks."""
    if len(texts) % 2 == 1:
        return persona_messages(persona, system_role) + _alternate(texts, "user")
    instruction = interlocutor_instruction(persona)
    if system_role:
        head = [Message("system", instruction), Message("user", INTERLOCUTOR_PRIMER)]
    else:
        head = [Message("user", instruction)]
    return head + _alternate(texts, "assistant")


def _opening(ctx: ContextSpec) -> str:
    if ctx.opening:
        return ctx.opening
    if ctx.topic in TOPICS:
        return TOPICS[ctx.topic]
    raise SpecError(f"context {ctx.label}: no opening message for topic {ctx.topic!r}")


def simulate_conversations(
    backend: Any,
    jobs: Sequence[tuple[Persona, ContextSpec]],
    *,
    system_role: bool | None = None,
    max_tokens: int = 96,
    temperature: float = DEFAULT_TEMPERATURE,
) -> list[tuple[Message, ...]]:
    """Simulate several conversations in lockstep: one ``backend.generate`` batch per turn.

    Returns, per job, the messages to put between the persona messages and the questionnaire
    item: ``user(opening), assistant, user, ..., assistant`` (``n + 1`` messages); ``()`` for a
    context without a topic. ``system_role=None`` asks the backend (its declared
    :func:`~valuescope.core.capabilities.capabilities`)."""
    if system_role is None:
        system_role = capabilities(backend).system_role
    convs: list[list[str]] = []
    for _, ctx in jobs:
        if ctx.topic is None or ctx.thread:
            convs.append([text for _, text in ctx.thread])  # a real conversation: nothing to generate
            continue
        if ctx.n_messages < 1 or ctx.n_messages % 2 == 0:
            raise SpecError(f"context {ctx.label}: the number of generated messages must be odd")
        convs.append([_opening(ctx)])
    longest = max((ctx.n_messages for _, ctx in jobs if ctx.topic is not None and not ctx.thread), default=0)
    for turn in range(1, longest + 1):
        active = [i for i, (_, ctx) in enumerate(jobs)
                  if ctx.topic is not None and not ctx.thread and ctx.n_messages >= turn]
        requests = [
            GenerateRequest(messages=tuple(turn_messages(jobs[i][0], convs[i], system_role)),
                            max_tokens=max_tokens, temperature=temperature, seed=jobs[i][1].seed)
            for i in active
        ]
        replies = backend.generate(requests)
        if len(replies) != len(requests):
            raise RuntimeError(f"backend returned {len(replies)} generations for {len(requests)} requests")
        for i, reply in zip(active, replies, strict=True):
            convs[i].append(_clean(reply, jobs[i][0], interlocutor=turn % 2 == 0))
    return [tuple(_alternate(texts, "user")) for texts in convs]


def simulate_conversation(
    backend: Any,
    persona: Persona,
    ctx: ContextSpec,
    *,
    system_role: bool | None = None,
    max_tokens: int = 96,
    temperature: float = DEFAULT_TEMPERATURE,
) -> tuple[Message, ...]:
    """One conversation (see the module docstring); ``()`` when ``ctx`` has no topic."""
    return simulate_conversations(backend, [(persona, ctx)], system_role=system_role,
                                  max_tokens=max_tokens, temperature=temperature)[0]
