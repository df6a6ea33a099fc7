"""Which runs a sweep should have, which it has, and which of those can be scored.

Expected runs: the sweep's manifest where it has a usable one; otherwise, per sweep and
suite, every variant x env x seed combination of the runs present in that suite (a
variant run only on MuJoCo is not expected on Atari).

Each expected or present run gets one status:
  ok          state "done" with a finite last eval/return: it is aggregated;
  missing     in the manifest (or the grid) with no run directory;
  failed      status.json says "failed" (its error is kept as the detail);
  unfinished  status.json says "running", or there is no status.json;
  no_score    "done" but no eval/return row, a non-finite last one, a last one before the
              run's budget (the final evaluation is missing), or a damaged eval/return
              row in metrics.csv (the detail names its line).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.load import Runs, UsageError

STATUSES = ("ok", "missing", "failed", "unfinished", "no_score")
NOT_OK = STATUSES[1:]
COLUMNS = ["sweep", "suite", "variant", "env", "seed", "run_id", "status", "detail", "row"]


class IncompleteError(UsageError):
    """The grid has runs that are not ok and --allow-incomplete was not given."""


def _status(row) -> tuple[str, str]:
    if row.state == "failed":
        return "failed", row.error or "status.json: failed"
    if row.state == "running":
        return "unfinished", f"running, step {row.status_step} of {row.steps}"
    if row.state == "":
        return "unfinished", row.error or "no status.json"
    if row.problem:
        return "no_score", row.problem
    if row.n_evals == 0:
        return "no_score", "done but metrics.csv has no eval/return row"
    if not math.isfinite(row.score):
        return "no_score", f"last eval/return is {row.score}"
    if row.score_step < row.steps:
        return "no_score", (f"done but its last eval/return is at step {row.score_step}, before "
                            f"its budget of {row.steps} steps (metrics.csv lacks the final "
                            "evaluation)")
    return "ok", ""


def check(runs: Runs) -> pd.DataFrame:
    """One row per expected or present run (COLUMNS), sorted; `row` indexes runs.table
    (-1 for a missing run)."""
    t = runs.table
    out = []
    for i, r in enumerate(t.itertuples(index=False)):
        st, detail = _status(r)
        out.append((r.sweep, r.suite, r.variant, r.env, int(r.seed), r.run_id, st, detail, i))
    present = pd.DataFrame(out, columns=COLUMNS)
    missing = []
    for sweep in sorted(set(t["sweep"]) | set(runs.manifests)):
        mine = present[present["sweep"] == sweep]
        have_ids = set(mine["run_id"])
        have_keys = set(zip(mine["variant"], mine["env"], mine["seed"]))
        env_suite = dict(zip(mine["env"], mine["suite"]))
        man = runs.manifests.get(sweep)
        if man is not None:
            for m in man.itertuples(index=False):
                if (m.run_id and m.run_id in have_ids) or (m.variant, m.env, m.seed) in have_keys:
                    continue
                suite = m.suite or env_suite.get(m.env) or _suite_of(m.env)
                missing.append((sweep, suite, m.variant, m.env, int(m.seed), m.run_id,
                                "missing", "listed in the manifest, no run directory", -1))
            continue
        for suite, g in mine.groupby("suite", sort=True):
            for v in sorted(set(g["variant"])):
                for e in sorted(set(g["env"])):
                    for s in sorted(set(g["seed"])):
                        if (v, e, s) not in have_keys:
                            missing.append((sweep, suite, v, e, int(s), "", "missing",
                                            ("in the variant x env x seed grid, no run "
                                             "directory"), -1))
    df = pd.concat([present, pd.DataFrame(missing, columns=COLUMNS)], ignore_index=True)
    df["seed"] = df["seed"].astype(np.int64)
    df["row"] = df["row"].astype(np.int64)
    return df.sort_values(["sweep", "suite", "variant", "env", "seed", "run_id"],
                          kind="stable").reset_index(drop=True)


def _suite_of(env: str) -> str:
    try:
        import suites
        return str(suites.suite_of(env))
    except Exception:  # noqa: BLE001 - an unknown env in a manifest is only a label here
        return "?"


def summary(status: pd.DataFrame) -> pd.DataFrame:
    """Counts per suite x variant x env: expected and each status (columns of STATUSES)."""
    g = status.groupby(["suite", "variant", "env", "status"]).size().unstack(fill_value=0)
    for s in STATUSES:
        if s not in g.columns:
            g[s] = 0
    g = g[list(STATUSES)].astype(np.int64)
    g.insert(0, "expected", g.sum(axis=1))
    return g.reset_index().sort_values(["suite", "variant", "env"]).reset_index(drop=True)


def require_complete(status: pd.DataFrame, limit: int = 20) -> None:
    """Raise IncompleteError naming every run that is not ok (the first `limit` of them)."""
    bad = status[status["status"] != "ok"]
    if bad.empty:
        return
    counts = ", ".join(f"{int((bad['status'] == s).sum())} {s}" for s in NOT_OK
                       if (bad["status"] == s).any())
    n_ok = int((status["status"] == "ok").sum())
    lines = [f"incomplete grid: {counts} of {len(status)} expected runs ({n_ok} ok):"]
    for r in bad.head(limit).itertuples(index=False):
        where = f" [{r.run_id}]" if r.run_id else ""
        lines.append(f"  {r.sweep}: {r.variant} {r.env} seed {r.seed}{where}: "
                     f"{r.status} ({r.detail})")
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    lines.append("pass --allow-incomplete to aggregate the ok runs and mark the report "
                 "incomplete")
    raise IncompleteError("\n".join(lines))


def check_duplicates(status: pd.DataFrame, runs: Runs) -> None:
    """Raise UsageError if two ok runs share variant, env and seed (e.g. in two sweeps)."""
    ok = status[status["status"] == "ok"]
    dup = ok[ok.duplicated(["variant", "env", "seed"], keep=False)]
    if dup.empty:
        return
    first = dup.iloc[0]
    same = dup[(dup["variant"] == first["variant"]) & (dup["env"] == first["env"])
               & (dup["seed"] == first["seed"])]
    paths = [runs.table["path"].iloc[int(i)] for i in same["row"]]
    raise UsageError(f"two runs of {first['variant']} on {first['env']} with seed "
                     f"{first['seed']}: {', '.join(paths)}; keep one (move the other out "
                     "of the results folder) or report the sweeps separately")
