"""analysis/archive.py: a packed sweep reads back to the same evaluations and duals."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from algos.results import parse_metrics
from analysis import archive
from analysis.load import load as load_runs
from analysis.synthetic import linear_evals, run_config, write_run


def _sweep(tmp_path):
    sweep = tmp_path / "res" / "study"
    runs = []
    for seed, state in [(0, "done"), (1, "done"), (2, "running")]:
        cfg = run_config(sweep="study", algo="vmpo", variant="vmpo", suite="mujoco",
                         env="Hopper-v5", seed=seed, steps=1000)
        runs.append(write_run(sweep, cfg, linear_evals(100.0 + seed, 1000, 10),
                              state=state, train_logs_per_eval=50))
    (sweep / "spec.yaml").write_text("name: study\n")
    return sweep, runs


def test_thin_keeps_every_eval_row_and_block_means_of_the_duals():
    lines = ["step,metric,value,wall_time"]
    for s in range(1, 1001):
        # a KL against a target refreshed every 10 steps: zero at each refresh
        lines.append(f"{s},kl/mean,{0.0 if s % 10 == 0 else 0.01 * (s % 10)!r},{s:.3f}")
        lines.append(f"{s},dual/eta,{s * 0.5!r},{s:.3f}")
        lines.append(f"{s},loss/total,1.0,{s:.3f}")
        if s % 100 == 0:
            lines.append(f"{s},eval/return,{float(s)!r},{s:.3f}")
    thinned = parse_metrics(archive.thin_metrics("\n".join(lines) + "\n", max_rows=100))
    kl = [(s, v) for s, m, v, _ in thinned if m == "kl/mean"]
    # 1000 rows in blocks of 10, each at its last step: a stride of 10 would keep only zeros
    assert [s for s, _ in kl] == list(range(10, 1001, 10))
    assert np.allclose([v for _, v in kl], 0.045)  # (0.01 + ... + 0.09) / 10
    eta = [(s, v) for s, m, v, _ in thinned if m == "dual/eta"]
    assert eta[0] == (10, 0.5 * 5.5) and eta[-1] == (1000, 0.5 * 995.5)
    assert [(s, v) for s, m, v, _ in thinned if m == "eval/return"] == [(s, float(s)) for s in range(100, 1001, 100)]
    assert not any(m == "loss/total" for _, m, _, _ in thinned)
    uneven = parse_metrics(archive.thin_metrics("\n".join(lines) + "\n", max_rows=300))
    eta = [(s, v) for s, m, v, _ in uneven if m == "dual/eta"]  # blocks of 4, the last of 4
    assert len(eta) == 250 and eta[-1] == (1000, 0.5 * 998.5)


def test_pack_then_unpack_gives_the_report_the_same_runs(tmp_path):
    sweep, runs = _sweep(tmp_path)
    out = tmp_path / "runs.tar.xz"
    packed = archive.pack(sweep, out, max_rows=5)
    assert packed == sorted(r.name for r in runs[:2])  # the running one is left out
    restored, skipped = archive.unpack(out, tmp_path / "back")
    assert (restored, skipped) == ([f"study/{n}" for n in packed], [])
    assert (tmp_path / "back" / "study" / "spec.yaml").read_text() == "name: study\n"
    a = load_runs([str(sweep)])
    b = load_runs([str(tmp_path / "back" / "study")])
    keep = a.table["state"] == "done"
    assert list(b.table["run_id"]) == list(a.table["run_id"][keep])
    assert list(b.table["score"]) == list(a.table["score"][keep])
    for i in range(2):
        ia = int(np.flatnonzero(a.table["run_id"] == b.table["run_id"][i])[0])
        sa = slice(a.eval_offsets[ia], a.eval_offsets[ia + 1])
        sb = slice(b.eval_offsets[i], b.eval_offsets[i + 1])
        assert list(b.eval_values[sb]) == list(a.eval_values[sa])
        assert list(b.eval_steps[sb]) == list(a.eval_steps[sa])
        rows = (tmp_path / "back" / "study" / b.table["run_id"][i] / "metrics.csv").read_text()
        assert sum(",dual/eta," in r for r in rows.splitlines()) == 5  # 500 rows: 5 blocks of 100


def test_unpack_keeps_an_existing_run_and_rejects_a_hostile_member(tmp_path, capsys):
    sweep, runs = _sweep(tmp_path)
    out = tmp_path / "runs.tar.xz"
    archive.pack(sweep, out)
    restored, skipped = archive.unpack(out, tmp_path / "res")  # onto the originals
    assert restored == [] and len(skipped) == 2
    assert (runs[0] / "metrics.csv").read_text().count("loss/total") > 0  # not thinned over

    evil = tmp_path / "evil.tar.xz"
    with tarfile.open(evil, "w:xz") as tar:
        tar.add(runs[0] / "config.json", arcname="../outside/config.json")
    assert archive.main(["unpack", str(evil), str(tmp_path / "x")]) == 2
    assert "unexpected member '../outside/config.json'" in capsys.readouterr().err
    assert not (tmp_path / "outside").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, message", [
    (["pack", "nope", "o.tar.xz"], "sweep folder nope does not exist"),
    (["unpack", "nope.tar.xz", "r"], "archive nope.tar.xz does not exist"),
    (["pack", ".", "o.tar.xz", "--max-rows", "0"], "--max-rows 0: expected an int >= 1"),
])
def test_usage_errors_exit_2_and_name_the_path(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert archive.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.tar.xz").exists()


def test_pack_with_the_spec_lists_its_whole_grid_for_the_report(tmp_path):
    sweep, runs = _sweep(tmp_path)
    spec = tmp_path / "study.yaml"
    spec.write_text("name: study\nseeds: 2\nenvs: [CartPole-v1, Pendulum-v1]\n"
                    "budgets: {classic: {steps: 1000}}\nruns:\n  vmpo: {algo: vmpo}\n  ppo: {algo: ppo}\n")
    out = tmp_path / "runs.tar.xz"
    archive.pack(sweep, out, spec=spec)
    archive.unpack(out, tmp_path / "back")
    back = tmp_path / "back" / "study"
    assert (back / "spec.yaml").read_text() == spec.read_text()
    r = load_runs([str(back)])
    expected = r.manifests["study"]
    # 2 variants x 2 envs x 2 seeds, none of them the synthetic runs packed
    assert len(expected) == 8 and set(expected["variant"]) == {"vmpo", "ppo"}
    assert set(expected["run_id"]).isdisjoint(r.table["run_id"])

    spec.write_text(spec.read_text().replace("name: study", "name: other"))
    assert archive.main(["pack", str(sweep), str(tmp_path / "o.tar.xz"), "--spec", str(spec)]) == 2
    assert not (tmp_path / "o.tar.xz").exists()


def test_whole_cells_packs_only_the_cells_whose_seeds_all_finished(tmp_path):
    sweep, runs = _sweep(tmp_path)  # Hopper: seeds 0 and 1 done, 2 running
    cfg = run_config(sweep="study", algo="vmpo", variant="vmpo", suite="mujoco",
                     env="Ant-v5", seed=0, steps=1000)
    ant = write_run(sweep, cfg, linear_evals(5.0, 1000, 10))
    assert archive.pack(sweep, tmp_path / "a.tar.xz", whole_cells=2) == sorted(r.name for r in runs[:2])
    assert sorted(archive.pack(sweep, tmp_path / "b.tar.xz", whole_cells=1)) == sorted(
        [r.name for r in runs[:2]] + [ant.name])
    assert archive.main(["pack", str(sweep), str(tmp_path / "c.tar.xz"), "--whole-cells", "3"]) == 2


def test_an_archived_run_gives_the_trust_region_table_the_run_gave(tmp_path):
    """trust_regions works on spans of 1% of a run, coarser than the archive's blocks, so a
    packed and unpacked run gives what its full metrics gave, to within about a span."""
    from analysis import duals
    from analysis.completeness import check
    from analysis.scores import final_scores

    sweep = tmp_path / "res" / "study"
    rng = np.random.default_rng(0)
    steps = 1_000_000
    learner = np.arange(256, steps + 1, 256)  # 3,906 learner steps, V-MPO's 8 x 32 batches
    for seed in range(2):
        cfg = run_config(sweep="study", algo="vmpo", variant="vmpo", suite="mujoco",
                         env="Hopper-v5", seed=seed, steps=steps,
                         config={"eps_alpha_mu": 0.0075, "eps_alpha_sigma": 1e-5})
        rd = write_run(sweep, cfg, linear_evals(100.0, steps, 10))
        # the mean KL wanders around its bound: alpha rises while it is above, else floors
        phase = np.sin(learner / 37_000.0 + seed)
        kl = 0.0075 * (1.0 + 0.5 * phase + 0.3 * rng.standard_normal(len(learner)))
        alpha = np.where(phase > 0, 0.05 * phase, 1e-8)
        ess = 0.8 + 0.05 * rng.standard_normal(len(learner))
        with open(rd / "metrics.csv", "a") as f:
            for st, a, k, e in zip(learner.tolist(), alpha.tolist(), kl.tolist(), ess.tolist()):
                f.write(f"{st},dual/alpha_mu,{a!r},1.0\n{st},kl/mean,{k!r},1.0\n"
                        f"{st},kl/allowed_mean,0.0075,1.0\n{st},psi/ess_fraction,{e!r},1.0\n")
    (sweep / "spec.yaml").write_text("name: study\n")
    archive.pack(sweep, tmp_path / "runs.tar.xz")
    archive.unpack(tmp_path / "runs.tar.xz", tmp_path / "back")

    def table(path):
        runs = load_runs([str(path)])
        return duals.trust_regions(runs, final_scores(runs, check(runs)), ["vmpo"]).iloc[0]

    full, back = table(sweep), table(tmp_path / "back" / "study")
    assert 0.3 < full["mean_active"] < 0.7 and 0.5 < full["mean_kl_ratio"] < 1.5  # non-trivial
    assert back["mean_active"] == pytest.approx(full["mean_active"], abs=0.03)
    assert back["mean_kl_ratio"] == pytest.approx(full["mean_kl_ratio"], rel=0.02)
    assert back["ess_fraction"] == pytest.approx(full["ess_fraction"], rel=0.01)
