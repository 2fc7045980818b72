"""Temporary: the registry's reads equal faco.study.parallel._reads for every finding and parameters."""

from __future__ import annotations

import pytest

from faco.config.load import load_preset
from faco.findings import registry
from faco.study import parallel


@pytest.mark.parametrize("name", ["tiny", "smol-ci", "smoke"])
def test_registry_reads_are_the_old_reads(name):
    preset = load_preset(name)
    for finding in (*registry.NAMES, "my_finding"):
        for base in (None, *(b.name for b in preset.bases)):
            for ratio in preset.corruption.ratios:
                params = {"faco_ratio": ratio, "faco_benchmark": "x", **({"faco_base": base} if base else {})}
                old = parallel._reads(finding, params, preset)
                new = registry.reads(finding, params, preset)
                assert new == old, (finding, params)


def test_registry_key_numbers_are_the_old_ones():
    from faco.study import sweep
    from test_report import records

    declared = {s.name: s.key_number for s in registry.FINDINGS if s.key_number}
    assert set(declared) == set(sweep.KEY_NUMBERS)
    for record in records().values():
        kind = record["finding"]
        if kind in declared and (kind != "longer" or record["ratio"] == 100):
            assert declared[kind].label == sweep.KEY_NUMBERS[kind][0]
            new, old = declared[kind].read(record), sweep.KEY_NUMBERS[kind][1](record)
            assert json_safe(new) == json_safe(old), kind
        elif kind == "longer":
            assert declared[kind].read(record) is None


def json_safe(value):
    import json

    return json.dumps(value)
