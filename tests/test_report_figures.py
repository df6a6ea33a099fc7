"""The report's figures as a reader sees them: per-env curves with every seed, the
ablation groups, the duals' bounds and floors, the diagnostics' update units, legends that
leave the axes room, the P(X > Y) groups, colours and order."""

import itertools
import re

import matplotlib.collections
import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from analysis import duals, plots, report
from analysis.synthetic import run_config, write_run

HOP, WAL = "Hopper-v5", "Walker2d-v5"
VMPO = {"rollout_length": 32, "num_envs": 8, "epochs": 1, "minibatch_size": 0,
        "eps_alpha_mu": 0.01, "eps_alpha_sigma": 1e-4}
CONFIGS = {"vmpo": VMPO, "vmpo-fixed-eta": {**VMPO, "dual_min": 1e-6}, "vmpo-no-topk": VMPO,
           "vmpo-loose": {**VMPO, "eps_alpha_mu": 0.1, "eps_alpha_sigma": 1e-3},
           "vmpo-no-alpha": {**VMPO, "trust_region": False},
           "ppo": {"rollout_length": 2048, "num_envs": 1, "epochs": 10, "minibatch_size": 64},
           "trpo": {"rollout_length": 2048, "num_envs": 1, "max_kl": 0.01}}
# per sweep: variant -> (algo, {env: seeds}); vmpo has 3 seeds on Hopper and 2 on Walker2d,
# so the aggregates keep 2 per env (4 runs) of its 5; ppo has 3 per env, seed 2 far above
# the others (`_evals`), so that its mean over seeds is not its median
GRID = {"new": {"vmpo": ("vmpo", {HOP: (0, 1, 2), WAL: (0, 1)}),
                "vmpo-loose": ("vmpo", {HOP: (0, 1), WAL: (0, 1)}),
                "vmpo-no-alpha": ("vmpo", {HOP: (0, 1), WAL: (0, 1)}),
                "vmpo-fixed-eta": ("vmpo", {HOP: (0, 1)}),
                "ppo": ("ppo", {HOP: (0, 1, 2), WAL: (0, 1, 2)}),
                "trpo": ("trpo", {HOP: (0, 1), WAL: (0, 1)})},
        "old": {"vmpo": ("vmpo", {HOP: (0, 1), WAL: (0, 1)}),
                "vmpo-no-topk": ("vmpo", {HOP: (0, 1), WAL: (0, 1)})}}
# vmpo-fixed-eta sits on its own floor, dual_min 1e-6, a hundred times the default's
ALPHA = {"vmpo": 1e-8, "vmpo-loose": 1e-3, "vmpo-fixed-eta": 1e-6, "vmpo-no-topk": 1e-2}


def _evals(sweep, variant, env, seed):
    top = 300.0 + 200 * seed + (2000 if seed == 2 else 0) + 37 * len(variant) + (400 if env == WAL else 0) + (50 if sweep == "old" else 0)
    return [(250, top * 0.2 + seed), (500, top * 0.5), (750, top * 0.7 - seed), (1000, top)]


def _rows(variant, algo):
    """Logged learner statistics, four per run: the duals of a V-MPO with a trust region,
    every learner's kl/step, TRPO's bound."""
    out = []
    for st in (100, 350, 600, 850):
        out.append((st, "kl/step", {"ppo": 0.02, "trpo": 0.008}.get(algo, 0.001)))
        if algo in ("ppo", "trpo"):
            out.append((st, "policy/std", 0.5))
        if algo == "trpo":
            out.append((st, "kl/allowed", 0.01))
        if variant in ALPHA:
            out += [(st, "dual/eta", 1.0), (st, "dual/alpha_mu", ALPHA[variant]),
                    (st, "kl/mean", 0.005)]
    return out


@pytest.fixture(scope="module")
def rep(tmp_path_factory):
    d = tmp_path_factory.mktemp("figs")
    for sweep, variants in GRID.items():
        for variant, (algo, envs) in variants.items():
            for env, seeds in envs.items():
                for seed in seeds:
                    cfg = run_config(sweep=sweep, algo=algo, variant=variant, suite="mujoco",
                                     env=env, seed=seed, steps=1000, config=CONFIGS[variant])
                    rd = write_run(d / "res" / sweep, cfg, _evals(sweep, variant, env, seed))
                    with open(rd / "metrics.csv", "a") as f:
                        f.writelines(f"{st},{m},{float(v)!r},1.0\n" for st, m, v in _rows(variant, algo))
    drawn = {}
    real = plots.save

    def spy(fig, out, name):  # save closes the figure; its artists stay readable
        drawn[name] = fig
        return real(fig, out, name)

    out = d / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save", spy)
        assert report.main([str(d / "res"), "--out", str(out), "--reps", "50", "--jobs", "1",
                            "--label", "old=defaults", "--allow-incomplete"]) == 0
    return d, out, drawn


def _lines(ax, gid=None):
    return [ln for ln in ax.lines if gid is None or ln.get_gid() == gid]


# ----------------------------------------------------------------------------------
# 1. Per-env learning curves with the seeds
# ----------------------------------------------------------------------------------
def test_per_env_curves_draw_a_panel_per_env_and_every_aggregated_seed_as_it_evaluated(rep):
    d, out, drawn = rep
    fig = drawn["curves_per_env_mujoco"]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == [HOP, WAL]
    for ax in panels:
        env = ax.get_title()
        seeds = _lines(ax, "seed")
        # every variant's runs the aggregates take: vmpo's third Hopper seed is left out
        n = {("new", v): len(GRID["new"][v][1].get(env, ())) for v in GRID["new"]}
        n[("new", "vmpo")] = 2
        n.update({("old", v): 2 for v in GRID["old"]})
        assert len(seeds) == sum(n.values())
        want = sorted(tuple(v for _, v in _evals(sw, var, env, s)) for (sw, var), k in n.items()
                      for s in range(k))
        got = sorted(tuple(float(y) for y in ln.get_ydata()) for ln in seeds)
        assert np.allclose(got, want)
        for ln in seeds:
            assert list(ln.get_xdata()) == [250, 500, 750, 1000]
        # each variant's mean over its seeds: one thick line per variant on that env
        means = {ln.get_color(): ln.get_ydata() for ln in _lines(ax, "mean")}
        assert len(_lines(ax, "mean")) == sum(1 for k in n.values() if k)
        vmpo = np.mean([[v for _, v in _evals("new", "vmpo", env, s)] for s in range(2)], axis=0)
        assert means[plots.Style(["vmpo"], 1, None).colour["vmpo"]] == pytest.approx(vmpo)
        # over 3 seeds, one far above: the mean, not the median
        ppo = np.array([[v for _, v in _evals("new", "ppo", env, s)] for s in range(3)])
        got = means[plots.Style(["ppo"], 1, None).colour["ppo"]]
        assert got == pytest.approx(ppo.mean(axis=0))
        assert not np.allclose(got, np.median(ppo, axis=0))
    # labelled variants dash-dotted and tinted, as in the other figures
    styles = {ln.get_color(): ln.get_linestyle() for ax in panels for ln in _lines(ax, "mean")}
    assert sorted(set(styles.values())) == ["-", "-."]
    csv = pd.read_csv(out / "curves_per_env.csv")
    assert set(csv["kind"]) == {"seed", "mean"}
    assert len(csv[(csv["kind"] == "seed") & (csv["variant"] == "vmpo")]) == 4 * 4  # 4 runs, 4 evals
    md = (out / "report.md").read_text()
    assert "![curves per env mujoco](curves_per_env_mujoco.png)" in md
    assert md.index("### Sample efficiency") < md.index("curves_per_env_mujoco.png")


def test_a_mean_over_seeds_evaluated_at_different_steps_interpolates_within_their_range():
    from analysis.seed_curves import mean_curve

    # three runs, one far above the others: a median would give the middle run's values
    a = (np.array([100, 200, 300]), np.array([1.0, 2.0, 3.0]))
    b = (np.array([150, 250]), np.array([10.0, 20.0]))
    c = (np.array([120, 260]), np.array([100.0, 240.0]))
    steps, mean = mean_curve([a, b, c])
    assert list(steps) == [150, 250]  # b's steps: the run with the fewest, in every range
    # a at 150 and 250: 1.5, 2.5; c at 150: 100 + 30/140 x 140 = 130, at 250: 230
    assert mean == pytest.approx([(1.5 + 10 + 130) / 3, (2.5 + 20 + 230) / 3])
    steps, mean = mean_curve([a, (np.array([100, 200, 300]), np.array([3.0, 2.0, 1.0])),
                              (np.array([100, 200, 300]), np.array([30.0, 2.0, 7.0]))])
    assert list(steps) == [100, 200, 300]
    assert mean == pytest.approx([34 / 3, 2.0, 11 / 3])  # medians: 3, 2, 3


# ----------------------------------------------------------------------------------
# 2. Ablations
# ----------------------------------------------------------------------------------
def test_ablation_groups_say_their_own_envs_and_label_and_shade_only_what_they_draw(rep):
    _, out, drawn = rep
    fig = drawn["ablation"]
    ax = fig.axes[0]
    ticks = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
    # vmpo's group on both envs, vmpo's on Hopper only (fixed-eta), then the defaults study
    assert ticks == ["vmpo (n=4, 2 envs)", "vmpo-loose (n=4, 2 envs)",
                     "vmpo-no-alpha (n=4, 2 envs)",
                     "vmpo (n=2, 1 env)", "vmpo-fixed-eta (n=2, 1 env)",
                     "vmpo@defaults (n=4, 2 envs)", "vmpo-no-topk@defaults (n=4, 2 envs)"]
    seps = [ln for ln in ax.lines if ln.get_color() == "grey"]
    assert len(seps) == 2  # three groups
    caps = [t.get_text() for t in ax.texts]
    assert caps == ["new\nHopper, Walker2d", "new\nHopper", "old (@defaults)\nHopper, Walker2d"]
    assert "shaded: each group's full V-MPO interval" in fig._suptitle.get_text()
    assert "tinted: the defaults study (X@defaults)" in fig._suptitle.get_text()
    bands = [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]
    assert len(bands) == 3  # a band per group, across its bars
    full = pd.read_csv(out / "ablation.csv").drop_duplicates(["full", "n_tasks"])
    spans = sorted((b.get_paths()[0].vertices[:, 1].min(), b.get_paths()[0].vertices[:, 1].max())
                   for b in bands)
    assert np.allclose(spans, sorted(zip(full["full_lower"], full["full_upper"])), rtol=1e-5)


def test_an_ablation_figure_without_a_band_does_not_say_shaded(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    ab = pd.DataFrame([{"suite": "mujoco", "variant": "vmpo-no-topk", "point": 0.2,
                        "lower": 0.1, "upper": 0.3, "n_runs": 3, "full": "vmpo",
                        "full_point": 0.4, "full_lower": np.nan, "full_upper": np.nan,
                        "full_n_runs": 3, "n_tasks": 1, "p_full_better": 0.9,
                        "p_lower": 0.5, "p_upper": 1.0}])
    plots.ablation_figure(ab, plots.Style(["vmpo", "vmpo-no-topk"], 10, None), tmp_path)
    title = drawn["ablation"]._suptitle.get_text()
    bands = [c for c in drawn["ablation"].axes[0].collections
             if isinstance(c, matplotlib.collections.PolyCollection)]
    assert "shaded" not in title and not bands
    assert [t.get_text() for t in drawn["ablation"].axes[0].texts] == ["unlabelled\n1 env"]


# ----------------------------------------------------------------------------------
# 3. Duals
# ----------------------------------------------------------------------------------
def test_duals_figure_bounds_every_variant_whose_epsilon_differs_from_its_full_s(rep):
    _, out, drawn = rep
    fig = drawn["duals_mujoco"]
    title = fig._suptitle.get_text()
    assert "against agent env steps" in title and "per learner step" not in title
    # duals.csv's step: agent env steps, the ends of the 50-step spans (a twentieth of
    # the 1,000-step runs) the learner steps logged at 100, 350, 600, 850 fall in
    assert set(pd.read_csv(out / "duals.csv")["step"]) == {100, 350, 600, 850}
    st = plots.Style(["vmpo", "vmpo-loose", "vmpo@defaults"], 10, None)
    kl = next(ax for ax in fig.axes if ax.get_title() == "KL, mean part")
    hl = {ln.get_ydata()[0]: ln.get_color() for ln in kl.lines if ln.get_linestyle() == "--"}
    # vmpo's, vmpo@defaults' (both 0.01) and the looser probe's 0.1; not fixed-eta (same ε
    # as vmpo) nor no-alpha (no trust region)
    assert set(hl) == {0.01, 0.1}
    assert hl[0.1] == st.colour["vmpo-loose"]
    assert "the KL bounds ε of vmpo, vmpo@defaults, vmpo-loose in their colours" in title
    lo, hi = kl.get_ylim()
    assert lo < 0.005 and hi > 0.1  # the loose bound, above every KL, stays on the axis
    # run counts: the 4 runs the aggregates take, not vmpo's 5 ok runs
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "vmpo (n=4, 2 envs)" in legend
    agg = pd.read_csv(out / "aggregate.csv")
    assert set(agg.loc[agg["variant"] == "vmpo", "n_runs"]) == {4}


def test_the_floor_goes_under_the_data_and_a_strip_marks_each_variant_on_it(rep):
    _, _, drawn = rep
    fig = drawn["duals_mujoco"]
    ax = next(a for a in fig.axes if a.get_title() == "α_μ (mean KL)")
    floor = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    data = [ln for ln in ax.lines if ln.get_label() and not ln.get_label().startswith("_")]
    # each run's own floor: the default 1e-8 (duals.DUAL_MIN) and fixed-eta's dual_min 1e-6
    assert sorted(ln.get_ydata()[0] for ln in floor) == [duals.DUAL_MIN, 1e-6]
    assert max(ln.get_zorder() for ln in floor) < min(ln.get_zorder() for ln in data)
    strips = [ln for ln in ax.lines if ln.get_linewidth() > 2]
    # vmpo and vmpo@defaults sit on 1e-8, vmpo-fixed-eta on its 1e-6: one strip each,
    # under the lower floor, apart; vmpo-loose and vmpo-no-topk@defaults (above) none
    on = ["vmpo", "vmpo@defaults", "vmpo-fixed-eta"]
    st = plots.Style(on, 10, None)
    assert [ln.get_color() for ln in strips] == [st.colour[v] for v in on]
    assert [ln.get_linestyle() for ln in strips] == ["-", "-.", "-"]
    ys = [np.nanmax(ln.get_ydata()) for ln in strips]
    assert max(ys) < 1e-8 and len(set(ys)) == 3 and ax.get_ylim()[0] < min(ys)
    assert "floors (dual_min) 1e-08: vmpo, vmpo@defaults" in fig._suptitle.get_text()
    assert "1e-06: vmpo-fixed-eta" in fig._suptitle.get_text()


def test_trust_regions_count_the_runs_the_figures_draw(rep):
    _, out, _ = rep
    tr = pd.read_csv(out / "trust_regions.csv")
    # vmpo's third Hopper seed is done but not aggregated (2 seeds per env kept)
    assert tr.loc[(tr["variant"] == "vmpo") & (tr["env"] == HOP), "runs"].tolist() == [2]
    # fixed-eta's alpha at 1e-6 is on its own floor, not 100x above the default's: inactive
    assert tr.loc[tr["variant"] == "vmpo-fixed-eta", "mean_active"].tolist() == [0.0]


# ----------------------------------------------------------------------------------
# 4. Diagnostics
# ----------------------------------------------------------------------------------
def test_diagnostics_title_and_update_units_come_from_what_is_drawn(rep):
    _, _, drawn = rep
    fig = drawn["diagnostics_mujoco"]
    title = fig._suptitle.get_text()
    assert title.startswith("MuJoCo: policy width and step size of PPO, TRPO, V-MPO (")
    assert "dashed: the KL an update was allowed (trpo: TRPO's max_kl)" in title
    note = fig.texts[-1].get_text()
    # PPO: 10 epochs of ceil(2048 / 64) = 32 minibatches; V-MPO: one whole-batch step
    # over 32 x 8 steps
    assert "ppo: 10 epochs x 32 minibatches of 64 over a 2,048-step rollout (320 gradient steps)" in note
    assert "trpo: one natural-gradient step, line-searched within max_kl 0.01, on a 2,048-step rollout" in note
    assert ("vmpo, vmpo@defaults, vmpo-fixed-eta, vmpo-loose, vmpo-no-alpha, "
            "vmpo-no-topk@defaults: 1 epoch x the whole batch over a 256-step rollout "
            "(1 gradient step)") in note


def test_a_diagnostics_figure_without_trpo_promises_no_max_kl(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    tr = pd.DataFrame({"suite": "mujoco", "variant": ["ppo", "vmpo"] * 2, "metric": "kl/step",
                       "step": [1, 1, 2, 2], "median": 1e-2, "q25": 1e-3, "q75": 1e-1,
                       "n_runs": 3})
    plots.diagnostics_figure(tr, "mujoco", plots.Style(["ppo", "vmpo"], 10, None), tmp_path,
                             {"ppo": "ppo", "vmpo": "vmpo"})
    title = drawn["diagnostics_mujoco"]._suptitle.get_text()
    assert "of PPO, V-MPO (" in title and "max_kl" not in title and "dashed" not in title


def test_a_diagnostics_panel_names_the_variants_that_did_not_log_its_metric(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    rows = [("ppo", "policy/std"), ("ppo", "policy/entropy"), ("vmpo", "policy/std"),
            ("vmpo-no-alpha", "policy/std"), ("ppo", "kl/step"), ("vmpo", "kl/step"),
            ("vmpo-no-alpha", "kl/step")]
    tr = pd.DataFrame([{"suite": "mujoco", "variant": v, "metric": m, "step": st, "median": 0.5,
                        "q25": 0.4, "q75": 0.6, "n_runs": 3} for v, m in rows for st in (1, 2)])
    variants = ["ppo", "vmpo", "vmpo-no-alpha"]
    plots.diagnostics_figure(tr, "mujoco", plots.Style(variants, 10, None), tmp_path,
                             {v: v.split("-")[0] for v in variants})
    notes = [[t.get_text() for t in ax.texts] for ax in drawn["diagnostics_mujoco"].axes]
    # std, entropy, KL panels: only the entropy panel misses variants, and names both
    assert notes[0] == [] and notes[2] == []
    assert notes[1] == ["not logged by\nvmpo\nvmpo-no-alpha"]


def test_update_text_counts_each_learner_s_gradient_steps():
    ut = duals.update_text
    # V-MPO tuned: 8 epochs of ceil(256 / 64) = 4 minibatches
    assert ut("vmpo", {**VMPO, "epochs": 8, "minibatch_size": 64}) == \
        "8 epochs x 4 minibatches of 64 over a 256-step rollout (32 gradient steps)"
    # a short last minibatch counts: ceil(2048 / 100) = 21
    assert ut("ppo", {"rollout_length": 2048, "num_envs": 1, "epochs": 2,
                      "minibatch_size": 100}).endswith("(42 gradient steps)")
    assert ut("mpo", {"rollout_length": 250, "batch_size": 256, "replay_ratio": 0.125}) == \
        "one gradient step on 256 replayed sequences (0.125 updates per env step)"
    assert ut("sac", {"rollout_length": 1}) is None and ut("ppo", {}) is None


@pytest.mark.parametrize("mb", [0, 1, 64, 100, 255, 256, 257, 1000])
def test_update_text_counts_steps_as_the_learners_do(mb):
    # algos/onpolicy.steps_per_pass, which the report may not import, is the reference
    onpolicy = pytest.importorskip("algos.onpolicy")
    k = onpolicy.steps_per_pass(256, mb)
    text = duals.update_text("vmpo", {**VMPO, "epochs": 3, "minibatch_size": mb})
    assert text.endswith(f"({3 * k} gradient steps)")
    assert ("the whole batch" in text) == (k == 1)


# ----------------------------------------------------------------------------------
# 5. Readability
# ----------------------------------------------------------------------------------
def _width_share(fig, ax) -> float:
    """The axes' share of the width a saved figure has (bbox_inches="tight")."""
    r = fig.canvas.get_renderer()
    return ax.get_window_extent(r).width / (fig.get_tightbbox(r).width * fig.dpi)


def test_the_profile_legend_leaves_the_axes_at_least_half_the_width(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    vs = [f"vmpo-variant-number-{i}" for i in range(6)] + [f"ppo-{i}@defaults" for i in range(6)]
    prof = pd.DataFrame([{"suite": "mujoco", "variant": v, "tau": t, "point": 1 - t,
                          "lower": 0.0, "upper": 1.0, "n_runs": 12}
                         for v in vs for t in (0.0, 0.5, 1.0)])
    plots.profile_figure(prof, "mujoco", plots.Style(vs, 10, None), tmp_path)
    fig = drawn["profile_mujoco"]
    fig.canvas.draw()
    assert _width_share(fig, fig.axes[0]) >= 0.5
    title = fig._suptitle.get_text()
    assert "tinted, dash-dotted: the defaults study (X@defaults)" in title
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "ppo-0@defaults (n=12)" and labels[6] == "vmpo-variant-number-0 (n=12)"


def test_variants_sort_by_base_name_then_label():
    assert plots.order(["vmpo-no-topk", "vmpo@defaults", "vmpo", "ppo@defaults", "ppo",
                        "vmpo-no-topk@defaults"]) == [
        "ppo", "ppo@defaults", "vmpo", "vmpo@defaults", "vmpo-no-topk", "vmpo-no-topk@defaults"]


def test_aggregate_rows_put_a_labelled_variant_beside_its_namesake(rep):
    _, _, drawn = rep
    ax = drawn["aggregate_mujoco"].axes[0]
    names = [t.get_text().split(" (")[0] for t in ax.get_yticklabels()]
    assert names.index("vmpo@defaults") == names.index("vmpo") + 1


def test_a_control_row_is_tagged_and_hatched_and_no_other(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    row = {"suite": "mujoco", "lower": 0.2, "upper": 0.6, "point": 0.4, "n_x": 6, "n_y": 6,
           "n_tasks": 2}
    poi = pd.DataFrame([{**row, "kind": "label", "x": "ppo", "y": "ppo@d"},
                        {**row, "kind": "label", "x": "vmpo", "y": "vmpo@d"}])
    st = plots.Style(["ppo", "ppo@d", "vmpo", "vmpo@d"], 10, None)
    plots.poi_figure(poi, "mujoco", st, tmp_path, [("ppo", "ppo@d")])
    ax = drawn["poi_mujoco"].axes[0]
    ticks = {t.get_text().split("  ")[0]: t.get_text() for t in ax.get_yticklabels()}
    assert ticks["P(ppo > ppo@d)"].endswith("\n" + plots.CONTROL_TAG)
    assert plots.CONTROL_TAG not in ticks["P(vmpo > vmpo@d)"]
    hatched = [b.get_hatch() for b in ax.patches]
    assert sorted(map(bool, hatched)) == [False, True]
    assert "hatched: a control" in ax.get_xlabel()
    drawn.clear()
    plots.poi_figure(poi, "mujoco", st, tmp_path)  # no control: no tag, no hatch
    ax = drawn["poi_mujoco"].axes[0]
    assert not any(b.get_hatch() for b in ax.patches)
    assert not any(plots.CONTROL_TAG in t.get_text() for t in ax.get_yticklabels())
    assert "hatched" not in ax.get_xlabel()


def test_poi_rows_are_grouped_by_kind_with_their_values_off_the_half_line(rep):
    _, out, drawn = rep
    ax = drawn["poi_mujoco"].axes[0]
    # no two runs of this report share a run id: no row is a control
    assert not any(plots.CONTROL_TAG in t.get_text() for t in ax.get_yticklabels())
    poi = pd.read_csv(out / "probability_of_improvement.csv")
    # the baseline V-MPO against an ablation is both kinds: drawn once, with the ablations
    both = poi.groupby(["x", "y"])["kind"].agg(set)
    assert {"baseline", "ablation"} in list(both)
    poi = poi.assign(kind=[("ablation" if "ablation" in both[(r.x, r.y)] else r.kind)
                           for r in poi.itertuples()]).drop_duplicates(["x", "y"])
    heads = [t for t in ax.texts if t.get_fontstyle() == "italic"]
    kinds = [k for k in plots.POI_KINDS if k in set(poi["kind"])]
    assert [t.get_text() for t in heads] == [plots.POI_KINDS[k] for k in kinds]
    seps = [ln for ln in ax.lines if ln.get_color() == "grey" and ln.get_linestyle() == "-"]
    assert len(seps) == len(kinds) - 1
    # every value written right of the axes (x > 1 in axes units), none on the 0.5 line
    vals = [t for t in ax.texts if re.match(r"^[0-9.e-]+ \[", t.get_text())]
    assert len(vals) == len(poi) and all(t.get_position()[0] > 1 for t in vals)
    # the rows of a kind stay together: the y of each row falls between its heading's and
    # the next heading's
    ys = {t.get_text(): t.get_position()[1] for t in heads}
    rows = {lab.get_text(): y for lab, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    for r in poi.itertuples():
        y = next(v for k, v in rows.items() if k.startswith(f"P({r.x} > {r.y})"))
        mine = ys[plots.POI_KINDS[r.kind]]
        later = [v for v in ys.values() if v < mine]
        assert y < mine and all(y > v for v in later)


# ----------------------------------------------------------------------------------
# 6. Colours
# ----------------------------------------------------------------------------------
def _lab(rgb):
    """sRGB -> CIELAB (D65), written out here to check plots' colours independently."""
    c = np.asarray(mcolors.to_rgb(rgb), dtype=float)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_no_two_drawn_variants_share_a_colour_and_labelled_ones_stay_apart():
    names = list(plots.CANONICAL) + [f"{v}@defaults" for v in plots.CANONICAL]
    st = plots.Style(names, 10, None)
    cols = {v: mcolors.to_rgb(st.colour[v]) for v in names}
    assert len(set(cols.values())) == len(names)
    # CIE76 distance in Lab: the closest pair at one tint of 0.5 (ppo@x, mpo@x) was 13.1
    dist = {(a, b): float(np.linalg.norm(_lab(cols[a]) - _lab(cols[b])))
            for a, b in itertools.combinations(names, 2)}
    worst = min(dist, key=dist.get)
    assert dist[worst] >= 20, (worst, dist[worst])
    # the pair a reader confused: 28.6 at one tint of 0.5
    assert dist[("vmpo-fixed-eta@defaults", "mpo@defaults")] > 32
    # each labelled colour a tint of its namesake's, lighter, and no paler than 0.5
    for v in plots.CANONICAL:
        b, t = np.array(cols[v]), np.array(cols[f"{v}@defaults"])
        w = plots.labelled_tint(v)
        assert t == pytest.approx(b + (1 - b) * w) and 0.25 <= w <= 0.5
    # the study's twelve variants
    study = ["mpo@defaults", "ppo", "ppo@defaults", "trpo@defaults", "vmpo", "vmpo@defaults",
             "vmpo-fixed-eta", "vmpo-fixed-eta@defaults", "vmpo-no-alpha",
             "vmpo-no-alpha@defaults", "vmpo-no-topk", "vmpo-no-topk@defaults"]
    st = plots.Style(study, 10, None)
    assert len({mcolors.to_hex(st.colour[v]) for v in study}) == len(study)
