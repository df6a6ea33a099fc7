"""The paper's claims, checked: one sentence per V-MPO ablation on what it removes, its
P(full > ablation) with the envs and runs it rests on, and what that shows of Song et al.
2019's claim that the part matters (`ablation_claims`, report.md's "The paper's claims,
checked"); a verdict on fewer envs than the suite has, or with runs not done, is
provisional (`verdict_scope`, `scope_verdict`), and a last line counts the comparisons
(`family_line`).
"""

from __future__ import annotations

import json

import pandas as pd

from analysis import tables
from analysis.scores import is_raw


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
