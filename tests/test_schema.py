"""The JSON Schema of the scenario format: derived from the loader's declarations, committed in sync."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness import FAULT_KINDS, cli
from harness.scenario_loader import _SECTIONS
from harness.schema import scenario_schema

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "scenarios" / "schema.json").read_text())
    assert committed == scenario_schema(), "regenerate: graylink schema > scenarios/schema.json"


def test_the_schema_covers_every_section_and_fault_kind() -> None:
    schema = scenario_schema()
    assert set(schema["properties"]) == set(_SECTIONS)
    kinds = [next(k for k in entry["required"] if k != "at_s")
             for entry in schema["properties"]["faults"]["items"]["oneOf"]]
    assert sorted(kinds) == sorted(FAULT_KINDS)
    loss = schema["properties"]["network"]["properties"]["loss_probability"]
    assert (loss["minimum"], loss["maximum"], loss["type"]) == (0, 1, "number")


def test_every_library_file_uses_only_what_the_schema_describes() -> None:
    schema = scenario_schema()
    kinds = {next(k for k in entry["required"] if k != "at_s"): entry
             for entry in schema["properties"]["faults"]["items"]["oneOf"]}
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert set(data) <= set(schema["properties"]), path
        for entry in data.get("faults", []):
            (kind,) = set(entry) - {"at_s"}
            assert set(entry[kind]) <= set(kinds[kind]["properties"][kind]["properties"]), path


def test_a_system_config_is_described_by_its_config_class(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["schema", "--system", "systems.dynamo:DynamoSystem"]) == 0
    schema = json.loads(capsys.readouterr().out)
    config = schema["properties"]["system"]["properties"]["config"]
    assert "mitigations" in config["properties"]
    assert config["properties"]["mitigations"]["properties"]["peer_confirmation"]["type"] == "boolean"
    assert cli.main(["schema", "--system", "no.such:Thing"]) == 2
