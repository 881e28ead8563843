"""The linearizability checker: the Jepsen etcd corpus, a brute-force cross-check, the models, budgets,
evidence, the history readers and the ``check-history`` command."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import permutations
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cli
from harness.checkers import (CAS_REGISTER, KV, MODELS, REGISTER, REJECT, UNKNOWN, Call,
                              HistoryFormatError, Model, check_history, check_operations,
                              read_history)
from harness.checkers.search import search
from harness.checkers.subhistory import Item, prepare
from harness.history import FAIL, INFO, OK, History, Operation, pair_operations

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "porcupine-etcd"


def _corpus_verdicts() -> list[tuple[str, str]]:
    verdicts = CORPUS / "verdicts.txt"
    if not verdicts.exists():
        return []
    return [tuple(line.split()) for line in verdicts.read_text().splitlines() if line.strip()]


# -- the Jepsen etcd corpus ----------------------------------------------------------------------------
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the porcupine-etcd corpus is not at {CORPUS}")
@pytest.mark.parametrize("name,expected", _corpus_verdicts())
def test_etcd_corpus_verdicts(name: str, expected: str) -> None:
    history = read_history(CORPUS / name, "jepsen-log")
    result = check_history(history, "cas-register", shrink=False)
    assert result.verdict == expected, result.describe()


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the porcupine-etcd corpus is not at {CORPUS}")
def test_etcd_corpus_is_complete_and_the_empty_history_is_linearizable() -> None:
    verdicts = dict(_corpus_verdicts())
    assert len(verdicts) == 102
    assert sorted(set(verdicts.values())) == ["linearizable", "not-linearizable"]
    empty = CORPUS / "etcd_095.log"
    if empty.exists():
        assert check_history(read_history(empty, "jepsen-log"), "cas-register").linearizable


# -- brute force ---------------------------------------------------------------------------------------
def brute_force(model: Model, items: list[Item]) -> bool:
    """Some subset of the optional items, with every required one, in some order that respects real
    time, is accepted by ``model.step`` (not the compiled transitions)."""
    required = [item for item in items if item.known]
    optional = [item for item in items if not item.known]
    for mask in range(1 << len(optional)):
        chosen = required + [item for bit, item in enumerate(optional) if mask >> bit & 1]
        for order in permutations(chosen):
            if _respects_real_time(order) and _accepted(model, order):
                return True
    return False


def _respects_real_time(order: tuple[Item, ...]) -> bool:
    return not any(later.end_ns is not None and later.end_ns < earlier.operation.invoked_ns
                   for position, earlier in enumerate(order) for later in order[position + 1:])


def _accepted(model: Model, order: tuple[Item, ...]) -> bool:
    state = model.init()
    for item in order:
        ok, state = model.step(state, item.call)
        if not ok:
            return False
    return True


VALUES = st.sampled_from([None, 0, 1, 2])
SMALL = st.sampled_from([0, 1, 2])


@st.composite
def histories(draw: st.DrawFn, model: Model, max_operations: int = 7) -> list[Operation]:
    """Up to three processes interleaving reads, writes (and cas): ok, fail, info or left open."""
    history, open_by_process, started, time_ns = History(), {}, 0, 0
    while started < max_operations or open_by_process:
        process = draw(st.integers(0, 2))
        time_ns += draw(st.integers(0, 2))  # equal times happen: operations that touch are concurrent
        if process in open_by_process:
            invocation = open_by_process.pop(process)
            outcome = draw(st.sampled_from([OK, OK, OK, FAIL, INFO]))
            history.complete(invocation, outcome, _result(draw, invocation), time_ns)
        elif started < max_operations:
            f = draw(st.sampled_from(sorted(model.accepts)))
            argument = [draw(SMALL), draw(SMALL)] if f == "cas" else (draw(SMALL) if f == "write"
                                                                      else None)
            open_by_process[process] = history.invoke(process, f, None, argument, time_ns)
            started += 1
        if draw(st.integers(0, 9)) == 0:
            break  # leave the open operations open
    return pair_operations(history)


def _result(draw: st.DrawFn, invocation: object) -> object:
    f, argument = invocation.f, invocation.value  # type: ignore[attr-defined]
    if f == "read":
        return draw(VALUES)
    if f == "cas":
        return draw(st.sampled_from([argument, argument, False]))
    return argument


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_search_agrees_with_brute_force(data: st.DataObject) -> None:
    model = data.draw(st.sampled_from([REGISTER, CAS_REGISTER]))
    operations = data.draw(histories(model))
    result = check_operations(operations, model, shrink=False)
    assert result.verdict == ("linearizable" if brute_force(model, prepare(model, operations))
                              else "not-linearizable")


@st.composite
def items(draw: st.DrawFn) -> list[Item]:
    """Register items with any mix of required, optional-within-a-span and unknown (no span end)."""
    drawn: list[Item] = []
    for index in range(draw(st.integers(1, 6))):
        invoked = draw(st.integers(0, 8))
        end = draw(st.one_of(st.none(), st.integers(invoked, invoked + 6)))
        known = end is not None and draw(st.booleans())
        f = draw(st.sampled_from(["read", "write", "cas"]))
        argument = (draw(SMALL), draw(SMALL)) if f == "cas" else draw(SMALL) if f == "write" else None
        result = (draw(VALUES) if f == "read" else draw(st.booleans()) if f == "cas" else None
                  ) if known else UNKNOWN
        operation = Operation(index, f, None, argument, invoked, OK, None, end, index, None)
        drawn.append(Item(operation, Call(f, argument, result), end, known))
    return drawn


@settings(max_examples=300, deadline=None)
@given(items())
def test_search_with_optional_operations_agrees_with_brute_force(drawn: list[Item]) -> None:
    calls = [item.call for item in drawn]
    outcome = search([CAS_REGISTER.transition(call) for call in calls], None,
                     [(item.operation.invoked_ns, item.end_ns, item.known) for item in drawn], calls,
                     max_steps=10**6)
    assert (outcome.verdict == "linearizable") == brute_force(CAS_REGISTER, drawn)


def evidence_items(model: Model, result: object) -> list[Item]:
    """The sub-history the evidence claims has no linearization: conflict known, context optional."""
    conflict = prepare(model, result.conflict)  # type: ignore[attr-defined]
    context = [Item(op, model.to_call(replace(op, completion=INFO, result=None)),
                    op.completed_ns if op.outcome_known else None, False)
               for op in result.context]  # type: ignore[attr-defined]
    return conflict + context


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_evidence_is_sound_and_minimal(data: st.DataObject) -> None:
    model = data.draw(st.sampled_from([REGISTER, CAS_REGISTER]))
    result = check_operations(data.draw(histories(model)), model)
    if result.verdict != "not-linearizable":
        return
    evidence = evidence_items(model, result)
    assert not brute_force(model, evidence), result.describe()
    for index, item in enumerate(evidence[:len(result.conflict)]):
        weakened = evidence[:index] + evidence[index + 1:]
        call = model.to_call(replace(item.operation, completion=INFO, result=None))
        if call is not None and item.operation.completion != FAIL:
            weakened.append(Item(item.operation, call, item.end_ns, False))
        assert brute_force(model, weakened), f"conflict operation {index} is not needed"


# -- models ------------------------------------------------------------------------------------------
def op(process: int, f: str, argument: object, completion: str | None, result: object,
       invoked: int, completed: int | None, key: object = None, error: str | None = None) -> Operation:
    return Operation(process, f, key, argument, invoked, completion, result, completed, invoked,
                     completed, error)


def verdict(model: Model | str, *operations: Operation) -> str:
    return check_operations(list(operations), model).verdict


def test_register_reads_see_the_latest_write() -> None:
    write = op(0, "write", 1, OK, 1, 0, 1)
    assert verdict("register", write, op(1, "read", None, OK, 1, 2, 3)) == "linearizable"
    assert verdict("register", write, op(1, "read", None, OK, None, 2, 3)) == "not-linearizable"
    assert verdict("register", op(1, "read", None, OK, None, 0, 1)) == "linearizable"
    concurrent = op(1, "read", None, OK, None, 0, 3)  # overlaps the write: may precede it
    assert verdict("register", write, concurrent) == "linearizable"


def test_unknown_writes_may_take_effect_late_or_never() -> None:
    timed_out = op(0, "write", 1, INFO, None, 0, 1)
    assert verdict("register", timed_out, op(1, "read", None, OK, 1, 50, 51)) == "linearizable"
    assert verdict("register", timed_out, op(1, "read", None, OK, None, 50, 51)) == "linearizable"
    never_completed = op(0, "write", 2, None, None, 0, None)
    assert verdict("register", never_completed, op(1, "read", None, OK, 2, 5, 6)) == "linearizable"
    assert verdict("register", timed_out, op(1, "read", None, OK, 2, 5, 6)) == "not-linearizable"
    before_invocation = op(1, "read", None, OK, 1, 0, 1)
    assert verdict("register", op(0, "write", 1, INFO, None, 2, 3), before_invocation) == \
        "not-linearizable"


def test_failed_operations_took_no_effect() -> None:
    failed = op(0, "write", 1, FAIL, None, 0, 1, error="unavailable")
    assert verdict("register", failed, op(1, "read", None, OK, 1, 2, 3)) == "not-linearizable"
    assert verdict("register", failed, op(1, "read", None, OK, None, 2, 3)) == "linearizable"


def test_cas_register_ok_fail_and_unknown_cas() -> None:
    write = op(0, "write", 1, OK, 1, 0, 1)
    swapped = op(1, "cas", [1, 2], OK, [1, 2], 2, 3)
    assert verdict("cas-register", write, swapped, op(2, "read", None, OK, 2, 4, 5)) == "linearizable"
    assert verdict("cas-register", write, swapped, op(2, "read", None, OK, 1, 4, 5)) == \
        "not-linearizable"
    wrong_from = op(1, "cas", [0, 2], OK, True, 2, 3)
    assert verdict("cas-register", write, wrong_from) == "not-linearizable"
    # fail: the compare failed (Jepsen), so the value was not `from`; it took no effect
    compare_failed = op(1, "cas", [1, 2], FAIL, None, 2, 3)
    assert verdict("cas-register", write, compare_failed) == "not-linearizable"
    assert verdict("cas-register", write, op(1, "cas", [0, 2], FAIL, None, 2, 3),
                   op(2, "read", None, OK, 1, 4, 5)) == "linearizable"
    # a fail for another reason says nothing about the value
    unreachable = op(1, "cas", [1, 2], FAIL, None, 2, 3, error="not-leader")
    assert verdict("cas-register", write, unreachable) == "linearizable"
    returned_false = op(1, "cas", [1, 2], OK, False, 2, 3)
    assert verdict("cas-register", write, returned_false) == "not-linearizable"
    timed_out = op(1, "cas", [1, 2], INFO, None, 2, 3)
    for seen in (1, 2):
        assert verdict("cas-register", write, timed_out, op(2, "read", None, OK, seen, 9, 10)) == \
            "linearizable"


def test_models_refuse_operations_they_do_not_know() -> None:
    with pytest.raises(ValueError, match="register model does not understand f='cas'"):
        verdict("register", op(0, "cas", [1, 2], OK, True, 0, 1))
    with pytest.raises(ValueError, match=r"a cas argument is \[from, to\]"):
        verdict("cas-register", op(0, "cas", 3, OK, True, 0, 1))
    with pytest.raises(ValueError, match="unknown model 'queue'"):
        verdict("queue", op(0, "read", None, OK, None, 0, 1))


def test_kv_values_per_key() -> None:
    put = op(0, "put", "a", OK, None, 0, 1, key="x")
    assert verdict(KV, put, op(1, "get", None, OK, "a", 2, 3, key="x")) == "linearizable"
    assert verdict(KV, put, op(1, "get", None, OK, None, 2, 3, key="y")) == "linearizable"
    assert verdict(KV, put, op(1, "get", None, OK, None, 2, 3, key="x")) == "not-linearizable"
    appended = [put, op(0, "append", "b", OK, None, 2, 3, key="x"),
                op(1, "get", None, OK, "ab", 4, 5, key="x")]
    assert verdict(KV, *appended) == "linearizable"
    as_list = [op(0, "append", 1, OK, None, 0, 1, key="l"), op(0, "append", 2, OK, None, 2, 3, key="l"),
               op(1, "get", None, OK, [1, 2], 4, 5, key="l")]
    assert verdict(KV, *as_list) == "linearizable"
    deleted = [put, op(0, "delete", None, OK, None, 2, 3, key="x"),
               op(1, "get", None, OK, None, 4, 5, key="x")]
    assert verdict(KV, *deleted) == "linearizable"


def item_op(process: int, f: str, argument: object, completion: str | None, result: object,
            invoked: int, error: str | None = None) -> Operation:
    return op(process, f, argument, completion, result, invoked, invoked + 1, key="user#1",
              error=error)


def test_kv_items_with_conditions() -> None:
    create = item_op(0, "put_item", {"item": {"name": "ada", "version": 1},
                                     "condition": {"attribute": "name", "exists": False}}, OK, None, 0)
    read_v1 = item_op(1, "get_item", None, OK, {"version": 1, "name": "ada"}, 2)
    assert verdict(KV, create, read_v1) == "linearizable"
    bump = item_op(0, "update_item", {"set": {"version": 2}, "remove": ["name"],
                                      "condition": [{"attribute": "version", "equals": 1}]}, OK, None, 4)
    assert verdict(KV, create, bump, item_op(1, "get_item", None, OK, {"version": 2}, 6)) == \
        "linearizable"
    stale_bump = replace(bump, argument={"set": {"version": 2},
                                         "condition": {"attribute": "version", "equals": 7}})
    assert verdict(KV, create, stale_bump) == "not-linearizable"  # applied, yet its condition was false
    refused = replace(stale_bump, result={"condition_failed": True})
    assert verdict(KV, create, refused, item_op(1, "get_item", None, OK, {"name": "ada", "version": 1},
                                                 6)) == "linearizable"
    wrongly_refused = replace(bump, result={"condition_failed": True})
    assert verdict(KV, create, wrongly_refused) == "not-linearizable"
    failed_check = replace(bump, completion=FAIL, result=None, error="condition-failed")
    assert verdict(KV, create, failed_check) == "not-linearizable"  # the condition did hold
    unavailable = replace(failed_check, error="unavailable")
    assert verdict(KV, create, unavailable) == "linearizable"  # says nothing: dropped
    delete = item_op(0, "delete_item", {"condition": {"attribute": "version", "exists": True}}, OK,
                     None, 8)
    assert verdict(KV, create, delete, item_op(1, "get_item", None, OK, None, 10)) == "linearizable"
    recreate_over = replace(create, invoked_ns=12, completed_ns=13, invoke_index=12)
    assert verdict(KV, create, recreate_over) == "not-linearizable"  # the item existed


def test_kv_items_unknown_outcome_applies_only_if_the_condition_holds() -> None:
    create = item_op(0, "put_item", {"item": {"v": 1}}, OK, None, 0)
    maybe = item_op(1, "update_item", {"set": {"v": 2}, "condition": {"attribute": "v", "equals": 9}},
                    INFO, None, 2)
    assert verdict(KV, create, maybe, item_op(2, "get_item", None, OK, {"v": 2}, 9)) == \
        "not-linearizable"
    assert verdict(KV, create, maybe, item_op(2, "get_item", None, OK, {"v": 1}, 9)) == "linearizable"


def test_kv_rejects_malformed_item_arguments() -> None:
    with pytest.raises(ValueError, match="a condition clause is"):
        verdict(KV, item_op(0, "put_item", {"item": {}, "condition": {"attribute": "v"}}, OK, None, 0))
    with pytest.raises(ValueError, match="put_item needs"):
        verdict(KV, item_op(0, "put_item", {"value": 3}, OK, None, 0))


def test_a_user_model_in_a_few_lines() -> None:
    def counter_step(state: int, call: Call) -> tuple[bool, int]:
        if call.f == "add":
            return True, state + call.argument
        return call.result is UNKNOWN or call.result == state, state

    counter = Model("counter", init=lambda: 0, step=counter_step, pure=frozenset({"read"}))
    adds = [op(0, "add", 2, OK, None, 0, 1), op(1, "add", 3, INFO, None, 0, 1)]
    assert verdict(counter, *adds, op(2, "read", None, OK, 5, 4, 5)) == "linearizable"
    assert verdict(counter, *adds, op(2, "read", None, OK, 3, 4, 5)) == "not-linearizable"
    assert set(MODELS) >= {"register", "cas-register", "kv"}


def test_compiled_register_transitions_agree_with_step() -> None:
    states = [None, 0, 1, 2]
    calls = [Call("read", None, r) for r in [*states, UNKNOWN]] + [Call("write", 1, None)] + [
        Call("cas", (a, b), r) for a in (0, 1) for b in (1, 2) for r in (True, False, UNKNOWN)]
    for call in calls:
        fast = CAS_REGISTER.transition(call)
        for state in states:
            ok, new_state = CAS_REGISTER.step(state, call)
            assert fast(state) is REJECT if not ok else fast(state) == new_state


# -- keys, budgets, evidence ------------------------------------------------------------------------
def test_keys_are_checked_separately_and_the_failing_key_is_named() -> None:
    result = check_operations([
        op(0, "put", 1, OK, None, 0, 1, key="good"), op(1, "get", None, OK, 1, 2, 3, key="good"),
        op(0, "put", 1, OK, None, 4, 5, key="bad"), op(1, "get", None, OK, 2, 6, 7, key="bad")], KV)
    assert result.verdict == "not-linearizable" and result.failing_key == "bad"
    assert {key.key: key.verdict for key in result.keys} == {"good": "linearizable",
                                                             "bad": "not-linearizable"}


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the porcupine-etcd corpus is not at {CORPUS}")
def test_running_out_of_budget_is_unknown_never_a_pass() -> None:
    history = read_history(CORPUS / "etcd_002.log", "jepsen-log")  # linearizable, ~200k steps
    result = check_history(history, "cas-register", max_steps=1000)
    assert result.verdict == "unknown" and result.steps == 1000
    assert "budget (1000 steps) ran out" in result.describe()
    assert check_history(history, "cas-register", max_seconds=0.0).verdict == "unknown"


def test_running_out_of_budget_on_a_synthetic_history() -> None:
    operations = [op(p, "write", p, INFO, None, p, p + 1) for p in range(12)]
    operations.append(op(99, "read", None, OK, 99, 20, 21))  # impossible: needs a full search
    assert check_operations(operations, "register", max_steps=5).verdict == "unknown"
    assert check_operations(operations, "register").verdict == "not-linearizable"


def test_evidence_for_a_stale_read_is_small_and_readable() -> None:
    operations = [op(0, "write", 1, OK, 1, 0, 10), op(1, "write", 2, OK, 2, 20, 30),
                  op(0, "read", None, OK, 2, 35, 38), op(2, "read", None, OK, 1, 40, 50),
                  op(1, "write", 3, OK, 3, 60, 70), op(0, "read", None, OK, 3, 80, 90)]
    result = check_operations(operations, "register")
    assert result.verdict == "not-linearizable"
    assert result.describe().splitlines()[:7] == [
        "NOT-LINEARIZABLE under the register model (6 operations)",
        "key None: the recorded outcomes of these 2 operations cannot all be true",
        "  process 0: read -> ok 2  [35, 38]",
        "  process 2: read -> ok 1  [40, 50]",
        ("whether or not these 2 operations took effect (recorded outcomes ignored; each within its "
        "span):"),
        "  process 0: write 1 -> ok 1  [0, 10]",
        "  process 1: write 2 -> ok 2  [20, 30]"]
    assert json.loads(result.to_json())["conflict"][1]["result"] == 1


def test_checks_are_deterministic() -> None:
    operations = [op(p, "write", p % 3, INFO if p % 2 else OK, p % 3, p, p + 3) for p in range(10)]
    operations.append(op(50, "read", None, OK, 7, 20, 21))
    first, second = (check_operations(operations, "register") for _ in range(2))
    assert (first.steps, first.shrink_steps, first.conflict, first.context) == \
        (second.steps, second.shrink_steps, second.conflict, second.context)


# -- reading histories --------------------------------------------------------------------------------
def test_jsonl_round_trip(tmp_path: Path) -> None:
    history = History()
    write = history.invoke(1, "put", "k", 5, 100, node="client-1")
    history.complete(write, OK, 5, 200)
    history.invoke(2, "get", "k", None, 150)
    history.write_jsonl(tmp_path / "h.jsonl")
    assert read_history(tmp_path / "h.jsonl").entries == history.entries


@pytest.mark.parametrize("text,message", [
    ('{"process": 1, "type": "invoke", "f": "read", "time_ns": 0}\n{"process": 1,', "h.jsonl:2:"),
    ('{"process": "one", "type": "invoke", "f": "read", "time_ns": 0}', "h.jsonl:1: process: int"),
    ('{"process": 1, "type": "done", "f": "read", "time_ns": 0}', "h.jsonl:1: type: must be one of"),
    ('\n{"process": 1, "type": "ok", "f": "read", "time_ns": 0}', "h.jsonl:2: process 1 completes"),
    (('{"process": 1, "type": "invoke", "f": "read", "time_ns": 0}\n'
     '{"process": 1, "type": "invoke", "f": "read", "time_ns": 1}'), "h.jsonl:2: process 1 invokes"),
    (('{"process": 1, "type": "invoke", "f": "read", "time_ns": 5}\n'
     '{"process": 1, "type": "ok", "f": "read", "time_ns": 1}'), "h.jsonl:2: time_ns: completes at"),
])
def test_jsonl_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(text)
    with pytest.raises(HistoryFormatError) as caught:
        read_history(path)
    assert f"{path.parent}/{message}" in str(caught.value)
    assert caught.value.line == int(message.split(":")[1])


def test_jepsen_log_lines(tmp_path: Path) -> None:
    path = tmp_path / "jepsen.log"
    path.write_text("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 4]\n"
                    "INFO  jepsen.util - 1   :invoke :read   nil\n"
                    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
                    "INFO  jepsen.util - 0\t:fail\t:cas\t[1 4]\n"
                    "INFO  jepsen.util - 1\t:ok\t:read\t3\n"
                    "INFO  jepsen.util - 2\t:invoke\t:write\t3\n"
                    "INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n"
                    "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n"
                    "INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n")
    operations = pair_operations(read_history(path, "jepsen-log"))
    assert [(o.process, o.f, o.argument, o.completion, o.result, o.error) for o in operations] == [
        (0, "cas", [1, 4], FAIL, [1, 4], None), (1, "read", None, OK, 3, None),
        (2, "write", 3, INFO, None, "timed-out"), (3, "read", None, FAIL, None, "timed-out")]
    assert operations[0].invoked_ns == 1 and operations[0].completed_ns == 4  # line numbers


@pytest.mark.parametrize("line,message", [
    ("INFO  jepsen.core - something else", "log:2: not a Jepsen history line"),
    ("INFO  jepsen.util - 1\t:invoke\t:cas\t[1 4", "log:2: value: a vector is not closed"),
    ("INFO  jepsen.util - 1\t:invoke\t:write\t3.5", "log:2: value: cannot read '3.5'"),
    ("INFO  jepsen.util - 1\t:started\t:read\tnil", "log:2: type: must be one of"),
    ("INFO  jepsen.util - 0\t:invoke\t:read\tnil", "log:2: process 0 invokes read while its read"),
    ("INFO  jepsen.util - 0\t:ok\t:write\t1", "log:2: process 0 completes write but invoked read"),
])
def test_jepsen_log_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "h.log"
    path.write_text("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n" + line + "\n")
    with pytest.raises(HistoryFormatError, match=message.replace("[", r"\[")):
        read_history(path, "jepsen-log")


# -- the command line ---------------------------------------------------------------------------------
def _write_jsonl(path: Path, operations: list[tuple[int, str, object, object, int, int]]) -> Path:
    history = History()
    for process, f, argument, result, invoked, completed in operations:
        invocation = history.invoke(process, f, None, argument, invoked)
        history.complete(invocation, OK, result, completed)
    history.entries.sort(key=lambda entry: entry.time_ns)
    history.write_jsonl(path)
    return path


def test_cli_check_history_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write_jsonl(tmp_path / "good.jsonl", [(0, "write", 1, 1, 0, 1), (1, "read", None, 1, 2, 3)])
    bad = _write_jsonl(tmp_path / "bad.jsonl", [(0, "write", 1, 1, 0, 1), (1, "read", None, 2, 2, 3)])
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text("{not json}\n")
    assert cli.main(["check-history", str(good), "--model", "register"]) == 0
    assert "LINEARIZABLE" in capsys.readouterr().out
    assert cli.main(["check-history", str(bad), "--model", "register"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"graylink check-history {bad} --model register")
    assert "process 1: read -> ok 2  [2, 3]" in out
    assert cli.main(["check-history", str(malformed), "--model", "register"]) == 2
    assert f"{malformed}:1:" in capsys.readouterr().err
    assert cli.main(["check-history", str(good), "--model", "cas-register", "--max-steps", "0"]) == 4
    assert "UNKNOWN" in capsys.readouterr().out
    assert cli.main(["check-history", str(bad), "--model", "register", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "not-linearizable"
    assert cli.main(["check-history", str(good), "--model", "kv"]) == 2  # kv has no "write"
    assert "does not understand f='write'" in capsys.readouterr().err
    assert cli.main(["check-history", str(tmp_path / "missing.jsonl"), "--model", "kv"]) == 2


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the porcupine-etcd corpus is not at {CORPUS}")
def test_cli_reads_jepsen_logs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-history", str(CORPUS / "etcd_000.log"), "--model", "cas-register",
                     "--format", "jepsen-log"]) == 1
    assert "cannot all be true" in capsys.readouterr().out
