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
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
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

from rundir import writable_dir_problem
from analysis import auc_ranking, completeness, duals, published, seed_curves, tables
from analysis import labels as label_mod
from analysis.load import Runs, UsageError, load
from analysis.scores import (final_scores, is_raw, mixed_budgets, raw_env, reference,
                             stratify, without_pair)
from analysis.scores import groups as make_groups

DEFAULT_REPS = 50_000
ENGINES = ("fast", "rliable")  # analysis.bootstrap.ENGINES, kept here so --help is quick
MARKER = "report.md"


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
# Output folder
# ----------------------------------------------------------------------------------
def _check_out(out: Path) -> None:
    """UsageError unless `out` can become the report folder (checked before any work)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"--out {str(out)!r} exists and is not a report folder (no "
                         f"{MARKER}); give a new or empty folder")
    problem = writable_dir_problem(out.parent)
    if problem:
        raise UsageError(f"--out {str(out)!r}: {problem}; give a folder that can be written")


def _prepare_out(out: Path) -> tuple[Path, int]:
    """A new temp sibling of `out` to write the report in, and a descriptor holding an
    flock on it (so that a report started later knows it is in use)."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    fd = os.open(tmp, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return tmp, fd


def _remove_stale(out: Path) -> None:
    """Remove what a report killed while writing `out` left beside it: temp folders no
    live report holds (`.<name>.*.tmp`) and replaced reports (`.<name>.*.old`)."""
    prefix = f".{out.name}."
    try:
        entries = list(os.scandir(out.parent))
    except FileNotFoundError:
        return
    for e in entries:
        if not (e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)):
            continue
        if e.name.endswith(".old"):
            shutil.rmtree(e.path, ignore_errors=True)
        elif e.name.endswith(".tmp"):
            try:
                fd = os.open(e.path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a report is writing it
            finally:
                os.close(fd)
            shutil.rmtree(e.path, ignore_errors=True)


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished temp folder to `out`, replacing an earlier report."""
    os.chmod(tmp, 0o755)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


# ----------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------
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
    _check_out(out)
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
    if raw_only:  # report.md says why they are not normalised (raw_note)
        est.per_env = agg_mod.per_env(full_final)
    note = _incomplete_note(status)
    complete = note is None
    summary = completeness.summary(status)

    def write(tmp: Path) -> list[str]:
        files = _write_all(tmp, runs, status, summary, final, groups, est, note, complete,
                           reps, seed, engine, command, variants)
        files = _append(tmp, files, *_seeds_needed(tmp, est, groups, seed, complete, note))
        if not trials.table.empty:
            files = _append(tmp, files, *_env_split(tmp, trials, groups, final, reps, seed,
                                                    engine, n_jobs, complete, note))
            files = _append(tmp, files, *tuning.section(trials, tmp, label_mod.unlabelled(runs)))
        return files

    return _written(out, write)


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


def _written(out: Path, write) -> list[str]:
    """Run write(tmp) -> files in a temporary sibling of `out`, then publish it as `out`
    (never half written: on any error the temporary folder is removed)."""
    tmp, fd = _prepare_out(out)
    try:
        files = write(tmp)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)
    _remove_stale(out)
    return files


# report.md's closing sections, in order: a later section goes before the first of these
CLOSING = ("## References for normalisation", "## Provenance", "## Notes", "## Files")


def _append(d: Path, files: list[str], new_files: list[str], lines: list[str]) -> list[str]:
    """Add a section's lines to report.md in `d`, before its closing sections (CLOSING:
    references, provenance, notes, files), and its files to the list that ends it; its
    files join `files` before report.md (the last)."""
    files = files[:-1] + new_files + files[-1:]
    if lines:
        text = (d / MARKER).read_text()
        # the last occurrence of each: a run's error text quoted earlier may hold a heading
        at = min((i for h in CLOSING if (i := text.rfind("\n" + h + "\n")) >= 0), default=len(text))
        text = text[:at].rstrip("\n") + "\n\n" + "\n".join(lines).strip("\n") + "\n" + text[at:]
        head, sep, _ = text.rpartition("\n## Files\n")
        if sep:
            text = (head + sep + "\n" + ", ".join(f"`{f}`" for f in sorted(files[:-1])) + "\n\n")
        (d / MARKER).write_text(text)
    return files


def _seeds_needed(d: Path, est, groups, seed: int, complete: bool, note) -> tuple[list[str], list[str]]:
    """The seeds-needed table (analysis/power.py) of every comparison whose interval of
    P(X > Y) contains 0.5, and its report section."""
    from analysis import power

    t = power.table(est.poi, groups, seed=seed)
    if t.empty:
        return [], []
    w = power.wide(t)
    files = tables.write(d, "seeds_needed", t, w, "Seeds per env the observed effect would need "
                         "for the 95% interval of P(X > Y) to exclude 0.5 (power 80%; post-hoc: "
                         "the observed effect taken as the truth).", complete, note)
    L = ["## Seeds needed", "",
         (f"For each comparison whose 95% interval of P(X > Y) contains 0.5: the fraction of "
          f"{power.EXPERIMENTS} simulated experiments with n seeds per env whose interval "
          f"excludes 0.5, each env's scores drawn with replacement from the runs we have "
          f"({power.REPS} bootstrap reps each), and the smallest n reaching 80% "
          f"(analysis/power.py). This is post-hoc power: the simulation takes the observed "
          f"effect as the truth, so each row follows from its observed P and adds no "
          f"evidence to it. A large or unreachable n means the observed effect is small; it "
          f"does not show a null, since the interval still allows effects up to its ends "
          f"(an interval reaching 0.8 allows a large one). A small n means an effect as "
          f"large as the observed one would show with that many seeds. The table cannot "
          f"tell whether the true effect is near zero, nor how many seeds an effect of a "
          f"size declared in advance would need; and it assumes the observed spread is the "
          f"true one (with 3 seeds per env the resampled populations have 3 values each): "
          f"a rough guide."), "",
         tables.to_markdown(w), ""]
    return files, L


def trial_envs(trials: Runs) -> set[str]:
    """The envs a tuning ran on: each tune sweep's `tuning.envs` (its spec.yaml copy:
    analysis.tuning.tuning_envs, of one sweep folder) and the envs its trials ran."""
    from analysis import tuning

    return set(trials.table["env"]).union(*(tuning.tuning_envs(path)
                                            for path in trials.sweep_paths.values()))


def env_lists(groups) -> dict[tuple[str, str], list[str]]:
    """(suite, variant) -> the envs its aggregate is over (tables.aggregate_wide names them
    where they are not all of its suite's)."""
    return {k: list(g.envs) for k, g in groups.items()}


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def env_split_text(suite: str, envs: list[str], tuned: set[str], fresh_seeds: bool,
                  variants: list[str]) -> str:
    """What a variant's score on a tuning env means beside one on a held-out env, for a
    suite whose `envs` hold both (`tuned`: the tuning envs)."""
    on = [e for e in envs if e in tuned]
    held = [e for e in envs if e not in tuned]
    seeds = ("on seeds its tuning never used" if fresh_seeds else
             "on seeds some of which its tuning used")
    text = (f"A variant tuned on {_and(on)} is evaluated there {seeds}, but on envs it was "
            "selected on, so its score there carries the selection's optimism. ")
    ppo = (" (PPO's defaults, its trial c00, were community-tuned on MuJoCo)"
           if suite == "mujoco" and any(label_mod.base(v) == "ppo" for v in variants) else "")
    return text + (f"{_and(held)} {'are' if len(held) > 1 else 'is'} held out from this "
                   "study's tuning for every algorithm, though not from the literature's: "
                   f"defaults taken from published tuning may have been chosen on them{ppo}.")


def _env_split(d: Path, trials: Runs, groups, final: pd.DataFrame, reps: int, seed: int,
               engine: str, n_jobs: int | None, complete: bool, note
               ) -> tuple[list[str], list[str]]:
    """The held-out-envs table (aggregate.env_split: each variant's IQM over the envs the
    tuning ran on and over the others) and its report section; nothing where no suite
    holds both a tuning env and another."""
    from analysis import aggregate as agg_mod

    tuned = trial_envs(trials)
    jobs = agg_mod.env_split_jobs(groups, tuned, reps, seed, engine)
    if not jobs:
        return [], []
    ho = agg_mod.env_split(groups, tuned, agg_mod.run_jobs(
        jobs, agg_mod.default_jobs() if n_jobs is None else n_jobs))
    w = tables.held_out_wide(ho)
    files = tables.write(d, "held_out_envs", ho, w, "IQM of normalised final scores over the "
                         "envs the tuning ran on and over the others, per variant, point [95% "
                         f"CI]; {reps:,} stratified-bootstrap reps, seed {seed}.", complete, note)
    fresh = not set(trials.table["seed"]) & set(final["seed"])
    L = ["## Held-out envs beside tuning envs", ""]
    for suite in sorted(set(ho["suite"])):
        envs = sorted({e for (s, _), g in groups.items() if s == suite for e in g.envs})
        L += [env_split_text(suite, envs, tuned, fresh,
                            sorted(v for s, v in groups if s == suite)), ""]
    L += [("Each variant's IQM [95% stratified-bootstrap CI] over each part apart, on the "
           "envs it ran (`held_out_envs.csv`); a part it has no runs on reads —. Compare "
           "variants within a column, on the same envs: the two parts' envs differ in "
           "difficulty, so one variant's two IQMs measure the envs as much as the tuning."), "",
          tables.to_markdown(w), ""]
    return files, L


def _tuning_only(trials, out: Path) -> list[str]:
    """The report of a tune sweep alone: its tuning section."""
    from analysis import tuning

    def write(tmp: Path) -> list[str]:
        files, lines = tuning.section(trials, tmp)
        head = [f"# vmpo-bench tuning report: {', '.join(sorted(trials.sweep_paths))}", "",
                "Tuning trials only: the headline comes from the test sweep's report."]
        (tmp / MARKER).write_text("\n".join(head + [""] + lines) + "\n")
        return files + [MARKER]

    return _written(out, write)


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
               tables.aggregate_wide(est.aggregate, env_lists(groups)),
               f"{what}, point [95% CI]; " + cap + raw_cap, complete, note)
    if not est.aggregate_auc.empty:
        what_auc = ("Aggregate area under the learning curve in raw returns" if all(raw) else
                    "Aggregate normalised area under the learning curve")
        files += W(d, "aggregate_auc", est.aggregate_auc,
                   tables.aggregate_wide(est.aggregate_auc, env_lists(groups)),
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
        files += W(d, "trust_regions", binds, binds_wide, _tr_caption(binds_wide), complete, note)
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

    md = _report_md(runs, status, summary, final, groups, est, note, reps, seed, engine,
                    command, suites, figs, side, claims, files, binds if len(binds_wide) else None)
    (d / "report.md").write_text(md)
    plots.assign_file_keys([])  # this report's keys end with it
    return files + ["report.md"]


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


def _tr_caption(wide: pd.DataFrame) -> str:
    return TRUST_REGION_CAPTION + (TRUST_REGION_ESS if tables.TR_ESS in wide.columns else "")


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


def _auc_lines(est, groups, suite: str, budgets: dict[str, list[int]] | None) -> list[str]:
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


# What Song et al. 2019 report each V-MPO part does, by the config field an ablation turns off
PAPER_CLAIMS = {
    "topk_fraction": "top-k advantage selection",
    "trust_region": "the KL trust region (alpha)",
    "learn_eta": "learning the temperature eta",
}


def _env_span(envs: list[str], n_suite: int) -> str:
    """The envs a comparison rests on: "Walker2d-v5 only", "2 of 4 envs: Ant-v5,
    Walker2d-v5", or "4 envs" where they are all the suite's."""
    if len(envs) == 1:
        return f"{envs[0]} only"
    if len(envs) < n_suite:
        return f"{len(envs)} of {n_suite} envs: {', '.join(envs)}"
    return f"{len(envs)} envs"


def verdict_scope(final: pd.DataFrame, status: pd.DataFrame | None, suite: str, x: str,
                  y: str) -> tuple[list[str], int, bool]:
    """What a comparison of variants x and y on `suite` rests on: (the envs both have
    scored runs on, sorted; the number of envs the suite has in the report, those of
    `final` and the expected runs of `status`; whether x or y has runs not ok in
    `status`). A verdict is provisional where the first is shorter than the second or
    the third holds (`scope_verdict`)."""
    on = final[final["suite"] == suite]
    envs = sorted(set(on.loc[on["variant"] == x, "env"]) & set(on.loc[on["variant"] == y, "env"]))
    suite_envs = set(on["env"])
    undone = False
    if status is not None:
        mine = status[status["suite"] == suite]
        if not is_raw(suite):  # envs expected, none of whose runs is ok yet
            suite_envs |= set(mine["env"])
        undone = bool({x, y} & set(mine.loc[mine["status"] != "ok", "variant"]))
    return envs, len(suite_envs), undone


def scope_verdict(envs: list[str], n_suite: int, undone: bool, lower: float,
                  upper: float) -> str:
    """What an ablation's 95% interval of P(full > ablation) shows of the paper's claim
    that the part matters, given its scope (`verdict_scope`): reproduces (above 0.5),
    contradicts (below), does not reproduce at this scale (contains 0.5), or, on fewer
    envs than the suite has or with runs not done, a provisional verdict."""
    if len(envs) < n_suite or undone:
        return (f"gives a provisional verdict ({len(envs)} of {n_suite} envs"
                + (", some of these runs not done" if undone else "") + ")")
    return ("reproduces the claim" if lower > 0.5 else "contradicts the claim" if upper < 0.5
            else "does not reproduce the claim at this scale")


def family_line(n: int) -> str:
    """The line under n ablation verdicts on their multiplicity. Were no part to matter,
    each interval excludes 0.5 with chance 5% at its nominal coverage, so one or more of
    n does with chance at most min(1, n x 5%) (Bonferroni's union bound); a percentile
    bootstrap on few runs covers less than nominal, so the chance is higher."""
    head = (f"{n} ablation comparison{'s' if n > 1 else ''}, each at 95% without correction "
            "for multiplicity")
    if n < 2:
        return head + "."
    return (head + f": were no ablated part to matter, the chance that one or more of the {n} "
            f"intervals still excludes 0.5 is up to min(100%, {n} x 5%) = {min(100, 5 * n)}% "
            "at nominal coverage (a percentile bootstrap on few runs covers less, so the "
            "chance is higher).")


def ablation_claims(runs, final: pd.DataFrame, est, status: pd.DataFrame | None = None
                    ) -> list[str]:
    """One plain sentence per ablation: what it removes (the config fields it changes
    against full V-MPO), P(full > ablation) with its interval, the envs and runs it rests
    on (`verdict_scope`), and what that shows (`scope_verdict`); then one line on the
    family of comparisons (`family_line`). An ablation whose budget differs from its full
    V-MPO's has no P (aggregate._pairs): its bullet says so and gives no verdict."""
    if est.ablation.empty:
        return []
    t = runs.table

    def configs(suite, variant):
        """(sweep, env) -> the resolved config of the variant's first run there."""
        f = final[(final["suite"] == suite) & (final["variant"] == variant)].sort_values(["sweep", "env", "seed"])
        out = {}
        for r in f.itertuples(index=False):
            out.setdefault((r.sweep, r.env), json.loads(t["config"].iloc[int(r.row)]))
        return out

    out, n = [], 0
    for r in est.ablation.itertuples(index=False):
        # per-suite and per-env defaults differ between envs: compare on one env both ran,
        # in one sweep where they share one (another sweep may set other budgets)
        mine, full_c = configs(r.suite, r.variant), configs(r.suite, r.full)
        at = [(k, k) for k in sorted(set(mine) & set(full_c))] or [
            (a, b) for a in sorted(mine) for b in sorted(full_c) if a[1] == b[1]]
        if not at:
            continue
        cfg, full_cfg = mine[at[0][0]], full_c[at[0][1]]
        diff = sorted(k for k in set(cfg) | set(full_cfg) if cfg.get(k) != full_cfg.get(k))
        parts = [PAPER_CLAIMS[k] for k in diff if k in PAPER_CLAIMS]
        what = " and ".join(parts) if parts else "no part the paper ablates"
        change = ", ".join(f"{k}={json.dumps(cfg.get(k))}" for k in diff) or "no config change"
        head = f"- `{r.variant}` ({change}; removes {what}): "
        if pd.isna(r.p_full_better):  # no pair: the budgets differ (aggregate._pairs)
            out.append(head + f"no comparison with `{r.full}`: budgets differ ({r.suite}); "
                       "the common-budget table scores both at the smaller one.")
            continue
        n += 1
        v = tables.verdict(r.p_lower, r.p_upper).replace("X", "full V-MPO").replace("Y", "the ablation")
        claim = (f"Song et al. 2019 report that removing {what} hurts." if parts
                 else "The paper reports nothing on it.")
        envs, n_suite, undone = verdict_scope(final, status, r.suite, r.variant, r.full)
        shown = scope_verdict(envs, n_suite, undone, r.p_lower, r.p_upper)
        out.append(head + f"P({r.full} > {r.variant}) = "
                   f"{tables.ci(r.p_full_better, r.p_lower, r.p_upper)} ({r.suite}, "
                   f"{_env_span(envs, n_suite)}, {int(r.full_n_runs)} vs {int(r.n_runs)} "
                   f"runs) - {v}. {claim} "
                   f"This study {shown if parts else 'has no claim to check'}.")
    if n:
        out += ["", family_line(n)]
    return out


def _report_md(runs, status, summary, final, groups, est, note, reps, seed, engine,
               command, suites, figs, side, claims, files, binds=None) -> str:
    """report.md. binds: `duals.trust_regions` (long), None where no V-MPO run logged duals."""
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
        L += _auc_lines(est, groups, s, mixed_budgets(final).get(s))
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
            L += ["### Do V-MPO's trust regions bind?", "", _tr_caption(part), "",
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
                  + (" (the earlier report is intact)" if (out / MARKER).is_file() else ""),
                  file=sys.stderr)
            errors = max(errors, 1)
    return errors


if __name__ == "__main__":
    sys.exit(main())
