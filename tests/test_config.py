"""Config contract: every field documented, overrides typed, errors name the key."""

import dataclasses

import pytest

from algos.config import ConfigError, RunConfig, build, coerce, doc_of
from algos.train import ALGOS, algo_module


@pytest.mark.parametrize("algo", ALGOS)
def test_every_config_field_has_a_doc(algo):
    cfg = algo_module(algo).Config
    docs = doc_of(cfg)
    missing = [f.name for f in dataclasses.fields(cfg) if not docs.get(f.name)]
    assert not missing, f"{algo}.Config fields without a doc line: {missing}"
    assert "rollout_length" in {f.name for f in dataclasses.fields(cfg)}


def test_run_config_fields_documented():
    docs = doc_of(RunConfig)
    assert all(docs.get(f.name) for f in dataclasses.fields(RunConfig))


@pytest.mark.parametrize("algo", ALGOS)
def test_suite_defaults_name_real_fields(algo):
    cfg = algo_module(algo).Config
    names = {f.name for f in dataclasses.fields(cfg)} | {f.name for f in dataclasses.fields(RunConfig)}
    for where, table in getattr(cfg, "SUITE_DEFAULTS", {}).items():
        assert set(table) <= names, f"{algo} SUITE_DEFAULTS[{where}]: {set(table) - names}"


@pytest.mark.parametrize("tp,value,expected", [
    (float, "3e-4", 3e-4), (float, 1, 1.0), (int, "1e6", 1_000_000), (bool, "false", False),
    (tuple[int, ...], "[64, 64]", (64, 64)), (str | None, "null", None),
])
def test_coerce_reads_command_line_strings(tp, value, expected):
    assert coerce(tp, value, "k", from_string=True) == expected


@pytest.mark.parametrize("tp,value,message", [
    (float, "half", 'k: expected a float, got "half"'),
    (int, 1.5, "k: expected an int, got 1.5"),
    (bool, 1, "k: expected a bool, got 1"),
    (int, True, "k: expected an int, got True"),
])
def test_coerce_errors_name_the_key(tp, value, message):
    with pytest.raises(ConfigError) as e:
        coerce(tp, value, "k")
    assert str(e.value) == message


def test_build_unknown_key_suggests_close_names():
    with pytest.raises(ConfigError) as e:
        build(RunConfig, {"eval_evry": 5}, path="runs.x")
    assert e.value.path == "runs.x.eval_evry"
    assert "did you mean eval_every" in str(e.value)
