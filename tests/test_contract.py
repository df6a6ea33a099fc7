"""algos/base.py's contract is checked when an algorithm is loaded (a module that breaks it
is named with what it lacks), and the run-directory format (`rundir`) stands without the
learning package: analysis reads runs without importing `algos` or torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from algos import base, train

ROOT = Path(__file__).resolve().parents[1]


def _module(config=None, learner=None) -> types.ModuleType:
    """A stand-in algorithm module: by default a valid Config and Learner."""
    @dataclasses.dataclass
    class Config:
        rollout_length: int = 8
        lr: float = 1e-3
        SUITE_DEFAULTS: ClassVar[dict] = {"classic": {"lr": 1e-2, "num_envs": 4}}

    class Learner:
        def __init__(self, cfg, spec, num_envs, total_steps, device): ...
        act = observe = ready = update = state_dict = load_state_dict = named_parameters = print

    mod = types.ModuleType("fake_algo")
    mod.Config, mod.Learner = config or Config, learner or Learner
    return mod


def test_every_registered_algorithm_keeps_the_contract():
    for name in base.ALGOS:
        base.check_algorithm(train.algo_module(name), name)
    base.check_algorithm(_module())


@dataclasses.dataclass
class NoRollout:
    lr: float = 1e-3


@dataclasses.dataclass
class Typo:
    rollout_length: int = 8
    SUITE_DEFAULTS: ClassVar[dict] = {"mujoco": {"lerning_rate": 1e-3}}


class NoNamedParameters:
    def __init__(self, cfg, spec, num_envs, total_steps, device): ...
    act = observe = ready = update = state_dict = load_state_dict = print


class TwoArgs:
    def __init__(self, cfg, spec): ...
    act = observe = ready = update = state_dict = load_state_dict = named_parameters = print


@pytest.mark.parametrize("config, learner, message", [
    (NoRollout, None, "Config has no field rollout_length (steps per env in each rollout)"),
    (Typo, None, "Config.SUITE_DEFAULTS['mujoco'] sets 'lerning_rate', a field of neither "
                 "Config nor algos.config.RunConfig"),
    (None, NoNamedParameters, "Learner lacks named_parameters"),
    (None, TwoArgs, "Learner(cfg, spec) cannot be called as "
                    "Learner(cfg, env_spec, num_envs, total_steps, device)"),
])
def test_a_module_that_breaks_the_contract_is_named_with_what_it_lacks(config, learner, message):
    with pytest.raises(base.ContractError) as e:
        base.check_algorithm(_module(config, learner), "new")
    assert str(e.value) == (f"algorithm 'new' (fake_algo): {message}; see algos/base.py and "
                            "docs/adding-an-algorithm.md")


def test_the_contract_is_checked_when_the_loop_loads_a_registered_algorithm(monkeypatch):
    bad = _module(config=NoRollout)
    monkeypatch.setitem(sys.modules, "fake_algo", bad)
    monkeypatch.setitem(base.ALGOS, "fake", "fake_algo")
    with pytest.raises(base.ContractError, match="rollout_length"):
        train.resolve(train.RunSpec("fake", "CartPole-v1", 0, 100))


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {m.split(".")[0] for m in out}


@pytest.mark.parametrize("code", ["import analysis.load", "import analysis.report", "import analysis.tuning",
                                  "from analysis import load_runs", "import rundir",
                                  "from analysis import labels; labels.parse(['a=b'])"])
def test_analysis_and_the_run_directory_import_neither_algos_nor_torch(code):
    mods = _imported_after(code)
    assert "algos" not in mods and "torch" not in mods


def test_algos_results_is_the_run_directory_module_under_its_older_name():
    import rundir
    from algos import results
    from algos.results import RunDir, provenance

    assert results is rundir and RunDir is rundir.RunDir and provenance is rundir.provenance
