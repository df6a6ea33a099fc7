"""The training loop: run-directory conflicts, divergence, and resume after SIGKILL
with no step written twice (usage errors: test_bad_input.py)."""

import csv
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from algos.results import RunDir
from algos.train import RunSpec, resolve, run

ROOT = Path(__file__).resolve().parents[1]


def train_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "algos.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def metric_steps(run_dir):
    steps = defaultdict(list)
    with open(Path(run_dir) / "metrics.csv") as f:
        for row in csv.DictReader(f):
            steps[row["metric"]].append(int(row["step"]))
    return steps


# Usage errors (unknown algorithm, env, --set key, bad values, budgets, seeds) and a
# damaged RUN_DIR: tests/test_bad_input.py, in-process, checking that nothing is written.
# The two below go through the real process exit.


def test_unknown_set_key_lists_valid_fields(tmp_path):
    res = train_cli("--algo", "ppo", "--env", "CartPole-v1", "--steps", "100", "--out",
                    str(tmp_path / "r"), "--set", "clip=0.1")
    assert res.returncode == 2
    assert "clip_coef" in res.stderr and "eval_every" in res.stderr


def test_run_dir_format_and_conflict(tmp_path):
    spec = RunSpec("ppo", "CartPole-v1", 3, 512, {"eval_every": 256, "eval_episodes": 2})
    status = run(spec, tmp_path)
    assert status == {"state": "done", "step": 512, "error": None, "resumed_at": []}
    cfg = json.loads((tmp_path / "config.json").read_text())
    for key in ("run_id", "sweep", "algo", "variant", "suite", "env", "seed", "config", "provenance"):
        assert key in cfg
    assert cfg["suite"] == "classic" and cfg["config"]["num_envs"] == 8 and cfg["config"]["lr"] == 1e-3
    assert cfg["provenance"]["cpu"].endswith(f"(torch {torch.backends.cpu.get_cpu_capability()})")
    assert len(cfg["provenance"]["cpu"]) > len(" (torch AVX2)")  # a model name before it
    assert cfg["run_id"] == resolve(spec)["run_id"]
    assert metric_steps(tmp_path)["eval/return"] == [256, 512]
    before = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    res = train_cli("--algo", "ppo", "--env", "CartPole-v1", "--seed", "3", "--steps", "512",
                    "--out", str(tmp_path), "--set", "eval_every=256", "--set", "eval_episodes=2",
                    "--set", "lr=0.01")
    assert res.returncode == 2 and "another config" in res.stderr and "config.lr" in res.stderr
    assert {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # the same config again: already done, nothing rewritten
    assert run(spec, tmp_path)["state"] == "done"
    assert {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("poison,needle", [("stats", "loss/policy is nan"),
                                            ("param", "parameter policy_torso.net.0.weight is not finite")])
def test_divergence_fails_the_run_naming_the_metric(tmp_path, monkeypatch, poison, needle):
    import torch

    from algos import ppo
    from algos.train import DivergenceError

    real_update = ppo.Learner.update

    def poisoned(self):
        stats = real_update(self)
        if self.updates == 2:
            if poison == "stats":
                stats["loss/policy"] = float("nan")
            else:
                with torch.no_grad():
                    next(self.net.parameters()).fill_(float("inf"))
        return stats

    monkeypatch.setattr(ppo.Learner, "update", poisoned)
    with pytest.raises(DivergenceError, match=needle.replace(".", r"\.")):
        run(RunSpec("ppo", "CartPole-v1", 0, 4096, {"eval_every": 0}), tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed"
    assert status["error"].startswith("DivergenceError: ") and needle in status["error"]


def test_non_finite_config_values_are_usage_errors(tmp_path):
    res = train_cli("--algo", "ppo", "--env", "CartPole-v1", "--steps", "100", "--out",
                    str(tmp_path / "r"), "--set", "lr=.nan")
    assert res.returncode == 2 and "lr: expected a finite float" in res.stderr


def test_resume_after_sigkill_writes_no_step_twice(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "algos.train", "--algo", "ppo", "--env", "CartPole-v1",
            "--seed", "1", "--steps", "30720", "--out", str(out), "--no-progress",
            "--set", "checkpoint_every=2048", "--set", "eval_every=3072",
            "--set", "eval_episodes=2"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    time.sleep(0.3)  # let it log past the checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((out / "status.json").read_text())
    assert killed_at["state"] == "running" and killed_at["step"] < 30720
    resume_step = torch.load(ckpt, map_location="cpu", weights_only=False)["step"]
    res = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    steps = metric_steps(out)
    for metric, s in steps.items():
        assert all(a < b for a, b in zip(s, s[1:])), f"{metric} steps not strictly increasing: {s}"
    assert steps["eval/return"][-1] == 30720
    assert steps["eval/return"] == sorted(set(range(3072, 30721, 3072)) | {30720})
    final = json.loads((out / "status.json").read_text())
    assert final["state"] == "done" and final["resumed_at"] == [resume_step]


def test_partial_metrics_line_is_dropped(tmp_path):
    rd = RunDir(tmp_path)
    (tmp_path / "metrics.csv").write_text("step,metric,value,wall_time\n1,a,1.0,0.1\n2,a,2.")
    assert rd.read_metrics() == [(1, "a", 1.0, 0.1)]
    rd.truncate_metrics(0)
    assert (tmp_path / "metrics.csv").read_text() == "step,metric,value,wall_time\n"


@pytest.mark.atari
def test_atari_pixels_train_through_the_cnn(tmp_path):
    pytest.importorskip("ale_py")
    status = run(RunSpec("ppo", "ALE/Pong-v5", 0, 64,
                         {"num_envs": 2, "rollout_length": 16, "minibatch_size": 16,
                          "eval_every": 0, "eval_episodes": 1}), tmp_path)
    assert status["state"] == "done" and status["step"] == 64
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["frameskip"] == 4 and cfg["suite"] == "atari"
    rows = RunDir(tmp_path).read_metrics()
    evals = [v for s, m, v, _ in rows if m == "eval/return"]
    assert len(evals) == 1 and -21 <= evals[0] <= 21  # a whole game of Pong, raw score


def test_mean_stats_averages_floats_and_tensors_per_key():
    import torch

    from algos.train import mean_stats

    updates = [{"a": 1.0, "t": torch.tensor(2.0)}, {"a": 3.0, "t": torch.tensor(6.0), "b": 5.0},
               {"a": 2.0, "t": torch.tensor(1.0)}]
    out = mean_stats(updates)
    assert out == {"a": 2.0, "t": 3.0, "b": 5.0}
    assert all(type(v) is float for v in out.values())
    assert list(out) == ["a", "t", "b"]
    assert mean_stats([]) == {}
