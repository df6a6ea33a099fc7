"""Scores: a run's last eval/return, normalised by its suite, arranged for rliable.

A run's score is its eval/return at its last evaluation (largest step); its auc score
(`auc_score`: one definition for the tuning's criterion and the report's `aggregate_auc`)
is the mean of all its evaluations, normalised. Scores are
normalised with `suites.normalise(env_id, score)` (Atari: human-normalised with DQN
Zoo's random/human table; other suites: their own reference pair, see `suites`), or with
the pair a sweep spec's `references:` recorded in the runs' config.json ("reference")
for an env `suites` has none for. An env with neither keeps its raw returns: its `score`
is NaN, and `without_pair` names it for the report.

For the aggregates (`stratify`) each such env becomes a stratum of its own, suite key
`raw:<env>` (`raw_stratum`), whose score is the raw return: raw returns of two envs are
on different scales, so no aggregate pools them with each other or with normalised
scores. `curve_tensor` and `scores_at` leave a raw stratum's returns in raw units.

rliable wants, per suite and variant, a (num_runs, num_tasks) matrix with the same
number of runs on every task. Where an incomplete grid (--allow-incomplete) leaves a
variant with fewer seeds on some env, the matrix keeps the `n` lowest seeds of every env,
n being the smallest count, and reports how many ok runs that drops; an env with no ok
run of that variant is left out of that variant's matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from analysis.load import Runs, UsageError

FULL_VMPO = "vmpo"


# env -> (random, reference, source) read from runs' config.json by `final_scores`:
# the spec's `references:`, for envs without a pair in `suites`.
_RUN_PAIRS: dict[str, tuple[float, float, str]] = {}


def _suite_pair(env: str) -> bool:
    import suites

    try:
        suites.reference(env)
        return True
    except ValueError:  # NoReferenceError, UnknownEnvError
        return False


def learn_pairs(runs: Runs, rows) -> None:
    """Record the "reference" pair of the runs `rows` (indices into runs.table) for envs
    `suites` has no pair for. UsageError when two runs of one env carry different pairs."""
    import json
    from pathlib import Path

    t = runs.table
    for r in rows:
        env = str(t["env"].iloc[int(r)])
        if _suite_pair(env):
            continue
        try:
            cfg = json.loads((Path(t["path"].iloc[int(r)]) / "config.json").read_text())
        except (OSError, ValueError):
            continue
        pair = cfg.get("reference")
        if not isinstance(pair, dict):
            continue
        key = (float(pair["random"]), float(pair["reference"]), str(pair.get("source", "")))
        if _RUN_PAIRS.get(env, key) != key:
            raise UsageError(f"runs of {env} carry different reference pairs ({_RUN_PAIRS[env]} "
                             f"and {key}, {t['path'].iloc[int(r)]}): one env, one pair")
        _RUN_PAIRS[env] = key


def has_pair(env: str) -> bool:
    """True when `env`'s scores can be normalised (a `suites` pair or a runs' one)."""
    return env in _RUN_PAIRS or _suite_pair(env)


@cache
def _vectorised_ok(env: str) -> bool:
    import suites

    probe = np.array([0.0, 1.0, 123.5])
    try:
        out = np.asarray(suites.normalise(env, probe), dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return out.shape == probe.shape and all(
        out[i] == float(suites.normalise(env, float(probe[i]))) for i in range(len(probe)))


def by_pair(values, random: float, reference: float) -> np.ndarray:
    """(values - random) / (reference - random): a run-recorded or spec pair's normalisation."""
    return (np.asarray(values, dtype=np.float64) - random) / (reference - random)


def normalise(env: str, values) -> np.ndarray:
    """suites.normalise applied to an array of raw returns of `env`; same shape back.

    Raises UsageError when `suites` does not know the env (nor its runs' configs: see
    `learn_pairs`).
    """
    import suites

    x = np.asarray(values, dtype=np.float64)
    if env in _RUN_PAIRS and not _suite_pair(env):
        rnd, ref, _ = _RUN_PAIRS[env]
        return by_pair(x, rnd, ref)
    try:
        if _vectorised_ok(env):
            return np.asarray(suites.normalise(env, x), dtype=np.float64)
        flat = [float(suites.normalise(env, float(v))) for v in x.reshape(-1)]
    except Exception as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"cannot normalise scores of env {env!r}: {e}") from None
    return np.asarray(flat, dtype=np.float64).reshape(x.shape)


def reference(env: str):
    """suites.reference(env) (or the runs' pair, `learn_pairs`): (random, reference,
    source), or None if there is none."""
    import suites

    if env in _RUN_PAIRS and not _suite_pair(env):
        return suites.Reference(*_RUN_PAIRS[env])
    try:
        return suites.reference(env)
    except Exception:  # noqa: BLE001 - only a label in the report
        return None


def final_scores(runs: Runs, status: pd.DataFrame) -> pd.DataFrame:
    """The ok runs with their raw and normalised final scores.

    Columns: suite, variant, algo, env, seed, sweep, run_id, steps, frameskip,
    raw (last eval/return), score (normalised), row (index into runs.table).
    Sorted by suite, variant, env, seed.
    """
    ok = status[status["status"] == "ok"]
    t = runs.table.iloc[ok["row"].to_numpy()]
    df = pd.DataFrame({
        "suite": t["suite"].to_numpy(), "variant": t["variant"].to_numpy(),
        "algo": t["algo"].to_numpy(), "env": t["env"].to_numpy(),
        "seed": t["seed"].to_numpy(), "sweep": t["sweep"].to_numpy(),
        "run_id": t["run_id"].to_numpy(), "steps": t["steps"].to_numpy(),
        "frameskip": t["frameskip"].to_numpy(), "raw": t["score"].to_numpy(),
        "row": ok["row"].to_numpy(),
    })
    df["score"] = np.nan
    learn_pairs(runs, df["row"].to_numpy())
    for env, idx in df.groupby("env").groups.items():
        if has_pair(env):  # else raw returns only (score NaN): see without_pair
            df.loc[idx, "score"] = normalise(env, df.loc[idx, "raw"].to_numpy())
    df = df[["suite", "variant", "algo", "env", "seed", "sweep", "run_id", "steps",
             "frameskip", "raw", "score", "row"]]
    return df.sort_values(["suite", "variant", "env", "seed"], kind="stable"
                          ).reset_index(drop=True)


def curve_score(values: np.ndarray, criterion: str) -> float:
    """A learning curve's score, one rule for the tuning's selection
    (`sweeps.tuning.score_trials`), its report (`analysis.tuning.run_scores`) and the
    report's auc (`auc_score`). values: [K] evaluations in order (normalised or raw);
    `final` is the last, `auc` the mean of all K (see `auc_score`). NaN for K = 0."""
    x = np.asarray(values, dtype=np.float64)
    if criterion not in ("final", "auc"):
        raise ValueError(f"criterion: 'final' or 'auc', got {criterion!r}")
    if not len(x):
        return float("nan")
    return float(x[-1]) if criterion == "final" else float(np.mean(x))


def auc_score(runs: Runs, i: int, raw: bool = False) -> float:
    """Run i's area under its learning curve, as the tuning scores trials too
    (`tuning.run_scores`): the mean of its evaluations `runs.curve(i)`, each normalised,

        auc = (1/K) sum_k normalise(env, eval_k),   k = 1..K (every evaluation, in order),

    or in raw returns with `raw` (a raw stratum, `is_raw`). NaN without evaluations (or
    where one is NaN). The mean and not a trapezoid over steps: evaluations come every
    `eval_every` steps up to the budget, so the mean is the area under the curve (a right
    Riemann sum) over the budget, and an evaluation a few steps late (at a rollout
    boundary) weighs no more than the others. Where the budget is not a multiple of
    `eval_every` the last evaluation (at the budget) weighs a full period though it covers
    less: every sweep spec in sweeps/ has budgets that are multiples of it.
    UsageError for an env without a pair unless `raw` (`normalise`)."""
    _, values = runs.curve(i)
    if not len(values):
        return float("nan")
    x = values if raw else normalise(str(runs.table["env"].iloc[i]), values)
    return curve_score(x, "auc")


def without_pair(final: pd.DataFrame) -> list[str]:
    """The envs of `final_scores` with raw returns only (no reference pair), sorted."""
    return sorted(set(final.loc[_raw_rows(final), "env"]))


def _raw_rows(final: pd.DataFrame) -> pd.Series:
    """The rows of `final_scores` with a raw return and no normalised score."""
    return final["score"].isna() & final["raw"].notna()


RAW = "raw:"  # suite-key prefix of an env's raw-return stratum


def raw_stratum(env: str) -> str:
    """The suite key of `env`'s raw-return stratum: "raw:<env>"."""
    return RAW + env


def raw_env(suite: str) -> str:
    """The env of a raw-return stratum `raw:<env>` (`raw_stratum`'s inverse)."""
    return str(suite)[len(RAW):]


def is_raw(suite: str) -> bool:
    """True for a raw-return stratum (`raw_stratum`): scores in the env's return units."""
    return str(suite).startswith(RAW)


def stratify(final: pd.DataFrame) -> pd.DataFrame:
    """`final_scores` as the aggregates take them: every env without a reference pair
    (`without_pair`) moved to its own stratum, suite `raw:<env>`, with its raw return as
    its score; the envs with a pair as they were; runs without a finite score (no raw
    return) left out. Same columns, sorted like `final_scores`.

    A normalised suite's rows are those of `final_scores` exactly, so its aggregates do
    not change when raw envs join a report."""
    out = final.copy()
    raw = _raw_rows(out).to_numpy()
    out.loc[raw, "suite"] = [raw_stratum(e) for e in out.loc[raw, "env"]]
    out.loc[raw, "score"] = out.loc[raw, "raw"]
    out = out[out["score"].notna()]
    return out.sort_values(["suite", "variant", "env", "seed"], kind="stable"
                           ).reset_index(drop=True)


def _in_units(group: Group, j: int, raw: np.ndarray) -> np.ndarray:
    """Raw returns of task j of `group` in the group's score units: normalised, or as
    they are for a raw stratum."""
    return raw if is_raw(group.suite) else normalise(group.envs[j], raw)


@dataclass
class Group:
    """One variant's runs on one suite, as rliable wants them.

    envs: the tasks, sorted; rows: (n, tasks) indices into runs.table; scores: (n, tasks)
    normalised final scores (raw returns for a raw stratum, `is_raw(suite)`); dropped: ok
    runs left out to keep n equal on every env.
    """

    suite: str
    variant: str
    algo: str
    envs: list[str]
    rows: np.ndarray
    scores: np.ndarray
    dropped: int

    @property
    def n_runs(self) -> int:
        return int(self.scores.size)

    def columns(self, envs: list[str]) -> Group:
        """The same runs restricted to `envs` (a subset of self.envs, in that order)."""
        idx = [self.envs.index(e) for e in envs]
        return Group(self.suite, self.variant, self.algo, list(envs), self.rows[:, idx],
                     self.scores[:, idx], self.dropped)


def groups(final: pd.DataFrame) -> dict[tuple[str, str], Group]:
    """A Group per (suite, variant) of the final scores, keys sorted."""
    out: dict[tuple[str, str], Group] = {}
    for (suite, variant), g in final.groupby(["suite", "variant"], sort=True):
        algos = sorted(set(g["algo"]))
        if len(algos) != 1:
            raise UsageError(f"variant {variant!r} on suite {suite!r} has runs of several "
                             f"algorithms {algos}: one variant name must mean one algorithm")
        per_env = {e: gg.sort_values("seed", kind="stable") for e, gg in g.groupby("env")}
        envs = sorted(per_env)
        n = min(len(per_env[e]) for e in envs)
        rows = np.stack([per_env[e]["row"].to_numpy()[:n] for e in envs], axis=1)
        sc = np.stack([per_env[e]["score"].to_numpy()[:n] for e in envs], axis=1)
        out[(suite, variant)] = Group(suite, variant, algos[0], envs,
                                      rows.astype(np.int64), sc.astype(np.float64),
                                      int(len(g) - n * len(envs)))
    return out


def auc_groups(runs: Runs, groups_: dict[tuple[str, str], Group]
               ) -> dict[tuple[str, str], Group]:
    """`groups_` with each run's auc score (`auc_score`; raw returns for a raw stratum) in
    place of its final score: the same runs (rows) and envs, so that an aggregate under
    auc and one under the final score compare like with like. Same keys, same order."""
    out = {}
    for key, g in groups_.items():
        sc = np.array([[auc_score(runs, int(r), raw=is_raw(g.suite)) for r in row]
                       for row in g.rows], dtype=np.float64).reshape(g.rows.shape)
        out[key] = Group(g.suite, g.variant, g.algo, list(g.envs), g.rows, sc, g.dropped)
    return out


def full_vmpo(groups_: dict[tuple[str, str], Group], baseline: str) -> str | None:
    """The variant ablations are compared with: the baseline if it is a V-MPO variant,
    else the variant named "vmpo" if present (of the baseline's sweep label), else None."""
    from analysis.labels import label

    return full_vmpos(groups_, baseline).get(label(baseline))


def full_vmpos(groups_: dict[tuple[str, str], Group], baseline: str) -> dict[str, str]:
    """Sweep label ("" unlabelled; analysis/labels.py) -> the full V-MPO its ablations are
    compared with: the baseline for its own label if it is a V-MPO variant, else that
    label's "vmpo" (`vmpo@<label>`), where present."""
    from analysis.labels import SEP, label

    algos = {v: g.algo for (_, v), g in groups_.items()}
    out = {}
    for lab in sorted({label(v) for v, a in algos.items() if a == "vmpo"}):
        name = FULL_VMPO + (SEP + lab if lab else "")
        if algos.get(name) == "vmpo":
            out[lab] = name
    if algos.get(baseline) == "vmpo":
        out[label(baseline)] = baseline
    return out


def ablations(groups_: dict[tuple[str, str], Group], fulls: dict[str, str]) -> dict[str, str]:
    """Ablation -> its full V-MPO (`fulls`, from `full_vmpos`): every other variant whose
    runs are V-MPO (algo == "vmpo") with a full V-MPO of its own sweep label."""
    from analysis.labels import label

    return {v: fulls[label(v)] for v in sorted({v for (_, v), g in groups_.items()
                                                if g.algo == "vmpo"})
            if label(v) in fulls and v != fulls[label(v)]}


def curve_grid(runs: Runs, rows: np.ndarray, points: int) -> np.ndarray:
    """Up to `points` agent-step values at which every run in `rows` has evaluated at least
    once (from the latest first evaluation to the earliest last one), taken from the runs'
    own evaluation steps: all of them where there are at most `points`, else `points` of
    them evenly spaced by index. Returns (k,) int64, k <= points; empty if those runs share
    no such range.

    Why the evaluation steps and not an even spacing of the range: a run evaluates at the
    first rollout boundary past each multiple of `eval_every` (TRPO's 2048-step batches put
    the 250k evaluation at 251,904), so evenly spaced points fall just before some of
    those evaluations and the forward-filled curve repeats the previous one there (flat
    pairs that look like plateaus)."""
    off = runs.eval_offsets
    first = runs.eval_steps[off[rows]]
    last = runs.eval_steps[off[rows + 1] - 1]
    lo, hi = int(first.max()), int(last.min())
    if hi < lo:
        return np.zeros(0, dtype=np.int64)
    steps = np.unique(np.concatenate([runs.eval_steps[off[r]:off[r + 1]] for r in rows]))
    steps = steps[(steps >= lo) & (steps <= hi)].astype(np.int64)
    if len(steps) <= points:
        return steps
    return steps[np.unique(np.round(np.linspace(0, len(steps) - 1, points)).astype(np.int64))]


def curve_tensor(runs: Runs, group: Group, grid: np.ndarray) -> np.ndarray:
    """(n, tasks, len(grid)) normalised scores (raw returns for a raw stratum): each run's
    latest finite evaluation at or before each grid step (NaN where it has none)."""
    n, t = group.rows.shape
    raw = np.full((n, t, len(grid)), np.nan)
    for j in range(t):
        for i in range(n):
            s, v = runs.curve(int(group.rows[i, j]))
            keep = np.isfinite(v)
            s, v = s[keep], v[keep]
            k = np.searchsorted(s, grid, side="right") - 1
            raw[i, j] = np.where(k >= 0, v[np.maximum(k, 0)] if len(v) else np.nan, np.nan)
        raw[:, j] = _in_units(group, j, raw[:, j])
    return raw


def mixed_budgets(final: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """The suites where the runs of some env have different budgets (variants given their
    own), each with every variant's budgets there: {suite: {variant: [steps, ...]}}."""
    out: dict[str, dict[str, list[int]]] = {}
    for suite, g in final.groupby("suite", sort=True):
        if (g.groupby("env")["steps"].nunique() > 1).any():
            out[suite] = {v: sorted({int(x) for x in gg["steps"]})
                          for v, gg in g.groupby("variant", sort=True)}
    return out


def scores_at(runs: Runs, group: Group, step: int) -> np.ndarray:
    """(n, tasks) normalised scores (raw returns for a raw stratum) of each run at its
    first finite evaluation at or after agent step `step` (NaN where a run has none): the runs of variants with different
    budgets compared at the smallest one. With evaluations every `eval_every` steps at
    rollout boundaries that is within one evaluation interval of `step`, and exactly the
    final evaluation of the runs whose budget `step` is."""
    n, t = group.rows.shape
    raw = np.full((n, t), np.nan)
    for j in range(t):
        for i in range(n):
            s, v = runs.curve(int(group.rows[i, j]))
            keep = np.isfinite(v) & (s >= step)
            if keep.any():
                raw[i, j] = v[keep][0]
        raw[:, j] = _in_units(group, j, raw[:, j])
    return raw
