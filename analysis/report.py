"""The rliable report of one or more sweeps: tables, figures and report.md.

    python analysis/report.py [RESULTS ...] [--out DIR] [--reps N] [--seed N]
                              [--baseline VARIANT] [--allow-incomplete]
                              [--curve-points K] [--engine fast|rliable]
                              [--label SWEEP=LABEL ...] [--variants V1,V2,...]

RESULTS are results roots (folders of sweeps) or sweep folders; with none, every sweep
under ./results. An env without a reference pair (suites.reference; a spec's
`references:`) is not normalised: it is reported in raw returns as a stratum of its own,
suite `raw:<env>` (scores.stratify), with the same estimators less the optimality gap. Without --out each sweep gets its own report in ./reports/<sweep>/;
with --out DIR the sweeps given are pooled into one report in DIR. A report folder is
written in a temporary sibling and renamed into place, so it is never half written; an
existing DIR is replaced only if it is empty or an earlier report (it holds report.md).

Exit status: 0 done; 2 a usage error (bad path or field, unknown variant, an incomplete
grid without --allow-incomplete, a bad --label or --variants or either without --out,
an --out that is a file or cannot be written), with a
message naming what is wrong; 1 writing failed (a full disk: the temp folder is removed,
an earlier report is left as it was). A report killed while writing leaves a temp folder
(or a replaced report) beside DIR, which the next report of DIR removes.

--label SWEEP=LABEL renames the variants of SWEEP `<variant>@LABEL` (analysis/labels.py),
so that two studies whose variants share names (a study at defaults and its tuned rerun)
pool into one report, with P(X > X@LABEL) for every variant but the ablations both ran;
--variants keeps only the variants named (after labelling), and their rows of the manifests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python analysis/report.py
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

try:  # a Python without the project's packages (the system one, say): say what to run
    import matplotlib, pandas, rliable  # noqa: E401, F401
except ModuleNotFoundError as _e:
    print(f"error: {_e} in {sys.executable}: this Python lacks vmpo-bench's dependencies; set "
          "up with `bash scripts/setup.sh`, then run `.venv/bin/python analysis/report.py ...`",
          file=sys.stderr)
    sys.exit(2)

import pandas as pd

from analysis import completeness, duals, outdir, published, report_md, seed_curves, tables
from analysis import labels as label_mod
from analysis.claims import ablation_claims
from analysis.load import Runs, UsageError, load
from analysis.report_sections import (append_section, held_out_envs_section,
                                      seeds_needed_section)
from analysis.scores import final_scores, is_raw, mixed_budgets, stratify, without_pair
from analysis.scores import groups as make_groups

DEFAULT_REPS = 50_000
ENGINES = ("fast", "rliable")  # analysis.bootstrap.ENGINES, kept here so --help is quick


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="analysis/report.py",
        description="rliable report (IQM, median, mean, optimality gap with stratified-"
                    "bootstrap CIs, performance profiles, probability of improvement, "
                    "sample efficiency, V-MPO ablations) from run directories.")
    p.add_argument("results", nargs="*", metavar="RESULTS",
                   help="results roots or sweep folders (default: every sweep under ./results)")
    p.add_argument("--out", metavar="DIR", help="write one report of all RESULTS here "
                   "(default: one report per sweep in ./reports/<sweep>/)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS,
                   help=f"bootstrap replications (default {DEFAULT_REPS:,})")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--baseline", default=None, metavar="VARIANT",
                   help="variant whose probability of improvement over every other "
                        "variant is reported (default: vmpo)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="aggregate the finished runs of an incomplete grid and mark the "
                        "report incomplete (default: refuse, exit 2)")
    p.add_argument("--curve-points", type=int, default=20, metavar="K",
                   help="points of the sample-efficiency curves (default 20)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes for the bootstrap (default: the usable cores, "
                        "at most 2); results do not depend on it")
    p.add_argument("--label", action="append", default=[], metavar="SWEEP=LABEL",
                   help="name the variants of SWEEP <variant>@LABEL (repeatable), to pool "
                        "two studies whose variants share names, e.g. --label "
                        "mujoco-core=defaults; P(X > X@LABEL) is reported for each X")
    p.add_argument("--variants", default=None, metavar="V1,V2,...",
                   help="report only these variants (names after --label), e.g. to leave "
                        "a labelled study's ablations out (default: every variant)")
    p.add_argument("--engine", choices=ENGINES, default="fast",
                   help="bootstrap engine: 'fast' (vectorised, equal to rliable) or "
                        "'rliable' (rliable's own loop; slow)")
    a = p.parse_args(argv)
    if a.reps < 1:
        p.error(f"--reps must be a positive integer, got {a.reps}")
    if a.curve_points < 1:
        p.error(f"--curve-points must be a positive integer, got {a.curve_points}")
    if a.jobs is not None and a.jobs < 1:
        p.error(f"--jobs must be a positive integer, got {a.jobs}")
    if not 0 <= a.seed < 2**32:
        p.error(f"--seed must be in [0, 2**32), got {a.seed}")
    return a


# ----------------------------------------------------------------------------------
# One report
# ----------------------------------------------------------------------------------
def _incomplete_note(status: pd.DataFrame) -> str | None:
    bad = status[status["status"] != "ok"]
    if bad.empty:
        return None
    counts = ", ".join(f"{int((bad['status'] == s).sum())} {s}"
                       for s in completeness.NOT_OK if (bad["status"] == s).any())
    return (f"INCOMPLETE GRID: {len(status) - len(bad)} of {len(status)} expected runs "
            f"finished ({counts}).")


def build(paths: list[str], out: Path, *, reps: int, seed: int, baseline: str | None,
          allow_incomplete: bool, curve_points: int = 20, engine: str = "fast",
          command: str = "", n_jobs: int | None = None,
          labels: dict[str, str] | None = None,
          variants: list[str] | None = None) -> list[str]:
    """Write one report of the sweeps under `paths` to `out`; return the files written.
    labels: sweep -> label, its variants renamed `<variant>@<label>` (analysis/labels.py).
    variants: the (labelled) variant names to report, None for all; trials stay.

    UsageError (nothing written) for bad input; an OSError while writing (a full disk)
    leaves `out` as it was."""
    outdir.check_out(out)
    from analysis import tuning

    # A test sweep's tuning trials (its `<sweep>-tune` sibling) join the report, but only
    # in its tuning section: every headline table and figure is drawn from the rest.
    runs, trials = tuning.split_trials(load(list(paths) + tuning.sibling_tune_sweeps(paths)))
    runs = label_mod.apply(runs, labels or {}, tuned=_tested_sweeps(trials))
    if variants is not None:
        runs = _only(runs, variants)
    if runs.table.empty and not trials.table.empty:
        return _tuning_only(trials, out)
    if runs.table.empty:
        raise UsageError(f"no run directories under {', '.join(map(str, paths))}")
    status = completeness.check(runs)
    if not allow_incomplete:
        completeness.require_complete(status)
    completeness.check_duplicates(status, runs)
    final = final_scores(runs, status)
    if final.empty:
        raise UsageError("no finished run with an eval/return to aggregate "
                         f"({len(runs.table)} run directories, none ok)")
    raw_only = without_pair(final)
    # The normalised aggregates take the envs with a reference pair; each env without one
    # is a stratum of its own in raw returns (scores.stratify); the per-env table shows
    # every env's raw returns (est.per_env below, from `final` whole).
    full_final, final = final, stratify(final)
    if final.empty:
        raise UsageError("no finished run with a finite eval/return to aggregate "
                         f"({len(full_final)} ok runs)")
    groups = make_groups(final)
    variants = sorted(set(final["variant"]))
    if baseline is not None and baseline not in variants:
        raise UsageError(f"--baseline {baseline!r} has no finished runs; variants: "
                         f"{', '.join(variants)}")
    base = baseline or "vmpo"
    from analysis import aggregate as agg_mod  # rliable and arch: imported when needed

    est = agg_mod.estimate(runs, final, groups, baseline=base, reps=reps, seed=seed,
                           engine=engine, curve_points=curve_points, n_jobs=n_jobs)
    if raw_only:  # report.md says why they are not normalised (report_md.raw_note)
        est.per_env = agg_mod.per_env(full_final)
    note = _incomplete_note(status)
    complete = note is None
    summary = completeness.summary(status)

    def write(tmp: Path) -> list[str]:
        files = _write_all(tmp, runs, status, summary, final, groups, est, note, complete,
                           reps, seed, engine, command, variants)
        files = append_section(tmp, files, *seeds_needed_section(tmp, est, groups, seed,
                                                                 complete, note))
        if not trials.table.empty:
            files = append_section(tmp, files, *held_out_envs_section(
                tmp, trials, groups, final, reps, seed, engine, n_jobs, complete, note))
            files = append_section(tmp, files, *tuning.section(trials, tmp,
                                                               label_mod.unlabelled(runs)))
        return files

    return outdir.write_atomically(out, write)


def _only(runs: Runs, variants: list[str]) -> Runs:
    """The runs (and manifest rows) of `variants`; UsageError naming any not present."""
    from analysis.tuning import subset

    have = set(runs.table["variant"]) | {v for m in runs.manifests.values() if m is not None
                                         for v in m["variant"]}
    unknown = [v for v in variants if v not in have]
    if unknown:
        raise UsageError(f"--variants: no variant {', '.join(map(repr, unknown))} in this "
                         f"report; its variants: {', '.join(sorted(have)) or 'none'}")
    out = subset(runs, runs.table["variant"].isin(variants).to_numpy())
    # every sweep's manifest stays (its rows of `variants`): a named variant none of whose
    # runs has started is still expected, and the report says it is missing
    out.manifests = {k: (m if m is None else m[m["variant"].isin(variants)].reset_index(drop=True))
                     for k, m in runs.manifests.items()}
    out.sweep_paths = dict(runs.sweep_paths)
    return out


def _tested_sweeps(trials: Runs) -> set[str]:
    """The tune sweeps of these trials and the test sweeps they tuned (`<sweep>-tune`)."""
    from analysis.tuning import TUNE_SUFFIX

    tune = set(trials.sweep_paths)
    return tune | {s.removesuffix(TUNE_SUFFIX) for s in tune}


def _tuning_only(trials, out: Path) -> list[str]:
    """The report of a tune sweep alone: its tuning section."""
    from analysis import tuning

    def write(tmp: Path) -> list[str]:
        files, lines = tuning.section(trials, tmp)
        head = [f"# vmpo-bench tuning report: {', '.join(sorted(trials.sweep_paths))}", "",
                "Tuning trials only: the headline comes from the test sweep's report."]
        (tmp / outdir.MARKER).write_text("\n".join(head + [""] + lines) + "\n")
        return files + [outdir.MARKER]

    return outdir.write_atomically(out, write)


def _write_all(d: Path, runs, status, summary, final, groups, est, note, complete, reps,
               seed, engine, command, variants) -> list[str]:
    from analysis import plots  # matplotlib: imported when needed

    W = tables.write
    files: list[str] = []
    cap = f"95% stratified-bootstrap CIs ({reps:,} reps, seed {seed})."
    raw = [is_raw(s) for s in est.aggregate["suite"]]
    # (captions go to LaTeX too: no backticks or angle brackets)
    raw_cap = (" A suite named raw:ENV holds the raw returns of one env without a reference "
               "pair; no optimality gap there (the gap to a normalised score of 1 has no "
               "meaning in raw units); its Median is rliable's median over envs of each "
               "env's mean, with one env the mean over seeds." if any(raw) else "")
    what = "Aggregate final returns" if all(raw) else "Aggregate normalised final scores"
    files += W(d, "aggregate", est.aggregate,
               tables.aggregate_wide(est.aggregate, report_md.env_lists(groups)),
               f"{what}, point [95% CI]; " + cap + raw_cap, complete, note)
    if not est.aggregate_auc.empty:
        what_auc = ("Aggregate area under the learning curve in raw returns" if all(raw) else
                    "Aggregate normalised area under the learning curve")
        files += W(d, "aggregate_auc", est.aggregate_auc,
                   tables.aggregate_wide(est.aggregate_auc, report_md.env_lists(groups)),
                   f"{what_auc} (auc: each run's mean over all its evaluations; the runs of "
                   "the final-score table), point [95% CI]; " + cap + raw_cap, complete, note)
    files += W(d, "per_env", est.per_env, tables.per_env_wide(est.per_env),
               "Final scores per env: mean [Student-t 95% CI] over seeds.", complete, note)
    files += W(d, "probability_of_improvement", est.poi, tables.poi_wide(est.poi),
               "Probability of improvement P(X > Y), point [95% CI]; " + cap, complete, note)
    raw_iqm = (" A suite named raw:ENV: IQMs of the raw returns of one env without a "
               "reference pair." if any(raw) else "")
    files += W(d, "ablation", est.ablation, tables.ablation_wide(est.ablation),
               "V-MPO ablations: IQM beside full V-MPO and P(full > ablation); " + cap
               + raw_iqm, complete, note)
    files += W(d, "curves", est.curves, None, "", complete, note)
    files += W(d, "profiles", est.profiles, None, "", complete, note)
    files += W(d, "completeness", status.drop(columns=["row"]), None, "", complete, note)
    files += W(d, "completeness_summary", summary, tables.completeness_wide(summary),
               "Runs per variant and env by status.", complete, note)
    cmp = published.compare(est.per_env, final)
    if not cmp.empty:
        files += W(d, "published", cmp, cmp, "Our final returns beside published figures "
                   "(protocols differ; see the protocol column).", complete, note)
    side = published.side_by_side(est.per_env, final)
    if not side.empty:
        files += W(d, "published_side_by_side", side, side,
                   "Ours (mean [Student-t 95% CI] over seeds) beside each published figure "
                   "(mean ± std as published) and ours as a fraction of it; 'below half of' "
                   "lists the sources of our budget that ours is under half of.", complete, note)
    if not est.common.empty:
        files += W(d, "common_budget", est.common, tables.common_wide(est.common),
                   "IQM of normalised scores of every variant at the smallest budget; " + cap
                   + raw_iqm, complete, note)
    claims = ablation_claims(runs, final, est, status)

    env_counts = {}
    for (suite, v), g in groups.items():
        env_counts.setdefault(suite, {})[v] = len(g.envs)
    style = plots.Style(variants, reps, note, mixed_budgets(final),
                        {s: c for s, c in env_counts.items() if len(set(c.values())) > 1})
    # the normalised suites first, then the raw-return strata
    suites = sorted(set(est.aggregate["suite"]), key=lambda s: (is_raw(s), s))
    plots.assign_file_keys(set(suites) | set(final["suite"]))  # distinct figure file names
    figs: dict[str, dict[str, list[str]]] = {s: {} for s in suites}
    for s in suites:
        figs[s]["aggregate"] = plots.aggregate_figure(est.aggregate, s, style, d)
        figs[s]["profile"] = plots.profile_figure(est.profiles, s, style, d)
        if (est.poi["suite"] == s).any():
            figs[s]["poi"] = plots.poi_figure(est.poi, s, style, d,
                                              [(x, y) for (s_, x, y) in est.shared if s_ == s])
        if (est.curves["suite"] == s).any():
            figs[s]["curves"] = plots.curve_figure(est.curves, s, style, d)
    seeds = seed_curves.table(runs, groups)
    if len(seeds):
        files += W(d, "curves_per_env", seeds, None, "", complete, note)
        for s in suites:
            if f := plots.per_env_curve_figure(seeds, s, style, d):
                figs[s]["curves_per_env"] = f
    abl_fig = (plots.ablation_figure(est.ablation, style, d,
                                     *_ablation_captions(final, groups, est.ablation))
               if len(est.ablation) else [])
    vmpo_variants = sorted(set(final.loc[final["algo"] == "vmpo", "variant"]))
    # the figures draw the runs the aggregates take (scores.Group.rows), so that their run
    # counts are the aggregates'
    kept = final[final["row"].isin({int(i) for g in groups.values() for i in g.rows.ravel()})]
    tr = duals.traces(runs, kept, vmpo_variants) if vmpo_variants else pd.DataFrame()
    if not tr.empty:
        files += W(d, "duals", tr, None, "", complete, note)
        for s in suites:
            if (tr["suite"] == s).any():
                bounds = _duals_bounds(runs, kept, groups, est, s, vmpo_variants)
                figs[s]["duals"] = plots.duals_figure(tr, s, style, d, bounds,
                                                      _dual_floors(runs, kept, s))
    # from the runs the figures draw, so that the table's run counts are the figures'
    binds = duals.trust_regions(runs, kept, vmpo_variants) if vmpo_variants else pd.DataFrame()
    binds_wide = tables.trust_regions_wide(binds) if len(binds) else binds
    if len(binds_wide):  # some V-MPO run logged its duals
        files += W(d, "trust_regions", binds, binds_wide, report_md.tr_caption(binds_wide), complete, note)
    diag = duals.traces(runs, kept, sorted(set(kept["variant"])), metrics=duals.DIAG_METRICS)
    if not diag.empty:
        files += W(d, "diagnostics", diag, None, "", complete, note)
        for s in suites:
            if (diag["suite"] == s).any():
                f = plots.diagnostics_figure(diag, s, style, d, dict(zip(kept["variant"], kept["algo"])),
                                             _updates(runs, kept, s))
                if f:
                    figs[s]["diagnostics"] = f
    for f in figs.values():
        for v in f.values():
            files += v
    files += abl_fig

    md = report_md.compose(runs, status, summary, final, groups, est, note, reps, seed, engine,
                           command, suites, figs, side, claims, files,
                           binds if len(binds_wide) else None)
    (d / "report.md").write_text(md)
    plots.assign_file_keys([])  # this report's keys end with it
    return files + ["report.md"]


def _duals_bounds(runs, final: pd.DataFrame, groups, est, suite: str,
                  vmpo_variants: list[str]) -> dict[str, dict[str, float]]:
    """variant -> KL bounds (`_kl_bounds`) drawn in the duals figure of `suite`: each full
    V-MPO's (one per sweep label, analysis/labels.py), and every other V-MPO variant's
    whose bounds differ from its full's (a probe with a looser ε); an ablation without a
    trust region has none."""
    fulls = sorted(v for v in set(est.fulls.values())
                   if (suite, v) in groups) or [est.full or vmpo_variants[0]]
    out = {v: _kl_bounds(runs, final, v, suite) for v in fulls}
    for v in vmpo_variants:
        full = est.fulls.get(label_mod.label(v))
        mine = _kl_bounds(runs, final, v, suite) if (suite, v) in groups else {}
        if v not in out and mine and mine != (_kl_bounds(runs, final, full, suite)
                                              if full else {}):
            out[v] = mine
    return out


def _ablation_captions(final: pd.DataFrame, groups, ab: pd.DataFrame
                       ) -> tuple[dict[tuple[str, str], list[str]], dict[str, str]]:
    """For plots.ablation_figure: (suite, ablation) -> the envs it and its full V-MPO
    both ran (those compared), and full V-MPO -> the sweeps of its runs."""
    envs = {(r.suite, r.variant): [e for e in groups[(r.suite, r.full)].envs
                                   if e in groups[(r.suite, r.variant)].envs]
            for r in ab.itertuples(index=False)
            if (r.suite, r.full) in groups and (r.suite, r.variant) in groups}
    studies = {f: ", ".join(sorted(set(final.loc[final["variant"] == f, "sweep"])))
               for f in set(ab["full"])}
    return envs, studies


def _updates(runs, final: pd.DataFrame, suite: str) -> dict[str, str]:
    """variant -> what one update of its learner is on `suite` (duals.update_text of its
    first run's config), the unit of the diagnostics figure's KL panel."""
    out = {}
    for v, g in final[final["suite"] == suite].groupby("variant", sort=True):
        cfg = json.loads(runs.table["config"].iloc[int(g["row"].iloc[0])])
        if text := duals.update_text(g["algo"].iloc[0], cfg):
            out[v] = text
    return out


def _kl_bounds(runs, final: pd.DataFrame, variant: str, suite: str) -> dict[str, float]:
    """The KL bounds of a V-MPO variant on a suite (`duals.kl_bounds` of its first run's
    config)."""
    rows = final.loc[(final["variant"] == variant) & (final["suite"] == suite), "row"].to_numpy()
    return duals.kl_bounds(json.loads(runs.table["config"].iloc[int(rows[0])])) if len(rows) else {}


def _dual_floors(runs, final: pd.DataFrame, suite: str) -> dict[str, float]:
    """V-MPO variant -> the floor its multipliers are kept at on `suite` (duals.dual_floor
    of its first run's config), for the duals figure."""
    v = final[(final["suite"] == suite) & (final["algo"] == "vmpo")]
    return {name: duals.dual_floor(json.loads(runs.table["config"].iloc[int(g["row"].iloc[0])]))
            for name, g in v.groupby("variant", sort=True)}


# ----------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from analysis.load import find_sweeps

    cmd = ["python analysis/report.py", *args.results, f"--reps {args.reps}",
           f"--seed {args.seed}"]
    if args.baseline:
        cmd.append(f"--baseline {args.baseline}")
    if args.allow_incomplete:
        cmd.append("--allow-incomplete")
    if args.curve_points != 20:
        cmd.append(f"--curve-points {args.curve_points}")
    if args.engine != "fast":
        cmd.append(f"--engine {args.engine}")
    cmd += [f"--label {a}" for a in args.label]
    if args.variants is not None:
        cmd.append("--variants " + ",".join(v.strip() for v in args.variants.split(",")
                                              if v.strip()))
    command = " ".join(cmd)
    errors = 0
    try:
        labels = label_mod.parse(args.label)
        variants = None
        if args.variants is not None:
            variants = [v.strip() for v in args.variants.split(",") if v.strip()]
            if not variants:
                raise UsageError("--variants: expected comma-separated variant names, got "
                                 f"{args.variants!r}")
        results = args.results or ["results"]
        if not args.results and not os.path.isdir("results"):
            raise UsageError("no RESULTS given and ./results does not exist; pass results "
                             "roots or sweep folders")
        if (args.label or args.variants is not None) and not args.out:
            raise UsageError("--label and --variants pool sweeps into one report: give it "
                             "a folder with --out DIR")
        if args.out:
            jobs = [(results, Path(args.out))]
        else:
            jobs = [([str(s)], Path("reports") / s.name) for s in find_sweeps(results)]
    except UsageError as e:
        print(f"analysis/report.py: error: {e}", file=sys.stderr)
        return 2
    for paths, out in jobs:
        try:
            files = build(paths, out, reps=args.reps, seed=args.seed, baseline=args.baseline,
                          allow_incomplete=args.allow_incomplete,
                          curve_points=args.curve_points, engine=args.engine,
                          command=command, n_jobs=args.jobs, labels=labels,
                          variants=variants)
            print(f"wrote {out}/ ({len(files)} files)")
        except UsageError as e:
            print(f"analysis/report.py: error: {', '.join(paths)}: {e}", file=sys.stderr)
            errors = max(errors, 2)
        except OSError as e:  # a full disk, say: the report is written aside, then renamed
            print(f"analysis/report.py: error: writing the report to {out} failed: "
                  f"{type(e).__name__}: {e}; nothing was written there"
                  + (" (the earlier report is intact)" if (out / outdir.MARKER).is_file()
                     else ""),
                  file=sys.stderr)
            errors = max(errors, 1)
    return errors


if __name__ == "__main__":
    sys.exit(main())
