"""Temporary: the registry's key numbers equal faco.study.sweep.KEY_NUMBERS."""

from __future__ import annotations

from faco.findings import registry


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
