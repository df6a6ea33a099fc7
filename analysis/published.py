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
            ret = short(float(r.mean)) + (f" ± {short(float(r.std))}" if str(r.std) != "" else "")
            rows.append((suite, env, r.source, r.algo, ret, str(r.seeds),
                         f"{int(r.steps):,}", r.protocol))
    return pd.DataFrame(rows, columns=["suite", "env", "who", "algo", "return", "runs",
                                       "steps", "protocol"])


def source_name(source: str) -> str:
    """A short column name for a published source: its first word ("CleanRL", "Tianshou",
    "openai/baselines"), "SB3 zoo" for rl-baselines3-zoo."""
    first = source.split()[0].rstrip(",")
    return "SB3 zoo" if first == "SB3" else first


def side_by_side(per_env: pd.DataFrame, published: pd.DataFrame | None = None,
                 variants: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (suite, env, algo) with published figures: our variant named like the
    algorithm (`variants` maps algo -> our variant; default the same name), its mean
    [Student-t 95% CI] over n seeds, then each source's figure with ours as a fraction of
    it. Columns: suite, env, algo, ours, n, then per source "<source>" and
    "ours / <source>", and "below half of" (the sources ours is under half of)."""
    pub = load_published() if published is None else published
    pub = pub.assign(key=[env_key(e) for e in pub["env"]], name=[source_name(x) for x in pub["source"]])
    names = list(dict.fromkeys(pub["name"]))
    variants = variants or {}
    rows = []
    for (suite, env), g in per_env.groupby(["suite", "env"], sort=True):
        p = pub[(pub["suite"] == suite) & (pub["key"] == env_key(env))]
        for algo in sorted(set(p["algo"])):
            mine = g[g["variant"] == variants.get(algo, algo)]
            if mine.empty:
                continue
            r = mine.iloc[0]
            row = {"suite": suite, "env": env, "algo": algo,
                   "ours": ci(r["mean"], r["lower"], r["upper"]), "n": int(r["n"])}
            below = []
            for name in names:
                q = p[(p["algo"] == algo) & (p["name"] == name)]
                if q.empty:
                    row[name], row[f"ours / {name}"] = "", ""
                    continue
                q = q.iloc[0]
                m = float(q["mean"])
                row[name] = short(m) + (f" ± {short(float(q['std']))}" if str(q["std"]) != "" else "")
                frac = float(r["mean"]) / m if m > 0 else float("nan")
                row[f"ours / {name}"] = short(frac)
                if m > 0 and frac < 0.5:
                    below.append(name)
            row["below half of"] = ", ".join(below)
            rows.append(row)
    cols = ["suite", "env", "algo", "ours", "n"] + [c for n in names for c in (n, f"ours / {n}")] + ["below half of"]
    return pd.DataFrame(rows, columns=cols)
