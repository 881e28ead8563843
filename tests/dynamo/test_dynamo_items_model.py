"""The reference system's item semantics and the checker's ``kv`` model agree, operation by operation.

Two independent implementations of one meaning (the system's ``items.apply`` and the checker's model):
a sequential history produced by the system must always be linearizable for the model, and a history
whose results were tampered with must not be.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checkers import KV, check_history
from harness.history import History
from systems.dynamo.items import Condition, ItemOperation, apply

ATTRIBUTES = ("name", "count", "version")
values = st.one_of(st.integers(0, 3), st.sampled_from(["a", "b"]))
pairs = st.lists(st.tuples(st.sampled_from(ATTRIBUTES), values), max_size=3, unique_by=lambda p: p[0])
conditions = st.one_of(
    st.none(),
    st.builds(Condition, st.just("equals"), st.sampled_from(ATTRIBUTES), values),
    st.builds(Condition, st.sampled_from(["exists", "not_exists"]),
              st.one_of(st.none(), st.sampled_from(ATTRIBUTES))))


@st.composite
def operations(draw: st.DrawFn) -> ItemOperation:
    kind = draw(st.sampled_from(["put_item", "update_item", "delete_item", "get_item"]))
    if kind == "get_item":
        return ItemOperation(kind, "k")
    item = tuple(sorted(draw(pairs))) if kind == "put_item" else ()
    set_attributes = tuple(sorted(draw(pairs))) if kind == "update_item" else ()
    add = (("count", draw(st.integers(1, 3))),) if kind == "update_item" and draw(st.booleans()) else ()
    return ItemOperation(kind, "k", item=item, set_attributes=set_attributes,
                         add_attributes=add, condition=draw(conditions))


def sequential_history(ops: list[ItemOperation], tamper_at: int | None = None) -> History:
    history, item = History(), None
    for index, operation in enumerate(ops):
        invoked = history.invoke(0, operation.kind, operation.key, operation.to_json(), 2 * index)
        item, result = apply(item, operation)
        if operation.kind == "get_item":
            value = dict(result.item) if result.item is not None else None
            if index == tamper_at:
                value = {"name": "never-written"}
            history.complete(invoked, "ok", value, 2 * index + 1)
        elif result.ok:
            history.complete(invoked, "ok", None, 2 * index + 1)
        else:
            history.complete(invoked, "fail", None, 2 * index + 1, error="condition_failed")
    return history


@settings(max_examples=300, deadline=None)
@given(st.lists(operations(), min_size=1, max_size=12))
def test_the_system_and_the_model_agree(ops: list[ItemOperation]) -> None:
    assert check_history(sequential_history(ops), KV).linearizable


@settings(max_examples=100, deadline=None)
@given(st.lists(operations(), min_size=1, max_size=10), st.data())
def test_a_tampered_read_is_caught(ops: list[ItemOperation], data: st.DataObject) -> None:
    reads = [i for i, op in enumerate(ops) if op.kind == "get_item"]
    if not reads:
        ops = ops + [ItemOperation("get_item", "k")]
        reads = [len(ops) - 1]
    tamper_at = data.draw(st.sampled_from(reads))
    assert not check_history(sequential_history(ops, tamper_at), KV).linearizable
