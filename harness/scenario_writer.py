"""A ``Scenario`` back to YAML, in the format ``harness.scenario_loader`` reads.

``scenario_to_yaml`` leaves out every value equal to its default and writes each variant as its
differences from the scenario's config, so that the loader, merging them back, rebuilds the same
scenario (see the loader's docstring for what round-trips). Plain YAML: no anchors, no aliases,
multi-line strings as literal blocks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from harness.scenario import RunLimits, Scenario, SystemSpec, Variant
from harness.world import Topology

__all__ = ["scenario_to_yaml"]


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases, multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def scenario_to_yaml(scenario: Scenario) -> str:
    """The scenario in the YAML format above, without values equal to their defaults."""
    data: dict[str, Any] = {"name": scenario.name}
    if scenario.description:
        data["description"] = scenario.description
    data.update(seed=scenario.seed, duration_s=scenario.duration_s, heal_s=scenario.heal_s)
    data["topology"] = _topology_data(scenario.topology)
    optional = {"network": _non_defaults(scenario.link), "disk": _non_defaults(scenario.disk)}
    data.update({key: value for key, value in optional.items() if value})
    data["system"] = _system_data(scenario.system)
    if scenario.faults:
        data["faults"] = _faults_data(scenario.faults)
    if scenario.random_faults is not None:
        data["random_faults"] = _non_defaults(scenario.random_faults)
    if scenario.limits != RunLimits():
        data["limits"] = _non_defaults(scenario.limits)
    if scenario.expectations:
        data["expect"] = [expectation.text for expectation in scenario.expectations]
    if scenario.variants:
        data["variants"] = {variant.name: _variant_data(variant, scenario.system.config)
                            for variant in scenario.variants}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                     default_flow_style=None)


def _topology_data(topology: Topology) -> dict[str, list[Any]]:
    azs: dict[str, list[Any]] = {}
    for spec in topology.nodes:
        entry = spec.name if spec.role == "server" else {"name": spec.name, "role": spec.role}
        azs.setdefault(spec.az, []).append(entry)
    return azs


def _system_data(system: SystemSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"use": system.use}
    config = system.config
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = _non_defaults(config) or None  # absent: the loader builds the defaults
    if config is not None:
        data["config"] = _plain(config)
    return data


def _variant_data(variant: Variant, base_config: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if variant.config is not None:
        data["system"] = {"config": _differences(base_config, variant.config)}
    if variant.faults is not None:
        data["faults"] = _faults_data(variant.faults)
    if variant.expectations:
        data["expect"] = [expectation.text for expectation in variant.expectations]
    return data


def _faults_data(faults: Any) -> list[dict[str, Any]]:
    return [{"at_s": item.at_s, item.fault.kind: _non_defaults(item.fault)} for item in faults]


def _differences(base: Any, config: Any) -> Any:
    """What a variant writes so that merging it into ``base`` gives ``config``."""
    if dataclasses.is_dataclass(config) and type(base) is type(config):
        return {field.name: _differences(getattr(base, field.name), getattr(config, field.name))
                for field in dataclasses.fields(config)
                if field.init and getattr(base, field.name) != getattr(config, field.name)}
    if isinstance(config, dict) and isinstance(base, dict):
        return {key: _differences(base.get(key), value) for key, value in config.items()
                if key not in base or base[key] != value}
    return _plain(config)


def _non_defaults(instance: Any) -> dict[str, Any]:
    """The fields of a dataclass instance that differ from their defaults, as plain data."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if field.init and not _is_default(field, value):
            data[field.name] = _plain(value)
    return data


def _is_default(field: dataclasses.Field[Any], value: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        return bool(value == field.default)
    if field.default_factory is not dataclasses.MISSING:
        return bool(value == field.default_factory())
    return False


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _non_defaults(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
