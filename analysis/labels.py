"""Sweep labels: one report of two studies whose variants share names.

A study rerun under another protocol (mujoco-core at defaults, mujoco-tuned after equal
tuning) names its variants as the first did, so pooling the two would put two runs of
`ppo` on one env and seed: the report refuses (completeness.check_duplicates).
`report.py --label mujoco-core=defaults` renames every variant of sweep mujoco-core to
`<variant>@defaults` (`ppo@defaults`); the other sweep keeps its names. Then

- every table and figure shows both, `ppo@defaults` in a lighter shade of `ppo`'s colour
  and dash-dotted where it is a line (plots.Style);
- P(X > X@label) is reported for every variant X but an ablation that both sides ran
  at one budget (pairs of kind "label" in probability_of_improvement.csv, and in "seeds
  needed"), with a control line under the table where the two share run ids (the same
  config and seed rerun: PPO whose tuning kept its defaults measures rerun noise there,
  not tuning); the baseline is compared only within its own label (`vmpo@defaults`
  against the other `@defaults` variants);
- each label's V-MPO ablations are compared with that label's full V-MPO
  (scores.full_vmpos).

A sweep spec cannot name a variant with "@" (sweeps.spec.NAME_RE), so the label of a
variant name is whatever follows its "@".
"""

from __future__ import annotations

import re

import pandas as pd

from analysis.load import Runs, UsageError

SEP = "@"
# a label follows a variant name's rule (sweeps.spec.NAME_RE, equal by a test): the
# analysis imports nothing of sweeps/ or algos/ (docs/design.md: it reads run directories)
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def parse(args: list[str]) -> dict[str, str]:
    """`SWEEP=LABEL` strings -> {sweep: label}; UsageError naming the bad one."""
    out: dict[str, str] = {}
    for a in args:
        sweep, eq, label = a.partition("=")
        if not eq or not sweep or not LABEL_RE.match(label):
            raise UsageError(f"--label {a!r}: expected SWEEP=LABEL, LABEL being letters, "
                             "digits and ._+- (e.g. --label mujoco-core=defaults)")
        if sweep in out and out[sweep] != label:
            raise UsageError(f"--label gives sweep {sweep!r} two labels: {out[sweep]!r} "
                             f"and {label!r}")
        out[sweep] = label
    return out


def base(variant: str) -> str:
    """`ppo@defaults` -> `ppo`; an unlabelled name unchanged."""
    return variant.partition(SEP)[0]


def label(variant: str) -> str:
    """`ppo@defaults` -> `defaults`; "" for an unlabelled name."""
    return variant.partition(SEP)[2]


def apply(runs: Runs, labels: dict[str, str], tuned: set[str] = frozenset()) -> Runs:
    """`runs` with every variant of a labelled sweep renamed `<variant>@<label>`, in its
    table and its manifest. `tuned`: the tune sweeps whose trials join the report and
    their test sweeps; neither can be labelled, because the tuning section finds a test
    variant's trials by its name (label the sweep compared against instead).

    UsageError for a sweep not among the runs (naming those that are)."""
    if not labels:
        return runs
    found = sorted(set(runs.table["sweep"]) | set(runs.manifests))
    for sweep in labels:
        if sweep in tuned:
            raise UsageError(f"--label {sweep}={labels[sweep]}: {sweep}'s tuning trials join "
                             "this report and are matched to its variants by name; label "
                             "the sweep it is compared with instead")
        if sweep not in found:
            raise UsageError(f"--label {sweep}={labels[sweep]}: no sweep {sweep!r} in this "
                             f"report; its sweeps: {', '.join(found) or 'none'}")

    def rename(df: pd.DataFrame, sweep_of) -> pd.DataFrame:
        df = df.copy()
        tag = sweep_of.map(labels)
        hit = tag.notna().to_numpy()
        df.loc[hit, "variant"] = df.loc[hit, "variant"] + SEP + tag[hit]
        return df

    table = rename(runs.table, runs.table["sweep"])
    manifests = {}
    for sweep, man in runs.manifests.items():
        if man is not None and sweep in labels:
            man = man.copy()
            man["variant"] = man["variant"] + SEP + labels[sweep]
        manifests[sweep] = man
    return Runs(table, runs.eval_offsets, runs.eval_steps, runs.eval_values, manifests,
                dict(runs.sweep_paths), list(runs.notes))


def unlabelled(runs: Runs) -> Runs:
    """The runs of variants no label renamed."""
    from analysis.tuning import subset

    return subset(runs, ~runs.table["variant"].str.contains(SEP, regex=False).to_numpy())
