from __future__ import annotations

from collections import Counter

from helpers import tiny_instrument

from valuescope.core.types import BASELINE, ContextSpec, Persona
from valuescope.design.plan import PlannedInstrument, item_order, option_order, plan_queries, prefix_group, run_id_for
from valuescope.study.spec import InstrumentRef, ModelSpec, Study


def _personas(n: int = 3) -> list[Persona]:
    return [BASELINE] + [Persona(id=f"p{i}", kind="text", description=f"You are person {i}.") for i in range(n)]


def _plan(**study_kw):
    study_kw.setdefault("option_order", "permute-persona")  # these counts and keys were pinned under it
    study = Study(**study_kw)
    inst = tiny_instrument()
    planned = [PlannedInstrument(inst, InstrumentRef(name="tiny"))]
    return study, plan_queries(study, study.models[0], _personas(), [ContextSpec()], planned, lambda i, r, g: None)


def test_counts_and_unique_keys():
    study, qs = _plan(repeats=2)
    assert len(qs) == 4 * 2 * 3  # (baseline + 3 personas) x repeats x items
    assert len({q.key for q in qs}) == len(qs)


def test_keys_are_stable_across_plans():
    _, a = _plan(repeats=2)
    _, b = _plan(repeats=2)
    assert [q.key for q in a] == [q.key for q in b]
    # a hard-coded key: the same study must give the same key on any machine / Python version
    assert a[0].key == "e5c154a377101929fffabaad6902f6ea"


def test_keys_change_with_what_defines_the_query():
    _, base = _plan()
    _, other_seed = _plan(seed=1)
    _, free = _plan(forced_choice=False)
    assert {q.key for q in base}.isdisjoint({q.key for q in other_seed})
    assert {q.key for q in base}.isdisjoint({q.key for q in free})


def test_run_id_ignores_output_but_not_settings():
    a = Study(output="x")
    assert run_id_for(a, a.models[0]) == run_id_for(Study(output="y"), a.models[0])
    assert run_id_for(a, a.models[0]) != run_id_for(Study(seed=5), a.models[0])


def test_option_order_policies():
    assert option_order(6, "fixed", 0, "p", 0, "i") == (0, 1, 2, 3, 4, 5)
    per_persona = {option_order(6, "permute-persona", 0, "p", 0, item) for item in "abcdef"}
    assert len(per_persona) == 1  # shared by every item of the persona
    per_query = {option_order(6, "permute-query", 0, "p", 0, item) for item in "abcdefgh"}
    assert len(per_query) > 1
    assert sorted(next(iter(per_persona))) == list(range(6))
    # seeded, with a fixed expected value (random.Random + SHA-256: identical on any platform)
    assert option_order(6, "permute-persona", 0, "p", 0, "i") == (4, 3, 1, 5, 2, 0)


def test_permutations_are_roughly_uniform():
    firsts = Counter(option_order(4, "permute-persona", 0, f"p{i}", 0, "x")[0] for i in range(4000))
    assert all(900 < c < 1100 for c in firsts.values()), firsts


def test_item_shuffle_per_persona():
    assert item_order(5, "fixed", 0, "p", 0, "mfq") == [0, 1, 2, 3, 4]
    a = item_order(30, "shuffle", 0, "p1", 0, "mfq")
    b = item_order(30, "shuffle", 0, "p2", 0, "mfq")
    assert sorted(a) == list(range(30)) and a != b
    assert a == item_order(30, "shuffle", 0, "p1", 0, "mfq")


def test_plan_order_keeps_prefix_groups_contiguous():
    _, qs = _plan(repeats=2)
    groups = [prefix_group(q) for q in qs]
    seen: list[str] = []
    for g in groups:
        if not seen or seen[-1] != g:
            assert g not in seen, "a prefix group was split"
            seen.append(g)


def test_model_identity_in_key():
    study, a = _plan()
    other = Study(models=[ModelSpec(name="other")])
    b = plan_queries(other, other.models[0], _personas(), [ContextSpec()],
                     [PlannedInstrument(tiny_instrument(), InstrumentRef(name="tiny"))], lambda i, r, g: None)
    assert {q.key for q in a}.isdisjoint({q.key for q in b})


# --------------------------------------------------------------------------- balanced option orders


def _wvs(n: int, population: str = "wvs:seed=111") -> list[Persona]:
    return [Persona(id=f"w{i}", kind="wvs", description=f"You are person {i}.", population=population, set_seed=111)
            for i in range(n)]


def test_balanced_orders_form_latin_squares():
    from valuescope.design.plan import balanced_orders

    orders = balanced_orders(6, None, 0)
    assert len(orders) == 6 and len(set(orders)) == 6
    for order in orders:
        assert sorted(order) == list(range(6))
    for letter in range(6):  # every option under every letter exactly once
        assert sorted(o[letter] for o in orders) == list(range(6))
    inverse = [tuple(o.index(i) for i in range(6)) for o in orders]
    assert sum(inv != o for inv, o in zip(inverse, orders, strict=True)) >= 4  # mostly not self-inverse
    assert balanced_orders(6, None, 0) == orders  # seeded, platform-independent
    assert orders[0] == (5, 4, 3, 0, 1, 2)
    twelve = balanced_orders(6, 12, 0)
    assert twelve[:6] == orders and twelve[6:] != orders
    for letter in range(6):
        assert sorted(o[letter] for o in twelve) == sorted(list(range(6)) * 2)
    assert len(balanced_orders(4, 3, 0)) == 3


def test_rotation_balances_each_population_and_changes_with_context():
    from valuescope.design.plan import rotation

    people = [BASELINE, *_wvs(12), *_wvs(7, "wvs:seed=333")]
    a = rotation(people, ContextSpec(), 0, 0)
    assert a[0] == -1
    first = Counter(n % 6 for n in a[1:13])
    assert sorted(first.values()) == [2] * 6
    second = Counter(n % 6 for n in a[13:])
    assert max(second.values()) - min(second.values()) <= 1
    joke = rotation(people, ContextSpec(topic="joke", opening="Tell me a joke.", n_messages=3), 0, 0)
    chess = rotation(people, ContextSpec(topic="chess", opening="1. e4", n_messages=3), 0, 0)
    assert [n % 6 for n in joke] != [n % 6 for n in chess]
    assert rotation(people, ContextSpec(), 1, 0) != a  # a new draw per repeat
    assert rotation(people, ContextSpec(), 0, 0) == a


def _plan_balanced(personas, contexts=None, **kw):
    contexts = contexts or [ContextSpec()]
    study = Study(option_order="balanced", **kw)
    inst = tiny_instrument(4)
    planned = [PlannedInstrument(inst, InstrumentRef(name="tiny"))]
    return plan_queries(study, study.models[0], personas, list(contexts), planned, lambda i, r, g: None)


def test_balanced_plan_asks_the_baseline_under_every_order_a_persona_gets():
    qs = _plan_balanced([BASELINE, *_wvs(8)])
    base = [q for q in qs if q.persona.is_baseline]
    pers = [q for q in qs if not q.persona.is_baseline]
    assert len(base) == 4 * 4 and len(pers) == 8 * 4  # K = 4 options: 4 orders for the baseline
    assert len({q.key for q in qs}) == len(qs)
    base_cells = {(q.item_id, q.option_order) for q in base}
    assert {(q.item_id, q.option_order) for q in pers} <= base_cells  # like for like
    per_persona = {p.id: {q.option_order for q in pers if q.persona.id == p.id} for p in _wvs(8)}
    assert all(len(v) == 1 for v in per_persona.values())  # one order per questionnaire
    assert Counter(next(iter(v)) for v in per_persona.values()).most_common()[0][1] == 2  # 8 personas, 4 orders
    assert {q.cell for q in base} == {0, 1, 2, 3}


def test_balanced_orders_are_not_tied_to_the_persona_across_contexts():
    contexts = [ContextSpec(topic=t, opening="Hi.", n_messages=1) for t in ("a", "b", "c", "d")]
    qs = _plan_balanced(_wvs(24), contexts)
    cell = {(q.persona.id, q.context.topic): q.cell for q in qs}
    same = [sum(cell[p.id, a] == cell[p.id, b] for p in _wvs(24)) for a, b in (("a", "b"), ("a", "c"), ("c", "d"))]
    assert sum(same) < 3 * 24 / 2  # about 1 in 4 by chance, not all


def test_option_orders_needs_balanced():
    import pytest

    from valuescope.study.spec import SpecError, study_from_dict

    with pytest.raises(SpecError, match="option_orders is only used with option_order: balanced"):
        study_from_dict({"option_order": "fixed", "option_orders": 6})
    assert study_from_dict({"option_order": "balanced", "option_orders": 12}).option_orders == 12
    assert study_from_dict({"option_orders": 12}).option_orders == 12  # balanced is the default


def test_new_settings_at_their_defaults_keep_run_ids():
    a = Study()
    assert run_id_for(a, a.models[0]) == run_id_for(Study(administration="independent"), a.models[0])
    assert run_id_for(a, a.models[0]) != run_id_for(Study(administration="sequential"), a.models[0])


# --------------------------------------------------------------------------- sequential administration


def test_sequential_keys_chain_the_questionnaire():
    study, ind = _plan()
    _, seq = _plan(administration="sequential")
    assert {q.key for q in ind}.isdisjoint({q.key for q in seq})
    chains = {}
    for q in seq:
        chains.setdefault(q.chain, []).append(q)
    assert len(chains) == 4  # baseline + 3 personas
    for chain in chains.values():
        assert [q.position for q in chain] == [0, 1, 2]
        assert chain[0].previous_key == ""
        assert [q.previous_key for q in chain[1:]] == [q.key for q in chain[:-1]]
        assert len({prefix_group(q) for q in chain}) == 1
    # shuffled items: the same item at another position (after other items) is another query
    _, shuf = _plan(administration="sequential", item_order="shuffle", repeats=3)
    by_item = {}
    for q in shuf:
        by_item.setdefault((q.persona.id, q.item_id), set()).add(q.key)
    assert all(len(v) == 3 for v in by_item.values())
