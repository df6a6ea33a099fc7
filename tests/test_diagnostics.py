"""Every learner's diagnostics in the report and the archive (issue 24 §3): policy std and
entropy, the KL between consecutive policies, and the KL an update was allowed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import archive, report
from analysis.duals import DIAG_METRICS
from analysis.synthetic import run_config, write_run


def _append(rd, rows):
    with open(rd / "metrics.csv", "a") as f:
        for step, metric, value in rows:
            f.write(f"{step},{metric},{value!r},1.000\n")


def test_diagnostics_are_drawn_for_every_learner_and_kept_by_the_archive(tmp_path):
    sweep = tmp_path / "res" / "s"
    for algo in ("ppo", "trpo"):
        for seed in range(2):
            cfg = run_config(sweep="s", algo=algo, variant=algo, suite="mujoco",
                             env="HalfCheetah-v5", seed=seed, steps=1000)
            rd = write_run(sweep, cfg, [(500, 100.0 + seed), (1000, 200.0 + seed)])
            std0 = 1.0 if algo == "ppo" else 0.5
            rows = []
            for k, step in enumerate(range(100, 1001, 100)):
                rows += [(step, "policy/std", std0 - 0.01 * k + 0.1 * seed),
                         (step, "policy/entropy", 1.4 - 0.02 * k),
                         (step, "kl/step", 0.01 * (seed + 1))]
                if algo == "trpo":
                    rows.append((step, "kl/allowed", 0.01))
            _append(rd, rows)
    out = tmp_path / "rep"
    report.build([str(sweep)], out, reps=100, seed=0, baseline=None, allow_incomplete=False)
    diag = pd.read_csv(out / "diagnostics.csv", comment="#")
    assert set(diag["variant"]) == {"ppo", "trpo"}
    assert set(diag["metric"]) == {"policy/std", "policy/entropy", "kl/step", "kl/allowed"}
    # the last span (900, 1000]: step 1000 only (k = 9); median over seeds 0 and 1
    last = diag[(diag["metric"] == "policy/std") & (diag["step"] == 1000)].set_index("variant")
    assert last.loc["ppo", "median"] == pytest.approx(np.median([1.0 - 0.09, 1.1 - 0.09]))
    assert last.loc["trpo", "median"] == pytest.approx(0.5 - 0.09 + 0.05)
    kl = diag[(diag["metric"] == "kl/step") & (diag["variant"] == "ppo")]
    assert np.allclose(kl["median"], 0.015)
    assert (out / "diagnostics_mujoco.png").is_file()
    assert "Every learner's policy width and step size" in (out / "report.md").read_text()

    packed = tmp_path / "a.tar.xz"
    archive.pack(sweep, packed)
    archive.unpack(packed, tmp_path / "restored")
    text = next((tmp_path / "restored" / "s").glob("*/metrics.csv")).read_text()
    for m in ("policy/std", "policy/entropy", "kl/step"):
        assert f",{m}," in text
    assert set(DIAG_METRICS) >= {"policy/std", "policy/entropy", "kl/step", "kl/allowed"}
