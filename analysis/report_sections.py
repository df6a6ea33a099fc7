"""The sections a report adds to report.md once it is composed, each a table and its text:
seeds needed (`seeds_needed_section`: every comparison whose interval of P(X > Y) holds
0.5) and held-out envs beside tuning envs (`held_out_envs_section`), each inserted before
report.md's closing sections (`append_section`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import tables
from analysis import labels as label_mod
from analysis.load import Runs
from analysis.outdir import MARKER


# report.md's closing sections, in order: a later section goes before the first of these
CLOSING = ("## References for normalisation", "## Provenance", "## Notes", "## Files")


def append_section(d: Path, files: list[str], new_files: list[str], lines: list[str]) -> list[str]:
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


def seeds_needed_section(d: Path, est, groups, seed: int, complete: bool, note
                         ) -> tuple[list[str], list[str]]:
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


def held_out_envs_section(d: Path, trials: Runs, groups, final: pd.DataFrame, reps: int,
                          seed: int, engine: str, n_jobs: int | None, complete: bool, note
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
