"""The "Under auc ..." paragraph of a report's suite section (`ranking`): do the variants
rank alike under each run's area under its learning curve (`aggregate_auc`,
`scores.auc_score`) and under its final score (`aggregate`)? A pair ordered differently is
a swap only where both scores' 95% IQM intervals are apart; where the auc intervals overlap
its auc order is not resolved.
"""

from __future__ import annotations

import pandas as pd

from analysis import tables


def _apart(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Whether two (point, lower, upper) intervals are disjoint."""
    return a[1] > b[2] or b[1] > a[2]


def _order(vs: list[str], iqm: dict) -> list[str]:
    """`vs` by IQM point, highest first (ties by name)."""
    return sorted(vs, key=lambda v: (-iqm[v][0], v))


def _pair(x: str, y: str, t: dict) -> str:
    return f"`{x}` {tables.ci(*t[x])}, `{y}` {tables.ci(*t[y])}"


def _differ(pairs: list[tuple[str, str]], f: dict, a: dict) -> str:
    """What the pairs the two scores order differently show (x above y under the final
    score, y above x under auc): a swap only where both scores' intervals are apart;
    where the auc intervals overlap, the auc order is not resolved."""
    swaps = [f"`{x}` and `{y}` swap, `{x}` above under the final score ({_pair(x, y, f)}) "
             f"and `{y}` under auc ({_pair(x, y, a)}), intervals apart under both"
             for x, y in pairs if _apart(a[x], a[y]) and _apart(f[x], f[y])]
    rises = [f"`{y}` is above `{x}` under auc with intervals apart ({_pair(x, y, a)}), where "
             f"their final IQM intervals overlap ({_pair(x, y, f)})"
             for x, y in pairs if _apart(a[x], a[y]) and not _apart(f[x], f[y])]
    open_ = [f"`{x}`/`{y}`" for x, y in pairs if not _apart(a[x], a[y])]
    parts = swaps or ["no swap is resolved"]
    parts += rises
    if open_:
        parts.append("the auc order of " + ", ".join(open_) + " is not resolved (their auc "
                     "IQM intervals overlap)")
    return "; ".join(parts)


def ranking(agg: pd.DataFrame, agg_auc: pd.DataFrame, suite: str,
                budgets: dict[str, list[int]] | None = None,
                envs: dict[str, list[str]] | None = None) -> str:
    """The "Under auc ..." paragraph of a suite: its variants ranked by IQM point under
    auc (`agg_auc`) and under the final score (`agg`; both aggregate.aggregates), how many
    pairs the two order alike, and of those they order differently which swap (both
    scores' 95% intervals apart) and which are not resolved (auc intervals overlap):
    `_differ`. Overlapping intervals are read as "not resolved", never as a swap.

    Only variants of one budget and one env set are ranked together: budgets, variant ->
    its budgets (agent steps) where the suite's differ (scores.mixed_budgets; an auc over
    100k steps and one over 1M average different spans); envs, variant -> its envs (an
    incomplete grid: an IQM over other envs measures other tasks). A variant with one
    seed per env has no interval and is not ranked. "" where no two variants are ranked."""
    def iqm(t):
        r = t[(t["suite"] == suite) & (t["metric"] == "IQM")]
        return {v: (p, lo, hi) for v, p, lo, hi in
                zip(r["variant"], r["point"], r["lower"], r["upper"])}

    def chain(order, t):
        # "≈" where two points print alike: "0.129 > 0.129" would read as a typo
        shown = [tables.short(t[v][0]) for v in order]
        out = f"`{order[0]}` {shown[0]}"
        for i in range(1, len(order)):
            out += f" {'≈' if shown[i] == shown[i - 1] else '>'} `{order[i]}` {shown[i]}"
        return out

    def steps(v):
        return "/".join(f"{x:,}" for x in budgets[v]) + " steps"

    f, a = iqm(agg), iqm(agg_auc)
    one = agg_auc[(agg_auc["suite"] == suite) & (agg_auc["n_seeds"] < 2)]["variant"]
    single = sorted(set(one) & set(f))
    env_sets = {tuple(e) for e in (envs or {}).values()}
    envs = envs if len(env_sets) > 1 else None  # all alike: nothing to split on
    by_key: dict[tuple, list[str]] = {}
    for v in sorted(set(f) & set(a) - set(single)):
        key = (tuple(budgets[v]) if budgets else (), tuple(envs[v]) if envs else ())
        by_key.setdefault(key, []).append(v)
    out = []
    for vs in by_key.values():
        if len(vs) < 2:
            continue
        rf, ra = _order(vs, f), _order(vs, a)
        at = ((f" at {steps(vs[0])}" if budgets else "")
              + (f" on {', '.join(envs[vs[0]])}" if envs else ""))
        text = (f"Under auc the IQM ranks the variants{at} {chain(ra, a)}; under the final "
                f"score, {chain(rf, f)}.")
        pairs = [(x, y) for i, x in enumerate(rf) for y in rf[i + 1:]]
        differ = [(x, y) for x, y in pairs if ra.index(x) > ra.index(y)]
        alike = [(x, y) for x, y in pairs if (x, y) not in differ]
        near = [f"`{x}`/`{y}`" for x, y in alike if not _apart(a[x], a[y])]
        apart = (f"{len(alike) - len(near)} with auc intervals apart"
                 + (f"; {', '.join(near)} overlap" if near else ""))
        if len(pairs) == 1:
            apart = "auc intervals " + ("overlap" if near else "apart")
        every = f" on all {len(pairs)} pairs" if len(pairs) > 1 else ""
        if not differ:
            text += f" The two orders agree{every} ({apart})."
        elif not alike:
            text += f" The two orders differ{every}: {_differ(differ, f, a)}."
        else:
            text += (f" Of their {len(pairs)} pairs, {len(alike)} "
                     f"{'are' if len(alike) > 1 else 'is'} ordered alike ({apart}) and "
                     f"{len(differ)} differ{'s' if len(differ) == 1 else ''}: "
                     + _differ(differ, f, a) + ".")
        out.append(text)
    if not out:
        return ""
    for vs in by_key.values():
        if len(vs) == 1:
            what = " and ".join(x for x in (budgets and f"budget ({steps(vs[0])})",
                                             envs and f"envs ({', '.join(envs[vs[0]])})") if x)
            out.append(f"`{vs[0]}` is ranked with no other variant: none shares its {what}.")
    out += [f"`{v}` has one seed per env, so no interval: not ranked." for v in single]
    return " ".join(out)
