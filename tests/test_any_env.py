"""Any Gymnasium env (issue 26 section 2): registered ids and `module:EnvId` beyond the named
suites, their inferred family and torso, spec reference pairs, raw returns in the report,
and bad ids (exit 2 with the closest registered names, nothing written)."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch

import suites
from algos import train
from algos.base import EnvSpec
from algos.networks import MLPTorso, NatureCNN, SmallCNN, make_torso

TOY = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np


    class Toy(gym.Env):
        """Reward 1 for action 1, episodes of 5 steps; obs a 3-vector or a [12, 12, 3] image."""

        def __init__(self, image=False):
            self.image = image
            self.observation_space = (gym.spaces.Box(0, 255, (12, 12, 3), np.uint8) if image
                                      else gym.spaces.Box(-1.0, 1.0, (3,), np.float32))
            self.action_space = gym.spaces.Discrete(2)

        def _obs(self):
            return self.observation_space.sample()

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.observation_space.seed(seed)
            self.t = 0
            return self._obs(), {}

        def step(self, action):
            self.t += 1
            return self._obs(), float(action == 1), self.t >= 5, False, {}


    gym.register("H5Toy-v0", entry_point=Toy)
    gym.register("H5ToyPixels-v0", entry_point=Toy, kwargs={"image": True})
''')


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    """A user package `h5toy` that registers H5Toy-v0 and H5ToyPixels-v0 on import."""
    (tmp_path / "h5toy.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "h5toy"
    sys.modules.pop("h5toy", None)
    import gymnasium as gym

    for name in ("H5Toy-v0", "H5ToyPixels-v0"):
        gym.registry.pop(name, None)
    suites.anyenv.spaces_of.cache_clear()


def test_registered_gymnasium_id_is_accepted_as_family_gym():
    # CartPole-v0 is registered by Gymnasium but in no named suite.
    assert suites.resolve("CartPole-v0") == ["CartPole-v0"]
    assert suites.suite_of("CartPole-v0") == "gym"
    # named suites resolve by name exactly as before
    assert suites.suite_of("CartPole-v1") == "classic"
    assert suites.suite_of("MinAtar/Breakout-v1") == "minatar"
    r = train.resolve(train.RunSpec("ppo", "CartPole-v0", 0, 1000))
    assert r["suite"] == "gym" and "reference" not in r
    # the class defaults (no "gym" entry): PPO's num_envs default is 1, classic's is 4
    assert r["config"]["num_envs"] == 1 and r["config"]["norm_obs"] is True


def test_module_env_id_infers_family_and_torso(toy_module):
    assert suites.suite_of(f"{toy_module}:H5Toy-v0") == "gym"
    assert suites.suite_of(f"{toy_module}:H5ToyPixels-v0") == "gym-pixels"
    envs = suites.make(f"{toy_module}:H5ToyPixels-v0", 2, 0)
    obs, _ = envs.reset(seed=0)
    # channels-last uint8 images arrive channels first, unchanged in value
    assert obs.shape == (2, 3, 12, 12) and obs.dtype == np.uint8
    spec = EnvSpec.from_vector_env(envs)
    assert spec.pixels and spec.obs_shape == (3, 12, 12)
    torso = make_torso(spec)
    assert isinstance(torso, SmallCNN) and torso.scale == pytest.approx(1 / 255)
    vec = EnvSpec.from_vector_env(suites.make(f"{toy_module}:H5Toy-v0", 1, 0))
    assert isinstance(make_torso(vec), MLPTorso)


def test_torso_by_observation_shape():
    atari = EnvSpec((4, 84, 84), True, 6, pixels=True)
    t = make_torso(atari)
    assert isinstance(t, NatureCNN) and t.net[-2].in_features == 64 * 7 * 7
    # another size: the dense layer follows the conv output (96 -> 23 -> 10 -> 8)
    t = make_torso(EnvSpec((3, 96, 96), True, 5, pixels=True))
    assert t.net[-2].in_features == 64 * 8 * 8
    assert t(torch.zeros(2, 3, 96, 96, dtype=torch.uint8)).shape == (2, 512)
    minatar = EnvSpec((4, 10, 10), True, 3)
    t = make_torso(minatar)
    assert isinstance(t, SmallCNN) and t.net[0].out_channels == 16
    assert t.net[-2].in_features == 16 * 8 * 8 and t.out_dim == 128
    # 0/1 floats go in unscaled: the conv sees the observation itself
    x = torch.rand(2, 4, 10, 10)
    expected = torch.relu(t.net[-2](torch.relu(t.net[0](x)).flatten(1)))
    torch.testing.assert_close(t(x), expected)


def test_module_env_trains_and_records_no_reference(toy_module, tmp_path):
    out = tmp_path / "run"
    spec = train.RunSpec("ppo", f"{toy_module}:H5Toy-v0", 0, 256,
                         {"num_envs": 2, "rollout_length": 64, "eval_every": 128,
                          "eval_episodes": 2, "minibatch_size": 64, "epochs": 1})
    st = train.run(spec, out)
    assert st["state"] == "done"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["suite"] == "gym" and cfg["env"] == "h5toy:H5Toy-v0" and "reference" not in cfg


def test_reference_pair_recorded_only_when_given():
    base = train.RunSpec("ppo", "CartPole-v0", 0, 1000)
    pair = {"random": 9.0, "reference": 195.0, "source": "v0's reward_threshold"}
    with_pair = train.RunSpec("ppo", "CartPole-v0", 0, 1000, reference=pair)
    a, b = train.resolve(base), train.resolve(with_pair)
    assert b["reference"] == pair and "reference" not in a
    assert a["run_id"] != b["run_id"]
    # a run id is the hash of the rest: dropping the pair gives the old id back
    del b["reference"], b["run_id"]
    assert train.stable_hash(b) == a["run_id"]


def _unknown_cli(tmp_path, env):
    out = tmp_path / "never"
    try:
        code = train.main(["--algo", "ppo", "--env", env, "--seed", "0", "--steps", "100",
                           "--out", str(out)])
    except SystemExit as e:
        code = e.code
    return code, out


def test_unknown_id_exits_2_with_registered_suggestions(tmp_path, capsys):
    code, out = _unknown_cli(tmp_path, "CartPole-v9")
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "did you mean CartPole-v1?" in err
    # Gymnasium-only names are suggested too (no named suite lists MountainCar-v0)
    assert "MountainCar-v0" in suites.UnknownEnvError("MountainCar-v8").suggestions
    assert suites.UnknownEnvError("Taxi-v9").suggestions == ["Taxi-v4"]  # gymnasium 1.4
    code, out = _unknown_cli(tmp_path, "no_such_pkg_h5:Foo-v0")
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and "no_such_pkg_h5" in err and "import" in err


def test_unmakeable_registered_id_exits_2(tmp_path, capsys, monkeypatch):
    import gymnasium as gym

    def broken(**kwargs):
        raise gym.error.DependencyNotInstalled("needs the h5 extra")

    gym.register("H5Broken-v0", entry_point=broken)
    try:
        code, out = _unknown_cli(tmp_path, "H5Broken-v0")
    finally:
        gym.registry.pop("H5Broken-v0", None)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and "needs the h5 extra" in err


def test_ale_ids_outside_the_v5_protocol_stay_unknown():
    for bad in ("PongNoFrameskip-v4", "ALE/Pong-v4"):
        with pytest.raises(suites.UnknownEnvError):
            suites.suite_of(bad)


SPEC = """
name: h5refs
seeds: [0]
envs: [CartPole-v0, CartPole-v1]
budgets: {gym: {steps: 1000}, classic: {steps: 1000}}
runs: {ppo: {algo: ppo}}
"""


def test_spec_references_reach_the_run_config_and_keep_other_run_ids():
    from sweeps.spec import parse_spec

    plain = parse_spec(SPEC)
    given = parse_spec(SPEC + "references: {CartPole-v0: {random: 9.0, reference: 195.0, "
                              "source: v0 threshold}}\n")
    ids = {r.env: r.run_id for r in plain.runs}
    ids2 = {r.env: r.run_id for r in given.runs}
    assert ids["CartPole-v1"] == ids2["CartPole-v1"]  # no pair: run id unchanged
    assert ids["CartPole-v0"] != ids2["CartPole-v0"]
    run = next(r for r in given.runs if r.env == "CartPole-v0")
    resolved = train.resolve(run.run_spec("h5refs"))
    assert resolved["reference"] == {"random": 9.0, "reference": 195.0, "source": "v0 threshold"}
    assert resolved["run_id"] == run.run_id and run.task("h5refs", "x")["reference"]


@pytest.mark.parametrize("refs, message", [
    ("{Nope-v0: {random: 0, reference: 1, source: s}}", "references.Nope-v0: not an env"),
    ("{CartPole-v1: {random: 0, reference: 1, source: s}}", "references.CartPole-v1: CartPole-v1 has its own"),
    ("{CartPole-v0: {random: 0, source: s}}", "references.CartPole-v0.reference: required"),
    ("{CartPole-v0: {random: 1, reference: 1, source: s}}", "references.CartPole-v0.reference: must differ"),
    ("{CartPole-v0: {random: 0, reference: x, source: s}}", "references.CartPole-v0.reference: expected a finite number"),
    ("{CartPole-v0: {random: 0, reference: 1}}", "references.CartPole-v0.source: required"),
    ("{CartPole-v0: {random: 0, reference: 1, source: s, scale: 2}}", "references.CartPole-v0.scale"),
])
def test_bad_references_name_the_key(refs, message):
    from sweeps.spec import SpecError, parse_spec

    with pytest.raises(SpecError) as info:
        parse_spec(SPEC + f"references: {refs}\n")
    assert message in str(info.value)


def test_report_shows_raw_returns_and_says_why_aggregates_leave_them_out(tmp_path):
    from analysis import outdir, report
    from analysis.synthetic import write_sweep

    write_sweep(tmp_path / "res", "mix", variants={"ppo": "ppo"},
                envs={"CartPole-v1": "classic", "CartPole-v0": "gym"}, seeds=[0, 1, 2],
                final=lambda v, e, s: 100.0 + 10 * s)
    out = tmp_path / "rep"
    report.build([str(tmp_path / "res" / "mix")], out, reps=200, seed=0, baseline=None,
                 allow_incomplete=False, n_jobs=1)
    md = (out / outdir.MARKER).read_text()
    assert "leave out CartPole-v0: no reference pair: give one in the spec's `references:`" in md
    per_env = (out / "per_env.csv").read_text()
    assert "CartPole-v0" in per_env and "110" in per_env  # its raw mean (100, 110, 120)
