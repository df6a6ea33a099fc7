"""The figures the benchmarks print that the README quotes: checked against a count by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import mpo_update  # noqa: E402

from algos.mpo import Config  # noqa: E402


def _mlp_macs(rows: int, sizes: list[int]) -> int:
    return rows * sum(a * b for a, b in zip(sizes, sizes[1:]))


def test_mpo_update_flops_match_a_count_from_the_shapes():
    """FlopCounterMode's count of one update's targets equals 2 x the multiply-adds of:
    the target policy on the 2B states (first steps and bootstrap states; its Gaussian
    head: a mean and a std layer), the critic's observation columns once per state, its
    action columns and its hidden layer once per (state, sample); the last layer is a
    matrix-vector product, which FlopCounterMode does not count."""
    cfg = Config()
    obs, act, B, N = 17, 6, cfg.batch_size, cfg.num_samples
    H1, H2 = cfg.critic_hidden
    policy = _mlp_macs(2 * B, [obs, *cfg.hidden]) + 2 * (2 * B) * cfg.hidden[-1] * act
    critic = 2 * B * obs * H1 + N * 2 * B * (act * H1 + H1 * H2)
    got = mpo_update.update_flops()
    assert got["targets"] == 2 * (policy + critic)
    # the rest (the online critic and policy, forward and backward) is a few percent at
    # these sizes, and more than the online critic's forward alone
    online_critic = _mlp_macs(B, [obs + act, H1, H2, 1])
    assert got["total"] - got["targets"] > 2 * online_critic
    assert got["targets"] / got["total"] == pytest.approx(0.92, abs=0.02)



def test_mpo_update_measure_leaves_the_learner_module_untimed():
    """`measure` wraps MPO's loss functions to time them and puts them back: a learner
    built after it in the same process (the CUDA-graph figure) runs the module's own
    functions, whose timing wrappers would wait for the device inside a capture."""
    import algos.mpo as M

    before = {n: getattr(M, n) for n in ("nstep_returns", "critic_loss", "estep_weights", "gaussian_mpo_loss")}
    row = mpo_update.measure(2)
    assert row["total"] > 0 and row["targets"] > 0
    assert {n: getattr(M, n) for n in before} == before


def test_throughput_rejects_a_malformed_set(capsys):
    import throughput

    assert throughput.main(["--algos", "mpo", "--set", "batch_size"]) == 2
    assert "--set: expected key=value" in capsys.readouterr().err
    # checked as algos.train checks it (the shared parser), before anything is trained
    assert throughput.main(["--algos", "mpo", "--set", "batch_sise=512"]) == 2
    assert "batch_sise" in capsys.readouterr().err


def test_the_mpo_speed_figure_reads_the_logs_table():
    """benchmarks/plot_mpo_speed.py reads each bar from the table throughput.py printed
    last in the committed log (not from the per-repeat lines above it)."""
    import plot_mpo_speed

    logs = Path(__file__).resolve().parents[1] / "docs/results/mpo-speed"
    assert plot_mpo_speed.table(logs / "cpu_throughput_vs_sac.log") == {"mpo": 339.0, "sb3-sac": 597.0}
    assert plot_mpo_speed.table(logs / "gpu_throughput_vs_sac.log") == {"mpo": 3465.0, "sb3-sac": 364.0}
    with pytest.raises(ValueError, match="no throughput table"):
        plot_mpo_speed.table(logs / "gpu.txt")
