"""Sequential models: what a single copy of the data would have answered, for the linearizability checker.

Theory of operation. A model is a deterministic state machine. ``init()`` gives the first state;
``step(state, call)`` applies one operation and says whether the result the client saw is one this
state could have given: ``(ok, new_state)``. States must be hashable (the checker memoises on
``(set of operations linearized, state)``), so values are stored frozen (see ``freeze``).

The checker turns each recorded ``Operation`` into a ``Call`` (f, argument, result) with the model's
``call`` function, which is where a model says what the three completions mean for it:

- ``ok``: the operation took effect and returned ``result``: ``step`` must check the result.
- ``info`` or never completed: the outcome is unknown. The call's result is ``UNKNOWN``; ``step`` then
  checks only the operation's precondition and applies its effect (a cas whose compare holds swaps; one
  whose compare fails changes nothing; both are "ok"). The checker may also leave it out entirely.
  Calls in ``pure`` (reads) with an unknown result constrain nothing and are dropped.
- ``fail``: the operation took no effect. By default it is dropped. A model may keep it as an
  observation instead (``call`` returns a Call): a ``fail`` cas means the compare failed (Jepsen's
  convention: the value was not ``from`` at its linearization point), and a conditional item write that
  failed with no error or the error ``condition-failed`` means its condition was false. A ``fail`` with
  any other error (``not-leader``, ``timeout``…) is dropped: it says nothing about the value.

Partitioning (P-compositionality): linearizability is local, so a history over many keys is linearizable
iff each key's sub-history is. ``partition`` splits by ``Operation.key`` by default.

Built-in models, by name in ``MODELS``:

- ``register``: ``read`` (result: the value, ``None`` if never written), ``write`` (argument: the value).
- ``cas-register``: ``register`` plus ``cas`` with argument ``[from, to]``; ``ok`` means it swapped
  (an ``ok`` with result ``false`` also means "compare failed"); ``fail`` means the compare failed.
- ``kv``: per key, plain values and DynamoDB-like items (a key holds one or the other):

  ====================  ===========================================================  ====================
  f                     argument                                                     ok result
  ====================  ===========================================================  ====================
  ``get``               ``null``                                                     the value / ``null``
  ``put``               the value                                                    ignored
  ``append``            a string (concatenated; absent = "") or any value (appended   ignored
                        to a list; absent = [])
  ``delete``            ``null``                                                     ignored
  ``get_item``          ``null``                                                     the item / ``null``
  ``put_item``          ``{"item": {attr: value…}, "condition": COND?}``             see below
  ``update_item``       ``{"set": {attr: value…}?, "add": {attr: number…}?, "remove":  see below
                        [attr…]?, "condition": COND?}`` (creates the item if absent,
                        like UpdateItem; ``add`` treats a missing or non-numeric
                        attribute as 0)
  ``delete_item``       ``{"condition": COND?}`` or ``null``                         see below
  ====================  ===========================================================  ====================

  COND is a clause or a list of clauses, all of which must hold: ``{"attribute": NAME, "equals":
  VALUE}``, ``{"attribute": NAME, "exists": true}``, ``{"attribute": NAME, "exists": false}`` (an
  absent item has no attributes), or ``{"item_exists": BOOL}`` (the item itself exists or not). A conditional write whose condition was false took no effect; record
  it as ``ok`` with result ``{"condition_failed": true}``, or as ``fail`` with error
  ``condition-failed`` (or no error). Any other ``ok`` result means the write was applied.

Adding a model takes a few lines: an ``init`` and a ``step``, and a name in ``MODELS``::

    def counter_step(state: int, call: Call) -> tuple[bool, int]:
        if call.f == "add":
            return True, state + call.argument
        return call.result is UNKNOWN or call.result == state, state  # "read"

    MODELS["counter"] = Model("counter", init=lambda: 0, step=counter_step, pure=frozenset({"read"}))
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.history import FAIL, OK, Operation

__all__ = [
    "CAS_REGISTER", "KV", "MODELS", "REGISTER", "REJECT", "UNKNOWN", "Call", "Model", "freeze",
    "get_model", "partition_by_key", "thaw",
]

State = Hashable


class _Unknown:
    """The result of an operation whose outcome is unknown (``info``, or never completed)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class _Reject:
    """What a transition returns when the model refuses the operation in that state."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REJECT"


REJECT: Any = _Reject()


@dataclass(frozen=True, slots=True)
class Call:
    """One operation as a model steps it: argument and result frozen (hashable); result may be UNKNOWN."""

    f: str
    argument: Hashable
    result: Hashable


def freeze(value: Any) -> Hashable:
    """A hashable twin of a JSON value: dicts become frozensets of (key, value) pairs, lists tuples."""
    if isinstance(value, dict):
        return frozenset((key, freeze(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The JSON value back from ``freeze`` (for display)."""
    if isinstance(value, frozenset):
        return {key: thaw(item) for key, item in sorted(value, key=lambda pair: str(pair[0]))}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def partition_by_key(operations: Sequence[Operation]) -> list[list[Operation]]:
    """One sub-history per key, in a stable order (keys sorted by their text)."""
    groups: dict[Hashable, list[Operation]] = {}
    for operation in operations:
        groups.setdefault(freeze(operation.key), []).append(operation)
    return [groups[key] for key in sorted(groups, key=lambda key: (type(key).__name__, repr(key)))]


def describe_operation(operation: Operation) -> str:
    """``process 3: cas [1, 2] -> ok True  [120, 950]``: one line, for evidence (an unknown outcome
    ends at ∞: the operation may take effect at any time after its invocation)."""
    outcome = operation.completion or "open"
    result = f" {operation.result!r}" if operation.completion == OK else ""
    error = f" ({operation.error})" if operation.error else ""
    argument = "" if operation.argument is None else f" {operation.argument!r}"
    key = "" if operation.key is None else f" key={operation.key!r}"
    span = (f"[{operation.invoked_ns}, {operation.completed_ns}]" if operation.outcome_known
            else f"[{operation.invoked_ns}, ∞)")
    return (f"process {operation.process}:{key} {operation.f}{argument} -> {outcome}{result}{error}"
            f"  {span}")


@dataclass(frozen=True, slots=True)
class Model:
    """A sequential specification: ``init`` and ``step`` are all a model needs; the rest has defaults.

    ``call`` turns a recorded operation into the Call ``step`` sees, or None to drop it (see the module
    docstring); ``pure`` names the operations that never change the state (their unknown-outcome
    calls are dropped)."""

    name: str
    init: Callable[[], State]
    step: Callable[[State, Call], tuple[bool, State]]
    pure: frozenset[str] = frozenset()
    call: Callable[[Operation], Call | None] | None = None
    partition: Callable[[Sequence[Operation]], list[list[Operation]]] = partition_by_key
    describe_operation: Callable[[Operation], str] = describe_operation
    accepts: frozenset[str] = field(default=frozenset())  # the fs it understands (empty: any)
    compile: Callable[[Call], Callable[[State], State]] | None = None  # optional fast form of step

    def transition(self, call: Call) -> Callable[[State], State]:
        """``call`` as a function from a state to the next state, or to REJECT when ``step`` says not
        ok: the form the search runs. ``compile`` may provide it directly (it must agree with step)."""
        if self.compile is not None:
            return self.compile(call)
        step = self.step

        def transition(state: State) -> State:
            ok, new_state = step(state, call)
            return new_state if ok else REJECT

        return transition

    def to_call(self, operation: Operation) -> Call | None:
        """The Call the search steps for ``operation``, or None when it constrains nothing."""
        if self.accepts and operation.f not in self.accepts:
            raise ValueError(f"the {self.name} model does not understand f={operation.f!r} "
                             f"(it knows {', '.join(sorted(self.accepts))})")
        if self.call is not None:
            return self.call(operation)
        return default_call(operation, self.pure)


def default_call(operation: Operation, pure: frozenset[str] = frozenset()) -> Call | None:
    """``ok``: checked with its result; ``fail``: dropped; unknown: UNKNOWN result (pure ones dropped)."""
    if operation.completion == OK:
        return Call(operation.f, freeze(operation.argument), freeze(operation.result))
    if operation.completion == FAIL or operation.f in pure:
        return None
    return Call(operation.f, freeze(operation.argument), UNKNOWN)


# -- register and cas-register ---------------------------------------------------------------------
def _register_step(state: State, call: Call) -> tuple[bool, State]:
    f = call.f
    if f == "read":
        return call.result is UNKNOWN or call.result == state, state
    if f == "write":
        return True, call.argument
    if f == "cas":
        expected, new = call.argument  # type: ignore[misc]
        if call.result is UNKNOWN:
            return True, (new if state == expected else state)
        if call.result:  # it swapped: the compare must have held
            return state == expected, new
        return state != expected, state
    raise ValueError(f"register models do not understand f={f!r}")


def _compile_register(call: Call) -> Callable[[State], State]:
    """The register's step specialised to one call: no dispatch on f at search time."""
    f, argument, result = call.f, call.argument, call.result
    if f == "read":
        return _identity if result is UNKNOWN else (
            lambda state: state if state == result else REJECT)
    if f == "write":
        return lambda state: argument
    if f == "cas":
        expected, new = argument  # type: ignore[misc]
        if result is UNKNOWN:
            return lambda state: new if state == expected else state
        if result:
            return lambda state: new if state == expected else REJECT
        return lambda state: state if state != expected else REJECT
    raise ValueError(f"register models do not understand f={f!r}")


def _identity(state: State) -> State:
    return state


def _cas_register_call(operation: Operation) -> Call | None:
    """A cas's result is whether it swapped: ``ok`` → True (unless its result is false), ``fail`` with no
    error or ``compare-failed`` → False; other calls as ``default_call``."""
    if operation.f != "cas":
        return default_call(operation, _READS)
    _check_cas_argument(operation)
    argument = freeze(operation.argument)
    if operation.completion == OK:
        return Call("cas", argument, operation.result is not False)
    if operation.completion == FAIL:
        return Call("cas", argument, False) if _observed_false(operation) else None
    return Call("cas", argument, UNKNOWN)


def _check_cas_argument(operation: Operation) -> None:
    argument = operation.argument
    if not isinstance(argument, (list, tuple)) or len(argument) != 2:
        raise ValueError(f"a cas argument is [from, to], got {argument!r} "
                         f"(process {operation.process}, invoked at {operation.invoked_ns})")


def _observed_false(operation: Operation) -> bool:
    """A ``fail`` that reports a false compare or condition (rather than, say, an unreachable leader)."""
    return operation.error in (None, "", "compare-failed", "condition-failed", "condition_failed")


_READS = frozenset({"read"})
REGISTER = Model("register", init=lambda: None, step=_register_step, pure=_READS,
                 accepts=frozenset({"read", "write"}), compile=_compile_register)
CAS_REGISTER = Model("cas-register", init=lambda: None, step=_register_step, pure=_READS,
                     call=_cas_register_call, accepts=frozenset({"read", "write", "cas"}),
                     compile=_compile_register)


# -- kv ----------------------------------------------------------------------------------------------
_CONDITION_FAILED = freeze({"condition_failed": True})
_ITEM_WRITES = frozenset({"put_item", "update_item", "delete_item"})
_KV_PURE = frozenset({"get", "get_item"})


def _kv_call(operation: Operation) -> Call | None:
    """Item writes that report a false condition become Calls with result CONDITION_FAILED."""
    if operation.f in _ITEM_WRITES:
        _check_item_argument(operation)
        if operation.completion == FAIL and _observed_false(operation) and _condition_of(
                freeze(operation.argument)) is not None:
            return Call(operation.f, freeze(operation.argument), _CONDITION_FAILED)
    return default_call(operation, _KV_PURE)


def _kv_step(state: State, call: Call) -> tuple[bool, State]:
    f, result = call.f, call.result
    if f in ("get", "get_item"):
        return result is UNKNOWN or result == state, state
    if f == "put":
        return True, call.argument
    if f == "delete":
        return True, None
    if f == "append":
        new = _appended(state, call.argument)
        return new is not _INVALID, new
    return _item_write_step(state, call)


_INVALID: Any = object()


def _appended(state: State, suffix: Hashable) -> State:
    if isinstance(suffix, str) and isinstance(state, (str, type(None))):
        return (state or "") + suffix
    if isinstance(state, (tuple, type(None))) and not isinstance(suffix, str):
        return (state or ()) + (suffix,)
    return _INVALID


def _item_write_step(state: State, call: Call) -> tuple[bool, State]:
    """Conditional put/update/delete: the condition decides; the result must agree with it."""
    holds = _condition_holds(state, _condition_of(call.argument))
    if call.result is UNKNOWN:
        return True, (_apply_item_write(state, call) if holds else state)
    if call.result == _CONDITION_FAILED:
        return not holds, state
    return holds, _apply_item_write(state, call)


def _apply_item_write(state: State, call: Call) -> State:
    fields = dict(call.argument or ())  # type: ignore[arg-type]
    if call.f == "delete_item":
        return None
    if call.f == "put_item":
        return fields["item"]
    item = dict(state or ())  # type: ignore[arg-type]
    item.update(dict(fields.get("set", ())))
    for attribute, amount in dict(fields.get("add", ())).items():
        current = item.get(attribute, 0)
        item[attribute] = (current if isinstance(current, (int, float)) else 0) + amount
    for attribute in fields.get("remove", ()):
        item.pop(attribute, None)
    return frozenset(item.items())


def _condition_of(argument: Hashable) -> tuple[Any, ...] | None:
    condition = dict(argument or ()).get("condition")  # type: ignore[arg-type]
    if condition is None:
        return None
    return condition if isinstance(condition, tuple) else (condition,)


def _condition_holds(state: State, clauses: tuple[Any, ...] | None) -> bool:
    if clauses is None:
        return True
    item: Mapping[str, Any] = dict(state) if isinstance(state, frozenset) else {}
    for clause in clauses:
        fields = dict(clause)
        if "item_exists" in fields:
            if isinstance(state, frozenset) != fields["item_exists"]:
                return False
            continue
        attribute = fields["attribute"]
        if "equals" in fields:
            if attribute not in item or item[attribute] != fields["equals"]:
                return False
        elif (attribute in item) != fields["exists"]:
            return False
    return True


def _check_item_argument(operation: Operation) -> None:
    """Fail early, naming the operation, on an argument the item model cannot read."""
    argument = operation.argument
    where = f"(process {operation.process}, {operation.f} invoked at {operation.invoked_ns})"
    if argument is not None and not isinstance(argument, dict):
        raise ValueError(f"an item operation's argument is an object, got {argument!r} {where}")
    argument = argument or {}
    if operation.f == "put_item" and not isinstance(argument.get("item"), dict):
        raise ValueError(f"put_item needs {{\"item\": {{...}}}}, got {argument!r} {where}")
    condition = argument.get("condition")
    clauses = condition if isinstance(condition, list) else [] if condition is None else [condition]
    for clause in clauses:
        if isinstance(clause, dict) and set(clause) == {"item_exists"} and isinstance(
                clause["item_exists"], bool):
            continue
        if not (isinstance(clause, dict) and isinstance(clause.get("attribute"), str)
                and (("equals" in clause) != ("exists" in clause))
                and isinstance(clause.get("exists", True), bool)):
            raise ValueError(f"a condition clause is {{\"attribute\": NAME, \"equals\": VALUE}}, "
                             f"{{\"attribute\": NAME, \"exists\": BOOL}} or "
                             f"{{\"item_exists\": BOOL}}, got {clause!r} {where}")


KV = Model("kv", init=lambda: None, step=_kv_step, pure=_KV_PURE, call=_kv_call,
           accepts=frozenset({"get", "put", "append", "delete"}) | _KV_PURE | _ITEM_WRITES)

MODELS: dict[str, Model] = {model.name: model for model in (REGISTER, CAS_REGISTER, KV)}


def get_model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
