"""report.md: its text (`compose`: the method, completeness, each suite's section, the
ablations, the paper's claims, references, provenance and files) and the captions and
table slices only it and the figures' tables share (`env_lists`, `tr_caption`).
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import pandas as pd

from analysis import auc_ranking, completeness, tables
from analysis import labels as label_mod
from analysis.load import Runs
from analysis.scores import is_raw, mixed_budgets, raw_env, reference


TRUST_REGION_CAPTION = (
    "Per V-MPO variant and env, over the second half of each run cut into 50 spans of 1% "
    "of its steps (`trust_regions.csv`; median over the runs, their number in brackets): "
    "the share of spans whose mean α is active (above 100x its floor `dual_min`) and the "
    "median over spans of KL/ε. α rises only while its KL exceeds ε, so an α never active "
    "is a constraint that never bound: ablating it removes nothing. The KL is to the "
    "target policy, which restarts it at 0 at every refresh (each `target_period` learner "
    "steps): KL/ε is a period average, ~0.5 where the KL reaches ε at each period's end.")
TRUST_REGION_ESS = (" ESS of ψ: the E-step weights' effective sample size as a share of the "
                    "kept samples (near 100%: nearly uniform weights, η too loose to select).")


def tr_caption(wide: pd.DataFrame) -> str:
    return TRUST_REGION_CAPTION + (TRUST_REGION_ESS if tables.TR_ESS in wide.columns else "")


def provenance(runs: Runs, status: pd.DataFrame) -> list[str]:
    """Markdown lines: sweeps, commits, package versions, hosts, SLURM jobs, run counts."""
    t = runs.table
    ok_rows = status.loc[status["status"] == "ok", "row"].to_numpy()
    lines = ["| sweep | folder | run dirs | ok | expected |", "|---|---|---|---|---|"]
    for sweep, path in sorted(runs.sweep_paths.items()):
        st = status[status["sweep"] == sweep]
        lines.append(f"| {sweep} | `{path}` | {int((t['sweep'] == sweep).sum())} | "
                     f"{int((st['status'] == 'ok').sum())} | {len(st)} |")
    lines.append("")
    commits = Counter(zip(t["commit"], t["dirty"]))
    lines.append("Code (git commit of each run directory, `dirty` = uncommitted changes):")
    lines.append("")
    for (commit, dirty), n in sorted(commits.items()):
        lines.append(f"- `{commit or 'unknown'}`{' (dirty)' if dirty == 'true' else ''}: "
                     f"{n} run{'s' if n != 1 else ''}")
    versions: dict[str, Counter] = {}
    for v in t["versions"]:
        for pkg, ver in json.loads(v).items():
            versions.setdefault(pkg, Counter())[str(ver)] += 1
    lines += ["", "Package versions recorded by the runs:", ""]
    for pkg in sorted(versions):
        vs = ", ".join(f"{ver} ({n})" for ver, n in sorted(versions[pkg].items()))
        lines.append(f"- {pkg}: {vs}")
    lines += ["", "Runs:", ""]
    pys = Counter(t["python"])
    py = ", ".join(f"{k or 'unknown'} ({n})" for k, n in sorted(pys.items()))
    lines.append(f"- python: {py}")
    cpus = Counter(t["cpu"])
    lines.append("- CPU (runs agree to the last digit only on one CPU model): " + ", ".join(
        f"{k or 'not recorded'} ({n})" for k, n in sorted(cpus.items())))
    lines.append(f"- hosts: {t['host'].nunique()}; SLURM jobs: "
                 f"{t.loc[t['slurm_job'] != '', 'slurm_job'].nunique()}")
    lines.append(f"- runs aggregated: {len(ok_rows)} of {len(t)} run directories")
    from importlib import metadata
    ana = []
    for pkg in ("numpy", "scipy", "pandas", "rliable", "arch", "matplotlib"):
        try:
            ana.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            ana.append(f"{pkg} ?")
    lines += ["", f"Analysis: python {sys.version.split()[0]}, {', '.join(ana)}."]
    return lines


def raw_note(raw_envs: list[str], every: bool) -> str:
    """Why the normalised aggregates leave out `raw_envs` (every env of the report, if
    `every`) and where their raw returns are."""
    from suites.reference import NO_PAIR_HINT

    envs = ", ".join(raw_envs)
    where = ("Each is reported in raw returns as a stratum of its own (`raw:<env>`: "
             "aggregates, P(X > Y), profiles and curves in its return units, no optimality "
             "gap), pooled with no other env.")
    if every:
        return (f"No normalised aggregates: no env of these runs has a reference pair "
                f"({envs}: {NO_PAIR_HINT}). {where}")
    return f"Normalised aggregates leave out {envs}: {NO_PAIR_HINT}. {where}"


def env_lists(groups) -> dict[tuple[str, str], list[str]]:
    """(suite, variant) -> the envs its aggregate is over (tables.aggregate_wide names them
    where they are not all of its suite's)."""
    return {k: list(g.envs) for k, g in groups.items()}


def _section_table(df: pd.DataFrame, suite: str) -> str:
    return tables.to_markdown(df[df["suite"] == suite].drop(columns=["suite"]))


def _env_rows(df: pd.DataFrame, suite: str, raw_envs: list[str]) -> pd.DataFrame:
    """The rows of a per-env table (columns suite, env, ...) for the section of `suite`,
    without the suite column: a raw stratum's env, or the suite's envs that have a pair
    (its raw envs have their own sections)."""
    if is_raw(suite):
        keep = df["env"] == raw_env(suite)
    else:
        keep = (df["suite"] == suite) & ~df["env"].isin(raw_envs)
    return df[keep].drop(columns=["suite"])


def control_rows(est, suite: str) -> list[str]:
    """Lines under a suite's probability-of-improvement table, one per "label" pair whose
    compared runs share run ids (`est.shared`): the same config, env and seed rerun, so
    that pair's distance from 0.5 is the noise floor of every X vs X@label comparison."""
    out = []
    for (s, x, y), n in sorted(est.shared.items()):
        r = est.poi[(est.poi["suite"] == s) & (est.poi["x"] == x) & (est.poi["y"] == y)]
        if s != suite or r.empty:
            continue
        r = r.iloc[0]
        out += [(f"**Control: P({x} > {y}) = {tables.ci(r.point, r.lower, r.upper)}.** `{x}` "
                 f"and `{y}` share {n} run ids (of the {int(r.n_x)} vs {int(r.n_y)} runs "
                 "compared): the same resolved configuration, env and seed, run again under "
                 "another code version, evaluation protocol or CPU. No config changed there, "
                 "so this pair's distance from 0.5 is the noise floor of every X vs "
                 f"X@{label_mod.label(y)} comparison in the table: read those against it."), ""]
    return out


def auc_lines(est, groups, suite: str, budgets: dict[str, list[int]] | None) -> list[str]:
    """report.md's auc part of a suite's section: what auc is, `auc_ranking.ranking`'s paragraph
    and the `aggregate_auc` table; nothing where the suite has no auc aggregate."""
    agg = est.aggregate_auc
    if agg.empty or not (agg["suite"] == suite).any():
        return []
    table = tables.aggregate_wide(agg, env_lists(groups))
    if is_raw(suite):
        table = table.drop(columns=["Optimality Gap"])
    what = "raw return" if is_raw(suite) else "normalised score"
    head = (f"Each run's mean {what} over all its evaluations (the area under its learning "
            "curve over its budget; `aggregate_auc`), the same runs and estimators as the "
            "table above: it rewards learning early where the final score sees only the end.")
    text = auc_ranking.ranking(est.aggregate, agg, suite, budgets,
                       {v: e for (s, v), e in env_lists(groups).items() if s == suite})
    left = sorted(set(est.aggregate.loc[est.aggregate["suite"] == suite, "variant"])
                  - set(agg.loc[agg["suite"] == suite, "variant"]))
    if left:  # aggregate.auc_jobs left them out
        text = (text + " " if text else "") + ", ".join(f"`{v}`" for v in left) + (
            " is" if len(left) == 1 else " are") + " not in the auc table: some of " + (
            "its" if len(left) == 1 else "their") + " runs have a non-finite evaluation."
    return ["### Area under the learning curve (auc)", "", head, "",
            *([text, ""] if text else []), _section_table(table, suite)]


def compose(runs, status, summary, final, groups, est, note, reps, seed, engine,
            command, suites, figs, side, claims, files, binds=None) -> str:
    """report.md's text. binds: `duals.trust_regions` (long), None where no V-MPO run logged duals."""
    from analysis import plots
    from suites.reference import NO_PAIR_HINT

    L: list[str] = [f"# vmpo-bench report: {', '.join(sorted(runs.sweep_paths))}", ""]
    if note:
        L += [(f"> **{note}** Every table and figure below is marked. The runs that are "
               "not aggregated are listed under Completeness."), ""]
    raw_envs = [raw_env(s) for s in suites if is_raw(s)]
    if raw_envs:
        every = all(is_raw(s) for s in suites)
        L += [f"> **Raw returns.** {raw_note(raw_envs, every)}", ""]
    abl = ", ".join(f"`{a}`" for a in sorted(set(est.ablation["variant"]))) or "none"
    fulls = ", ".join(f"`{f}`" for f in sorted(set(est.ablation["full"]))) or f"`{est.full or 'none'}`"
    method = [
        ("- Score of a run: its `eval/return` (mean return of the deterministic policy's "
         "evaluation episodes) at its last evaluation."),
        ("- Normalisation per suite, `(score - random) / (reference - random)` "
         "(`suites.normalise`); Atari is human-normalised (DQN Zoo's random/human "
         "table). The pairs and their sources are listed under References."),
        (f"- Aggregates (IQM, median, mean, optimality gap at 1), performance profiles, "
         f"probability of improvement and sample-efficiency curves: rliable 1.2.0 "
         f"estimators with 95% percentile intervals of the stratified bootstrap over runs, "
         f"{reps:,} replications, seed {seed} (engine `{engine}`; the `fast` engine gives "
         "the numbers rliable's own loop gives, see analysis/bootstrap.py)."),
        ("- auc of a run (`aggregate_auc`): the mean of all its evaluations, normalised "
         "(`scores.auc_score`, the tuning's auc too), so a variant that learns early scores "
         "above one that reaches the same final score late; the same runs, estimators, "
         "replications and intervals as the final-score aggregates."),
        "- Per-env final scores: mean and Student-t 95% interval over seeds.",
        (f"- Envs without a reference pair ({', '.join(raw_envs)}; {NO_PAIR_HINT}): "
         "not normalised; each is a stratum of its own, `raw:<env>` (raw returns of two "
         "envs are on different scales), pooled with no other env and never with "
         "normalised scores. Their IQM, median and mean, probability of improvement, "
         "performance profile (thresholds spanning its returns) and sample-efficiency "
         "curves are the same estimators in its return units; no optimality gap (the "
         "gap to a normalised score of 1 has no meaning in raw units).") if raw_envs else None,
        (f"- Baseline for probability of improvement: `{est.baseline}`. Full V-MPO: "
         f"{fulls}; ablations are the other variants whose runs have "
         f"algo `vmpo`: {abl}."),
        ("- Pairs compared (P(X > Y), on the envs both ran): the baseline against every "
         "other variant of its own sweep label (`baseline` rows; a labelled sweep's "
         "baseline is `<baseline>@<label>`), each full V-MPO against its ablations "
         "(`ablation`), and each variant that is not an ablation against its namesake "
         "X@label (`label`). Never two variants whose budgets (agent steps) differ: "
         "those meet only in the common-budget table."),
    ]
    tagged = runs.table[runs.table["variant"].str.contains(label_mod.SEP, regex=False)]
    for sweep, g in tagged.groupby("sweep", sort=True):
        tag = label_mod.label(g["variant"].iloc[0])
        method.append(f"- Sweep `{sweep}` labelled `{tag}` (`--label {sweep}={tag}`): its "
                      f"variants are named `<variant>@{tag}`, so that they pool with "
                      "namesakes of other sweeps; P(X > X@label) compares each variant "
                      "but the ablations with its namesake (comparison `label`), the "
                      "baseline is compared within its own label, and V-MPO's ablations are "
                      "compared only with the full V-MPO of their own sweep label. The "
                      "tuning section, if any, reads the unlabelled runs only.")
    for suite, budgets in mixed_budgets(final).items():
        method.append(f"- {plots.suite_name(suite)}: budgets differ between variants (agent "
                      "steps): " + "; ".join(f"`{v}` {'/'.join(f'{b:,}' for b in bs_)}"
                                            for v, bs_ in budgets.items())
                      + ". Final scores and profiles take each run at its own budget; no "
                        "probability of improvement compares two budgets; the sample-efficiency "
                        "curves draw each variant over its own range, and a table compares "
                        "every variant at the smallest budget.")
    if command:
        method.append(f"- Command: `{command}`")
    L += ["## Method", "", *method, ""]

    L += ["## Completeness", ""]
    per_variant = summary.groupby(["suite", "variant"])[
        ["expected", *completeness.STATUSES]].sum().reset_index()
    L.append(tables.to_markdown(per_variant.astype(str)))
    bad = status[status["status"] != "ok"]
    if len(bad):
        L += ["Runs not aggregated (all in completeness.csv):", ""]
        for r in bad.head(50).itertuples(index=False):
            L.append(f"- {r.sweep}: `{r.variant}` {r.env} seed {r.seed} "
                     f"{('[' + r.run_id + '] ') if r.run_id else ''}- {r.status}: {r.detail}")
        if len(bad) > 50:
            L.append(f"- ... and {len(bad) - 50} more")
        L.append("")
    dropped = [(k, g.dropped) for k, g in groups.items() if g.dropped]
    for (s, v), n in dropped:
        L.append(f"- {s}/{v}: {n} ok run(s) left out so every env has the same number "
                 "of seeds (rliable needs a full runs x envs matrix).")
    if dropped:
        L.append("")
    resumed = runs.table[runs.table["resumed_at"] != ""]
    if len(resumed):
        L += [(f"Runs resumed from a checkpoint ({len(resumed)}; a resumed run reseeds its "
               "envs at that step, so from there it differs from an uninterrupted run of "
               "the same seed):"), ""]
        for r in resumed.itertuples(index=False):
            at = ", ".join(f"{int(x):,}" for x in r.resumed_at.split(";"))
            L.append(f"- {r.sweep}: `{r.variant}` {r.env} seed {r.seed} [{r.run_id}] at step {at}")
        L.append("")

    for s in suites:
        k, raw = plots.file_key(s), is_raw(s)
        unit = " (raw returns)" if raw else ""
        agg_table = tables.aggregate_wide(est.aggregate, env_lists(groups))
        L += [f"## {plots.suite_name(s)}", ""]
        if raw:
            L += [(f"{raw_env(s)} has no reference pair ({NO_PAIR_HINT}), so its scores "
                   "are not normalised: every number and figure in this section is in its "
                   "raw return units, over its runs alone (one env, a stratum of its own). "
                   "No optimality gap: the gap to a normalised score of 1 has no meaning "
                   "in raw units. The median is rliable's, the median over envs of each "
                   "env's mean: with one env, its mean; the IQM is the robust one."), ""]
            agg_table = agg_table.drop(columns=["Optimality Gap"])
        L += [f"### Aggregate final {'returns (raw)' if raw else 'scores'}", "",
              _section_table(agg_table, s), f"![aggregate {s}](aggregate_{k}.png)", ""]
        L += auc_lines(est, groups, s, mixed_budgets(final).get(s))
        if "poi" in figs[s]:
            L += [f"### Probability of improvement{unit}", "",
                  _section_table(tables.poi_wide(est.poi), s), *control_rows(est, s),
                  f"![poi {s}](poi_{k}.png)", ""]
        L += [f"### Performance profile{unit}", "", f"![profile {s}](profile_{k}.png)", ""]
        if "curves" in figs[s] or "curves_per_env" in figs[s]:
            L += [f"### Sample efficiency{unit}", ""]
        if "curves" in figs[s]:
            L += [f"![curves {s}](curves_{k}.png)", ""]
        if "curves_per_env" in figs[s]:
            L += [("Per env, the raw eval return of every run the aggregates take (thin) and "
                   "each variant's mean over its seeds (thick; `curves_per_env.csv`): a "
                   "bimodal env or a collapsed seed, which the pooled IQM hides, shows here."),
                  "", f"![curves per env {s}](curves_per_env_{k}.png)", ""]
        if "duals" in figs[s]:
            L += ["### V-MPO's duals and KLs", "",
                  ("Median and quartiles over each V-MPO variant's runs of the multipliers "
                   "and the KLs they bound, against agent env steps (`duals.csv`: each point "
                   "a span of a twentieth of the runs' env steps, each run's mean over the "
                   "learner steps in it). An alpha at its floor (the run's `dual_min`, 1e-8 "
                   "by default; dotted) is an inactive trust "
                   "region: the KL stayed below its bound."),
                  "", f"![duals {s}](duals_{k}.png)", ""]
        part = (tables.trust_regions_wide(binds[binds["suite"] == s])  # this suite's KLs only
                if binds is not None else pd.DataFrame())
        if len(part):
            L += ["### Do V-MPO's trust regions bind?", "", tr_caption(part), "",
                  _section_table(part, s), ""]
        if "diagnostics" in figs[s]:
            L += ["### Every learner's policy width and step size", "",
                  ("Median and quartiles over each variant's runs of its policy std, its "
                   "entropy and the KL between the policies before and after each update on "
                   "up to 256 of the update's states, spread over it (`diagnostics.csv`); dashed, the KL an update was "
                   "allowed where the learner bounds each update (TRPO). An update is not the "
                   "same step for every learner (PPO: its epochs over a rollout; V-MPO: one "
                   "learner step, its epochs over its rollout; MPO: one gradient step): each "
                   "variant's is written under the figure."),
                  "", f"![diagnostics {s}](diagnostics_{k}.png)", ""]
        if not est.common.empty and (est.common["suite"] == s).any():
            cb = est.common[est.common["suite"] == s]
            L += [f"### All variants at {int(cb['step'].iloc[0]):,} steps", "",
                  ("The variants' budgets differ, so their final scores above are taken at "
                   "different steps; here each run is scored at its first evaluation at or "
                   "after the smallest budget."), "",
                  _section_table(tables.common_wide(est.common), s)]
        pe = _env_rows(tables.per_env_wide(est.per_env), s, raw_envs)
        if raw:
            pe = pe.drop(columns=["normalised: mean [95% CI]"])
        L += ["### Final scores per env", "", tables.to_markdown(pe)]
        sub = _env_rows(side, s, raw_envs) if not side.empty else side
        if not sub.empty:
            sub = sub[[c for c in sub.columns if (sub[c].astype(str) != "").any()]]
            L += ["### Published figures beside ours", "",
                  ("Ours: mean [Student-t 95% CI] of the last evaluation (deterministic policy) "
                   "over seeds. Published: mean ± std as published; protocols differ (all rows "
                   "in `published.csv`): CleanRL, mean of the last 100 training episodes; "
                   "Tianshou, the best average return within 1M steps (optimistic); SB3 zoo, "
                   "one run, deterministic evaluation (the closest to ours)."), "",
                  tables.to_markdown(sub.astype(str))]
    if len(est.ablation):
        L += ["## V-MPO ablations", ""]
        if any(is_raw(x) for x in est.ablation["suite"]):
            L += ["Rows of a `raw:<env>` suite are IQMs of that env's raw returns (no "
                  "reference pair).", ""]
        L += [tables.to_markdown(tables.ablation_wide(est.ablation)),
              "![ablation](ablation.png)", ""]
    if claims:
        L += ["## The paper's claims, checked", "", *claims, ""]
    L += ["## References for normalisation", ""]
    ref_rows = []
    for r in final.drop_duplicates("env").sort_values(["suite", "env"]).itertuples(index=False):
        ref = reference(r.env)
        if ref is not None:
            ref_rows.append((r.suite, r.env, tables.short(ref.random),
                             tables.short(ref.reference), str(ref.source)))
    L.append(tables.to_markdown(pd.DataFrame(ref_rows, columns=[
        "suite", "env", "random (0)", "reference (1)", "source"])))
    if raw_envs:
        L += [f"No reference pair, raw returns only: {', '.join(raw_envs)} ({NO_PAIR_HINT}).",
              ""]
    L += ["## Provenance", "", *provenance(runs, status), ""]
    notes = runs.notes + est.notes
    if notes:
        L += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    L += ["## Files", "", ", ".join(f"`{f}`" for f in sorted(files)), ""]
    return "\n".join(x for x in L if x is not None) + "\n"
