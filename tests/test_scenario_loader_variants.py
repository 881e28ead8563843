"""The scenario loader's `expect` and `variants` sections: read, merged, round-tripped, and refused
with file, line, column and field when wrong."""

from __future__ import annotations

import dataclasses

import pytest
from fixtures_system import EchoConfig, TunedConfig, Tuning

from harness.errors import ScenarioError
from harness.expectations import parse_expectation
from harness.scenario import Scenario, SystemSpec, Variant
from harness.scenario_loader import parse_scenario, scenario_to_yaml
from harness.world import Topology

# Six lines: whatever a test appends starts at line 7.
TUNED = """\
name: t
topology:
  az-a: [n1, n2]
system:
  use: fixtures_system:TunedSystem
  config: {label: base, tuning: {retries: 3}}
"""

VARIANTS = TUNED + """\
expect:
  - x == 0
  - check leases passes
variants:
  retry-more:
    system:
      config:
        tuning: {retries: 9}
    expect: [y >= 1.5]
  unsafe:
    system: {config: {safe: false, label: other}}
    expect: [check leases fails]
  same: {}
"""


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.yaml")
    return str(info.value)


def round_trip(scenario: Scenario) -> None:
    text = scenario_to_yaml(scenario)
    assert parse_scenario(text) == scenario, text


# -- valid input ------------------------------------------------------------------------------------
def test_expectations_and_variants_are_read() -> None:
    scenario = parse_scenario(VARIANTS)
    assert [e.text for e in scenario.expectations] == ["x == 0", "check leases passes"]
    assert [variant.name for variant in scenario.variants] == ["retry-more", "unsafe", "same"]
    retry, unsafe, same = scenario.variants
    assert retry.config == TunedConfig(label="base", tuning=Tuning(retries=9))  # deep-merged
    assert unsafe.config == TunedConfig(label="other", tuning=Tuning(retries=3), safe=False)
    assert same == Variant("same")
    assert retry.expectations == (parse_expectation("y >= 1.5"),)


def test_a_variant_as_a_scenario() -> None:
    scenario = parse_scenario(VARIANTS)
    unsafe = scenario.variant("unsafe")
    assert unsafe.system.config.safe is False and unsafe.name == "t[unsafe]"
    assert [e.text for e in unsafe.expectations] == ["x == 0", "check leases passes",
                                                     "check leases fails"]
    assert scenario.variant("same").system == scenario.system


def test_two_variants_may_expect_the_same() -> None:
    scenario = parse_scenario(TUNED + "variants:\n  a: {expect: [x == 0]}\n  b: {expect: [x == 0]}\n")
    assert scenario.variants[0].expectations == scenario.variants[1].expectations


def test_a_variant_may_change_nothing_or_add_a_section() -> None:
    scenario = parse_scenario(TUNED.replace("  config: {label: base, tuning: {retries: 3}}\n", "")
                              + "variants:\n  a: {system: {}}\n  b: {system: {config: {}}}\n"
                              "  c: {system: {config: {tuning: {backoff_ms: 1}}}}\n")
    a, b, c = scenario.variants
    assert a.config is None and b.config == TunedConfig() == scenario.system.config
    assert c.config == TunedConfig(tuning=Tuning(backoff_ms=1.0))


def test_plain_configs_merge_key_by_key() -> None:
    text = ("name: t\ntopology: {az-a: [n1]}\nsystem:\n  use: fixtures_system:PlainSystem\n"
            "  config: {a: 1, b: {c: 2, d: [1, 2]}}\n"
            "variants:\n  v: {system: {config: {b: {d: [3], e: off-peak}, f: 4}}}\n")
    (variant,) = parse_scenario(text).variants
    assert variant.config == {"a": 1, "b": {"c": 2, "d": [3], "e": "off-peak"}, "f": 4}


# -- round trip -------------------------------------------------------------------------------------
def test_round_trip_expectations_and_variants() -> None:
    scenario = parse_scenario(VARIANTS)
    round_trip(scenario)
    text = scenario_to_yaml(scenario)
    assert "retries: 9" in text and "same: {}" in text and "label: other" in text


def test_round_trip_a_variant_equal_to_the_base() -> None:
    round_trip(parse_scenario(TUNED + "variants:\n  v: {system: {config: {label: base}}}\n"))


def test_round_trip_variants_built_in_python() -> None:
    base = TunedConfig(tuning=Tuning(retries=1))
    scenario = Scenario(
        name="p", topology=Topology.from_azs({"az-a": ["n1"]}),
        system=SystemSpec("fixtures_system:TunedSystem", base),
        expectations=(parse_expectation("latency_ms.get_item/strong.p99 < 0.25"),),
        variants=(Variant("a", dataclasses.replace(base, tuning=Tuning(retries=1, backoff_ms=0))),
                  Variant("b", TunedConfig(), (parse_expectation("check x fails"),)),
                  Variant("c")))
    round_trip(scenario)


def test_round_trip_plain_variants() -> None:
    text = ("name: t\ntopology: {az-a: [n1]}\nsystem: {use: 'fixtures_system:PlainSystem'}\n"
            "variants:\n  v: {system: {config: {b: {d: [3]}}}}\n  w: {system: {config: {}}}\n")
    round_trip(parse_scenario(text))


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("tail", "where", "words"), [
    # expectations
    ("expect:\n  - elections.spurious = 0\n", "scenario.yaml:8:24: expect[0]:",
     "bad expectation 'elections.spurious = 0': unknown operator '=' (did you mean '=='?)"),
    ('expect:\n  - "x => 1"\n', "scenario.yaml:8:8: expect[0]:", "did you mean '>='?"),
    ("expect: [a == 1, x <= five]\n", "scenario.yaml:7:23: expect[1]:", "'five' is not a number"),
    ("expect:\n  - write_unavailable_s <= 5s\n", "scenario.yaml:8:28: expect[0]:", "units belong"),
    ("expect:\n  - 0 <= x\n", "scenario.yaml:8:5: expect[0]:", "starts with the metric's name"),
    ("expect:\n  - check leases pass\n", "scenario.yaml:8:18: expect[0]:",
     "did you mean 'passes'?"),
    ("expect:\n  - check leases\n", "scenario.yaml:8:17: expect[0]:", "missing passes or fails"),
    ("expect:\n  - x <= 1 or y\n", "scenario.yaml:8:12: expect[0]:", "unexpected 'or'"),
    ("expect:\n  - x <=\n    5 6\n", "scenario.yaml:8:5: expect[0]:", "unexpected '6'"),
    ("expect: x == 1\n", "scenario.yaml:7:9: expect:", "expected a list"),
    ("expect:\n  - {x: 1}\n", "scenario.yaml:8:5: expect[0]:", "expected a string, got a mapping"),
    ("expect:\n  - x: 1\n", "scenario.yaml:8:5: expect[0]:", "expected a string, got a mapping"),
    ("expect:\n  -\n", "scenario.yaml:8:4: expect[0]:", "expected a string, got an empty value"),
    ("expect:\n  - x == 0\n  - x  ==  0.0\n", "scenario.yaml:9:5: expect[1]:",
     "the expectation 'x == 0' is already written at line 8; write it once"),
    ("expectations: [x == 0]\n", "scenario.yaml:7:1: expectations:", "did you mean 'expect'?"),
    # the variants section
    ("variants: [a, b]\n", "scenario.yaml:7:11: variants:", "expected a mapping"),
    ("variants: {}\n", "scenario.yaml:7:11: variants:", "no variants: name at least one"),
    ("variants:\n", "scenario.yaml:7:10: variants:", "expected a mapping"),
    ("variants:\n  on: {}\n  on: {}\n", "scenario.yaml:9:3: variants.on:",
     "duplicate variant 'on': first at line 8, again at line 9"),
    ("variant:\n  a: {}\n", "scenario.yaml:7:1: variant:", "did you mean 'variants'?"),
    # a variant's name
    ("variants:\n  Mitigation_Off: {}\n", "scenario.yaml:8:3: variants.Mitigation_Off:",
     "'Mitigation_Off' is not a usable variant name; allowed: lower-case letters, digits"),
    ("variants:\n  with space: {}\n", "scenario.yaml:8:3:", "not a usable variant name"),
    ("variants:\n  -lead: {}\n", "scenario.yaml:8:3:", "not a usable variant name"),
    ("variants:\n  a--b: {}\n", "scenario.yaml:8:3:", "not a usable variant name"),
    ("variants:\n  '': {}\n", "scenario.yaml:8:3:", "not a usable variant name"),
    ("variants:\n  a.b: {}\n", "scenario.yaml:8:3:", "not a usable variant name"),
    # a variant's body
    ("variants:\n  a: 3\n", "scenario.yaml:8:6: variants.a:", "expected a mapping"),
    ("variants:\n  a:\n", "scenario.yaml:8:5: variants.a:", "expected a mapping"),
    ("variants:\n  a: {expects: [x == 0]}\n", "scenario.yaml:8:7: variants.a.expects:",
     "(did you mean 'expect'?); allowed keys: system, faults, expect"),
    ("variants:\n  a: {seed: 3}\n", "scenario.yaml:8:7: variants.a.seed:", "unknown key 'seed'"),
    ("variants:\n  a: {system: {use: 'x:Y'}}\n", "scenario.yaml:8:16: variants.a.system.use:",
     "a variant runs the scenario's own system; it may change only its config"),
    ("variants:\n  a: {system: {confg: {}}}\n", "scenario.yaml:8:16: variants.a.system.confg:",
     "did you mean 'config'?"),
    ("variants:\n  a: {system: [config]}\n", "scenario.yaml:8:15: variants.a.system:",
     "expected a mapping"),
    ("variants:\n  a: {system: {config: 3}}\n", "scenario.yaml:8:24: variants.a.system.config:",
     "expected a mapping"),
    # a variant's config, validated like the scenario's, located in the variant
    ("variants:\n  a:\n    system:\n      config:\n        tuning: {retrys: 4}\n",
     "scenario.yaml:11:18: variants.a.system.config.tuning.retrys:", "did you mean 'retries'?"),
    ("variants:\n  a: {system: {config: {lable: x}}}\n",
     "scenario.yaml:8:25: variants.a.system.config.lable:", "did you mean 'label'?"),
    ("variants:\n  a: {system: {config: {safe: yes}}}\n",
     "scenario.yaml:8:31: variants.a.system.config.safe:", "ambiguous"),
    ("variants:\n  a: {system: {config: {safe: 1}}}\n",
     "scenario.yaml:8:31: variants.a.system.config.safe:", "expected true or false"),
    ("variants:\n  a: {system: {config: {tuning: {retries: 20}}}}\n",
     "scenario.yaml:8:43: variants.a.system.config.tuning.retries:", "allowed: >= 0 and <= 10"),
    ("variants:\n  a: {system: {config: {tuning: {retries: 1.5}}}}\n",
     "scenario.yaml:8:43: variants.a.system.config.tuning.retries:", "expected an integer"),
    ("variants:\n  a: {system: {config: {tuning: 5}}}\n",
     "scenario.yaml:8:33: variants.a.system.config.tuning:", "expected a mapping"),
    ("variants:\n  ok: {}\n  a: {system: {config: {tuning: {retries: -1}}}}\n",
     "scenario.yaml:9:43: variants.a.system.config.tuning.retries:", "allowed: >= 0"),
    # a variant's expectations
    ("variants:\n  a: {expect: [check leases pass]}\n", "scenario.yaml:8:29: variants.a.expect[0]:",
     "did you mean 'passes'?"),
    ("variants:\n  a: {expect: check leases fails}\n", "scenario.yaml:8:15: variants.a.expect:",
     "expected a list"),
    ("expect: [x == 0]\nvariants:\n  a: {expect: [x == 0]}\n",
     "scenario.yaml:9:16: variants.a.expect[0]:", "'x == 0' is already written at line 7"),
    ("variants:\n  a: {expect: [x == 0, x==0]}\n", "scenario.yaml:8:24: variants.a.expect[1]:",
     "already written at line 8"),
])
def test_bad_expectations_and_variants(tail: str, where: str, words: str) -> None:
    message = error_of(TUNED + tail)
    assert message.startswith(where), message
    assert words in message, message


def test_a_bad_expectation_shows_the_grammar() -> None:
    message = error_of(TUNED + "expect: [x = 1]\n")
    assert "an expectation is `<metric> <op> <number>` with op one of == != < <= > >=" in message
    assert "`check <name> passes|fails`" in message


def test_a_node_reference_in_a_variant_is_checked_against_the_topology() -> None:
    text = ("name: t\ntopology: {az-a: [n1, n2]}\nsystem:\n  use: fixtures_system:EchoSystem\n"
            "  config: {leader: n1}\nvariants:\n  a: {system: {config: {leader: n9}}}\n"
            "  b: {system: {config: {leader: n2}}}\n")
    message = error_of(text)
    assert message.startswith("scenario.yaml:7:33: variants.a.system.config.leader:")
    assert "'n9' is not a node in the topology" in message
    fixed = parse_scenario(text.replace("n9", "n1"))
    assert [variant.config for variant in fixed.variants] == [EchoConfig(leader="n1"),
                                                              EchoConfig(leader="n2")]


def test_a_variant_config_error_names_the_variant_not_the_base() -> None:
    message = error_of(TUNED + "variants:\n  ok: {}\n  bad: {system: {config: {replicas: 3}}}\n")
    assert "variants.bad.system.config.replicas" in message and "allowed keys: label" in message
