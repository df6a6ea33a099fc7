"""Published figures to set beside ours (analysis/data/published.csv).

The CSV carries, per row: suite, env (short name, e.g. "HalfCheetah"), algo, mean, std
(over seeds, blank if not given), seeds, steps (agent steps), frames, source (the
repository file or paper), protocol (how it was measured) and gathered_in. The numbers
come from vmpo-bench's shared/reference/published.md; each protocol differs from ours
(mean return of the deterministic policy at the last evaluation), and the table says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analysis.tables import ci, short

DATA = Path(__file__).resolve().parent / "data" / "published.csv"
OUR_PROTOCOL = ("deterministic-policy eval return at the last evaluation; "
                "mean [t 95% CI] over seeds")


def load_published(path: Path = DATA) -> pd.DataFrame:
    """The published figures, one row per (env, algo, source)."""
    return pd.read_csv(path, dtype={"env": str, "source": str, "protocol": str},
                       keep_default_na=False)


def env_key(env: str) -> str:
    """A name to match env ids across conventions: "ALE/Breakout-v5",
    "BreakoutNoFrameskip-v4" and "Breakout" all give "breakout"."""
    e = env.split("/")[-1]
    e = re.sub(r"-v\d+$", "", e)
    e = re.sub(r"(NoFrameskip|Deterministic)$", "", e)
    return re.sub(r"[^a-z0-9]", "", e.lower())


def compare(per_env: pd.DataFrame, final: pd.DataFrame,
            published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our per-env means beside the published figures for the envs both have.

    Columns: suite, env, who, algo, return, runs, steps, protocol. Our rows (who =
    "ours: <variant>") give mean [Student-t 95% CI] of the last evaluation over seeds;
    published rows give mean ± std as published.
    """
    pub = load_published() if published is None else published
    pub = pub.assign(key=[env_key(e) for e in pub["env"]])
    budgets = final.groupby(["env", "variant"])["steps"].agg(lambda s: sorted(set(s)))
    rows = []
    for (suite, env), g in per_env.groupby(["suite", "env"], sort=True):
        p = pub[(pub["suite"] == suite) & (pub["key"] == env_key(env))]
        if p.empty:
            continue
        for r in g.itertuples(index=False):
            b = budgets.get((env, r.variant), [])
            rows.append((suite, env, f"ours: {r.variant}", "", ci(r.mean, r.lower, r.upper),
                         str(int(r.n)), "/".join(f"{x:,}" for x in b),
                         OUR_PROTOCOL))
        for r in p.itertuples(index=False):
            ret = published_text(r.mean, r.std)
            rows.append((suite, env, r.source, r.algo, ret, str(r.seeds),
                         f"{int(r.steps):,}", r.protocol))
    return pd.DataFrame(rows, columns=["suite", "env", "who", "algo", "return", "runs",
                                       "steps", "protocol"])


def source_name(source: str) -> str:
    """A short column name for a published source: its first word ("CleanRL", "Tianshou",
    "openai/baselines"), "SB3 zoo" for rl-baselines3-zoo."""
    first = source.split()[0].rstrip(",")
    return "SB3 zoo" if first == "SB3" else first


def _short_names(sources: list[str]) -> dict[str, str]:
    """source -> its short name, or its text up to " (" where two sources share one."""
    short = {x: source_name(x) for x in sources}
    clash = {n for n in short.values() if sum(v == n for v in short.values()) > 1}
    return {x: (re.split(r" \(", x, maxsplit=1)[0] if n in clash else n) for x, n in short.items()}


def published_text(mean, std) -> str:
    """"mean ± std" as published ("mean" where no std is given)."""
    return short(float(mean)) + (f" ± {short(float(std))}" if str(std) != "" else "")


def _namesakes(ours: pd.Series, variant: str) -> list[str]:
    """`variant` and its labelled namesakes (`ppo@defaults`, analysis/labels.py) among
    `ours`, those present, in that order."""
    from analysis.labels import base

    have = set(ours)
    return ([variant] if variant in have else []) + sorted(
        x for x in have if x != variant and base(x) == variant)


def side_by_side(per_env: pd.DataFrame, final: pd.DataFrame, published: pd.DataFrame | None = None,
                 variants: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (suite, env, algo) with published figures: our variant named like the
    algorithm (`variants` maps algo -> our variant; default the same name), and one more
    per labelled namesake (`ppo@defaults`, named in the algo column), its mean
    [Student-t 95% CI] over n seeds and its budget, then each source's figure and ours as
    a fraction of it. Columns: suite, env, algo, ours, n, steps, then per source
    "<source>" and "ours / <source>", and "below half of": the sources of the same budget
    (within 5%) that ours is under half of."""
    pub = load_published() if published is None else published
    pub = pub.assign(key=[env_key(e) for e in pub["env"]])
    variants = variants or {}
    budgets = final.groupby(["env", "variant"])["steps"].agg(lambda x: sorted({int(b) for b in x}))
    rows, used = [], []
    for (suite, env), g in per_env.groupby(["suite", "env"], sort=True):
        p = pub[(pub["suite"] == suite) & (pub["key"] == env_key(env))]
        for algo, variant in ((a, v) for a in sorted(set(p["algo"]))
                              for v in _namesakes(g["variant"], variants.get(a, a))):
            r = g[g["variant"] == variant].iloc[0]
            steps = budgets.get((env, variant), [])
            row = {"suite": suite, "env": env, "algo": algo if variant == variants.get(algo, algo)
                   else variant, "ours": ci(r["mean"], r["lower"], r["upper"]),
                   "n": int(r["n"]), "steps": "/".join(f"{b:,}" for b in steps), "_below": []}
            for q in p[p["algo"] == algo].itertuples(index=False):
                used.append(q.source)
                m = float(q.mean)
                frac = float(r["mean"]) / m if m > 0 else float("nan")
                row[q.source] = (published_text(q.mean, q.std), short(frac))
                same_budget = len(steps) == 1 and abs(steps[0] - int(q.steps)) <= 0.05 * int(q.steps)
                if m > 0 and frac < 0.5 and same_budget:
                    row["_below"].append(q.source)
            rows.append(row)
    names = _short_names(list(dict.fromkeys(used)))
    cols = ["suite", "env", "algo", "ours", "n", "steps"] + [
        c for x in names for c in (names[x], f"ours / {names[x]}")] + ["below half of"]
    out = []
    for row in rows:
        line = [row[c] for c in ("suite", "env", "algo", "ours", "n", "steps")]
        for x in names:
            line += list(row.get(x, ("", "")))
        line.append(", ".join(names[x] for x in row["_below"]))
        out.append(line)
    return pd.DataFrame(out, columns=cols)
