"""Equal-budget tuning in a spec: the `tuning:` section, its trials, and the test phase.

A spec with a `tuning:` section compares algorithms, not settings. It is run in three
phases, each an ordinary sweep (run directories, run ids, resume, `--status`,
`--retry-failed`, `--dry-run`, SLURM arrays and the archive all work unchanged):

    python sweeps/launch.py SPEC --phase tune     # trials: <name>-tune/, tuning seeds
    python sweeps/launch.py SPEC --phase select   # writes the selected configs (a fragment)
    python sweeps/launch.py SPEC --phase test     # the selected configs on the test seeds

`python sweeps/launch.py SPEC` with no `--phase` does the next phase that is due (tune
until every trial is done, then select, then test), so relaunching one command runs the
whole protocol. The section:

    seeds: 5                        # the TEST seeds (the headline runs)
    tuning:
      configs: 16                   # per tuned variant, the defaults included; or a mapping
                                    # {vmpo: 16, ppo: 16}: unequal budgets are flagged
      seeds: [1000, 1001]           # tuning seeds (a list, or a count n: 1000..1000+n-1);
                                    # must not overlap the test seeds
      envs: [HalfCheetah-v5, Hopper-v5]   # tuning envs (suites or env ids; budgets apply;
                                          # each needs a reference pair: see `references`)
      steps: 1_000_000              # optional: every trial's budget (else budgets/runs)
      criterion: final              # final (default) | auc
      sampler: lhs                  # lhs (default) | sobol: how trials 1..n-1 are drawn
      sampler_seed: 0               # the design's seed
      selected: mujoco-tuned.selected.yaml   # optional; default <spec stem>.selected.yaml
      inherit: {vmpo-no-topk: vmpo} # optional; default: an untuned variant takes the
                                    # selection of the one tuned variant of its algorithm
      search:                       # tuned variant -> hyperparameter -> distribution
        vmpo:
          eps_eta: {log_uniform: [0.01, 1.0]}
          topk_fraction: {uniform: [0.25, 1.0]}
          target_period: {log_int: [10, 200]}
          epochs: {int: [1, 8]}
          lr: {choice: [1e-4, 3e-4, 1e-3]}
          batch: {choice: [{num_envs: 8, rollout_length: 32},   # a joint choice: each option
                           {num_envs: 1, rollout_length: 2048}]} # sets several fields at once
        ppo:
          lr: {log_uniform: [1e-4, 3e-3]}

Distributions, for u in [0, 1) from the sequence (one dimension per hyperparameter):
`uniform [lo, hi]` lo + u (hi - lo); `log_uniform [lo, hi]` (lo, hi > 0) exp of uniform in
log space; `int [lo, hi]` lo + floor(u (hi - lo + 1)), both ends included; `log_int
[lo, hi]` (lo >= 1) floor of log-uniform on [lo, hi + 1); `choice [a, b, ...]` the
floor(u k)-th option. Floats are rounded to 3 significant digits so that configurations
read (and diff) cleanly.

Configurations: trial 0 (`<variant>.c00`) is the variant as the spec writes it, i.e. the
algorithm's defaults: the current defaults are always a candidate. Trials 1..n-1 are n-1
points of a space-filling design over the unit cube, one dimension per searched key (a
joint choice is one dimension), seeded by `sampler_seed` and the variant's name:
`sampler: lhs` (the default) a Latin hypercube, `scipy.stats.qmc.LatinHypercube(d,
optimization="random-cd")`; `sampler: sobol` the first n-1 points of a scrambled Sobol
sequence (`qmc.Sobol`), as every spec drew before the key existed (a spec launched then
must say `sampler: sobol` to keep its trials and run ids). Both draws are scipy's
implementation, not ours: tests/test_tuning.py pins them (a small spec's trials, and the
hash of the shipped study's 192 run ids), so a scipy that draws otherwise fails CI rather
than silently moving run ids. The tune sweep's manifest.json records the resolved sampler
and its seed at its top level (`Tuning.record`; outside every run-id hash), so the report
can name the design of a spec copy that leaves `sampler` to its default, and the tune
phase refuses (exit 2; --status and --dry-run warn) to launch into a folder whose record,
or whose done trials' run ids, show another design (`design_change`): trials are named
by index, so the report would average two designs under one trial name.

Why a fixed design rather than Optuna's adaptive samplers: the configurations are a pure
function of the spec (no trial's result changes another's configuration), so every
algorithm gets the same kind of budget, a killed tuning sweep resumes by relaunching (the
trials are ordinary runs with stable run ids), and SLURM can run every trial at once. Why
a Latin hypercube rather than Sobol at these sizes: 15 points are too few for Sobol's
balance to reach the pairs. The top bits of some dimensions move in lock-step for every
scramble seed (in 8 dimensions, dimensions 1, 6 and 7, 0-based), so with `configs: 16`
two 4-option choices and a range's quartile take 4 of their 16 joint levels, and their
effects cannot be told apart (mujoco-tuned.yaml's V-MPO: topk_fraction, batch, passes).
Over 10 seeds, 15 points, quartile levels, the worst / median pair of a design reached
4 / 15 of 16 joint levels with Sobol at d = 8 and 10 (8 / 11.5 at d = 5), 9.1 / 11.9
with the Latin hypercube at d = 8 (10.2 / 12.2 at d = 5), 7.8 / 10.1 with independent
random draws. A Latin hypercube stratifies every marginal (each of a choice's k options
gets floor((n-1)/k) or ceil((n-1)/k) trials, each range's quarters their share), and
random-cd permutes its coordinates to lower the centered discrepancy, which scipy's
documentation says gives better space-filling robustness toward 2-D and 3-D
subprojections (0.1-0.3 s a draw).
`Tuning.design_warnings` (printed by `--dry-run` and before the tune phase launches) and
the report's design-coverage table (`analysis.tuning_design.design_coverage`) flag a pair whose
levels fix each other's at quartiles (aliased), or whose halves split each other's levels
into disjoint sets (confounded at halves: the same Sobol design of mujoco-tuned.yaml gives
PPO's lr lower half only passes 5 x 64 and 10 x 64, and V-MPO's eps_eta and lr halves
coincide on every trial), whichever sampler drew it.

Selection (`select`): a trial's score is the mean normalised score over the tuning envs
and seeds (suite reference pairs: `suites.normalise`). `final` (the default) takes each
run's last evaluation, the very statistic the headline reports, so selection optimises
what is compared; `auc` takes the mean of every evaluation (area under the learning
curve), which favours fast learners and is less noisy. A trial with a failed run is not
selectable. Ties go to the lower trial index (the defaults first).

Test phase: each tuned variant runs its selected configuration on the spec's `seeds`
(disjoint from the tuning seeds). An untuned variant of an algorithm with one tuned
variant (an ablation: `vmpo-no-topk: {algo: vmpo, topk_fraction: 1.0}`) runs that
variant's selected configuration with its own overrides on top (its one switch changed);
list it under `search` to tune it with its own budget instead. Any other untuned variant
runs as written and the report flags it (budget 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from algos.config import ConfigError
from analysis.tuning_design import aliased_groups, design_coverage
from analysis.tuning_values import best_of, edge_of
from rundir import stable_hash

TUNING_KEYS = ("configs", "seeds", "envs", "steps", "criterion", "sampler", "sampler_seed",
               "selected", "inherit", "search")
SAMPLERS = ("lhs", "sobol")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
CRITERIA = ("final", "auc")
TUNE_SUFFIX = "-tune"
TUNING_SEED_BASE = 1000
TRIAL_RE = re.compile(r"^(?P<variant>.+)\.c(?P<trial>\d{2,})$")


def trial_name(variant: str, trial: int) -> str:
    """The variant name of trial `trial` of `variant`: `vmpo.c03`."""
    return f"{variant}.c{trial:02d}"


def parse_trial(name: str) -> tuple[str, int] | None:
    """(variant, trial) of a trial's variant name, None for an ordinary variant."""
    m = TRIAL_RE.match(name)
    return (m["variant"], int(m["trial"])) if m else None


def _round(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


@dataclass(frozen=True)
class Dist:
    """One searched hyperparameter: `key` is a config field, or a label of a joint choice
    whose options are mappings of fields."""

    key: str
    kind: str
    args: tuple

    def value(self, u: float) -> dict[str, Any]:
        """The fields this dimension sets at u in [0, 1)."""
        u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
        if self.kind == "choice":
            opt = self.args[int(u * len(self.args))]
            return dict(opt) if isinstance(opt, dict) else {self.key: opt}
        lo, hi = self.args
        if self.kind == "uniform":
            return {self.key: _round(lo + u * (hi - lo))}
        if self.kind == "log_uniform":
            return {self.key: _round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))}
        if self.kind == "int":
            return {self.key: min(int(lo + math.floor(u * (hi - lo + 1))), hi)}
        # log_int: floor of log-uniform on [lo, hi + 1)
        x = math.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo)))
        return {self.key: min(max(int(math.floor(x)), lo), hi)}

    def fields(self) -> list[str]:
        if self.kind == "choice" and any(isinstance(o, dict) for o in self.args):
            return sorted({k for o in self.args for k in o})
        return [self.key]


@dataclass
class Tuning:
    configs: dict[str, int]            # tuned variant -> configurations (trial 0: defaults)
    seeds: list[int]
    envs: list[str]
    env_entry: dict[str, str]          # tuning env id -> the `tuning.envs` entry it came from
    steps: int | None
    criterion: str
    sampler_seed: int
    selected_path: Path
    inherit: dict[str, str]            # untuned variant -> tuned variant it takes values from
    search: dict[str, list[Dist]]      # tuned variant -> its dimensions, in spec order
    equal_budget: bool = True
    sampler: str = "lhs"               # lhs | sobol: how trials 1..n-1 are drawn

    def configurations(self, variant: str) -> list[dict[str, Any]]:
        """The variant's trials' overrides, [trial 0 = {} (defaults), trial 1, ...]."""
        dims = self.search[variant]
        n = self.configs[variant]
        out: list[dict[str, Any]] = [{}]
        if n <= 1 or not dims:
            return out[:n] if n >= 1 else []
        from scipy.stats import qmc

        seed = int(stable_hash([self.sampler_seed, variant]), 16) % 2**32
        if self.sampler == "sobol":
            sobol = qmc.Sobol(d=len(dims), scramble=True, seed=seed)
            m = max(0, math.ceil(math.log2(n - 1)))
            points = sobol.random_base2(m)[: n - 1]  # the first n-1 points of the sequence
        else:
            points = qmc.LatinHypercube(d=len(dims), optimization="random-cd",
                                        seed=seed).random(n - 1)
        for row in points:
            cfg: dict[str, Any] = {}
            for dim, u in zip(dims, row):
                cfg.update(dim.value(u))
            out.append(cfg)
        return out

    def coverage(self, variant: str):
        """`analysis.tuning_design.design_coverage` of the variant's trials: per pair of its
        searched dimensions, the joint levels its trials c01.. reach, aliased pairs flagged."""
        dims = {d.key: {d.kind: list(d.args)} for d in self.search[variant]}
        return design_coverage(dims, dict(enumerate(self.configurations(variant))))

    def record(self) -> dict[str, Any]:
        """What the tune sweep's manifest.json keeps of the design at its top level
        (`tuning`, sweeps.state.write_manifest; read by analysis.tuning.resolved_sampler):
        the resolved sampler and its seed, which a spec copy leaving them to their defaults
        does not say. The manifest is outside every run-id hash."""
        return {"sampler": self.sampler, "sampler_seed": self.sampler_seed}

    def design_warnings(self) -> list[str]:
        """One line per aliased pair, and per pair confounded at halves, of a tuned
        variant's design (`coverage`): said before any trial trains, since no analysis can
        tell such a pair's effects apart."""
        out = []
        for vname in self.search:
            cov = self.coverage(vname)
            fix = ("`sampler: lhs`, the default, stratifies every dimension and rarely aliases"
                   if self.sampler == "sobol" else "another `sampler_seed` or more `configs` "
                   "may break it") + "; a new design changes every trial's run id"
            for r in cov[cov["aliased"]].itertuples():
                out.append(f"tuning.search.{vname}: {r.a} and {r.b} are aliased in the {self.sampler} "
                           f"design: its {r.trials} trials reach {r.levels} of {r.possible} possible "
                           "joint levels and each one's level fixes the other's, so their effects "
                           f"cannot be told apart ({fix})")
            groups = aliased_groups(cov)
            if any(len(g) > 2 for g in groups):
                out.append(f"tuning.search.{vname}: aliased together: "
                           + "; ".join(" x ".join(g) for g in groups))
            for r in cov[cov["aliased_at"] == "halves"].itertuples():
                out.append(f"tuning.search.{vname}: {r.a} and {r.b} are confounded at halves in "
                           f"the {self.sampler} design ({r.split}, on all {r.trials} trials): cut "
                           f"at the middle of each range, their effects cannot be told apart ({fix})")
        return out


def warn_design(tuning: Tuning, args, err, tune=None, folder: Path | None = None) -> None:
    """`Tuning.design_warnings` as `warning:` lines, with the plan (--dry-run) or before
    the tune phase launches; not for --status, which spends nothing. tune, folder: the
    tune phase's spec (`tuning_spec`) and sweep folder: where its trials have run, each
    warning says so ("(its trials already ran)", or how many have), since it then comes
    after the compute it warns of."""
    if args.status:
        return
    warnings = tuning.design_warnings()
    note = ""
    if warnings and tune is not None and folder is not None:
        from sweeps.state import run_states

        states, _ = run_states(folder, tune)
        ran = sum(s.state in ("done", "failed") for s in states)
        note = (" (its trials already ran)" if states and ran == len(states) else
                f" ({ran} of {len(states)} trial runs already ran)" if ran else "")
    for w in warnings:
        print(f"warning: {w}{note}", file=err)


def _done_trial_runs(folder: Path) -> dict[str, tuple[str, str, int]]:
    """run id -> (variant, env, seed) of each done trial run (variant `<v>.cNN`) in the
    folder, read from the run directories (config.json, status.json); an unreadable one
    is skipped (`--status` reports it)."""
    import json

    from rundir import CONFIG, CorruptFile, RunDir

    out: dict[str, tuple[str, str, int]] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        try:
            cfg = json.loads((p / CONFIG).read_text())
            status = RunDir(p).read_status()
        except (OSError, ValueError, CorruptFile):
            continue
        if not isinstance(cfg, dict) or (status or {}).get("state") != "done":
            continue
        if isinstance(cfg.get("variant"), str) and parse_trial(cfg["variant"]):
            out[p.name] = (cfg["variant"], str(cfg.get("env")), int(cfg.get("seed", -1)))
    return out


def design_change(spec, tune, folder: Path) -> list[str]:
    """Why the tune phase must not launch into `folder` (empty: it may): `key: message`.

    A trial is named by its index (`vmpo.c03`), not its configuration, so a relaunch whose
    design differs from the one the folder's trials were drawn with would file two
    configurations under one trial name, and the report would average them. Two signs:
    (a) the folder's manifest.json records a `tuning` design (`Tuning.record`) other than
    the spec's; (b) a done trial run whose run id the spec lacks sits on a (trial, env,
    seed) cell whose spec run is not done, i.e. the spec would run that trial again with
    another configuration (a changed sampler, sampler_seed, search space, steps or base
    overrides). Raises CorruptFile for a damaged manifest.json."""
    from sweeps.state import read_manifest

    t = spec.tuning
    keep = ("restore the old value to go on with these trials, or give the spec a new `name` "
            "(or another --results folder) to tune afresh")
    out = []
    old = read_manifest(folder).get("tuning") if folder.is_dir() else None
    if isinstance(old, dict):
        new = t.record()
        for key in [k for k in new if k in old and old[k] != new[k]]:
            out.append(f"tuning.{key}: {folder}/manifest.json records the trials as drawn with "
                       f"{key} {old[key]!r}, this spec draws them with {key} {new[key]!r}: "
                       f"relaunching would put two designs under one trial name; valid: "
                       f"`tuning.{key}: {old[key]}` to go on with these trials, or a new `name` "
                       "(or another --results folder) to tune afresh with the new design")
    done = _done_trial_runs(folder)
    cell = {(r.variant, r.env, r.seed): r.run_id for r in tune.runs}
    stray = {rid: c for rid, c in done.items()
             if rid not in set(cell.values()) and c in cell and cell[c] not in done}
    if stray and not out:
        rid, (variant, env, seed) = next(iter(stray.items()))
        key, hint = "tuning.search", ""
        for other in (s for s in SAMPLERS if s != t.sampler):  # a spec from before `sampler`
            alt = tuning_spec(replace(spec, tuning=replace(t, sampler=other)))
            if set(stray) <= {r.run_id for r in alt.runs}:
                key, hint = "tuning.sampler", (f"`tuning.sampler: {other}` gives these trials "
                                               "their run ids again; ")
        out.append(f"{key}: {folder} holds {len(stray)} done trial run(s) whose run ids this "
                   f"spec does not have, on trials, envs and seeds it would run anew (e.g. "
                   f"{variant} on {env} seed {seed}: run {rid} done, this spec's run "
                   f"{cell[(variant, env, seed)]} not): the trials' configurations changed "
                   "(tuning.sampler, tuning.sampler_seed, tuning.search, tuning.steps or a tuned "
                   "variant's overrides), and the report would average two designs under one "
                   f"trial name; {hint}{keep}")
    return out


# -- parsing -------------------------------------------------------------------------------


def _fields_of(algo: str) -> list[str]:
    from algos.config import RunConfig, field_types
    from algos.train import algo_module

    return list(field_types(RunConfig)) + list(field_types(algo_module(algo).Config))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_dist(key: str, raw: Any, path: str, valid: list[str], errors) -> Dist | None:
    from sweeps.spec import _got, _unknown

    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DISTRIBUTIONS:
        errors.add(path, "expected one distribution: {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, "
                         "{int: [lo, hi]}, {log_int: [lo, hi]} or {choice: [a, b, ...]}, got "
                         + _got(raw))
        return None
    kind, args = next(iter(raw.items()))
    p = f"{path}.{kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            errors.add(p, f"expected a non-empty list of options, got {_got(args)}")
            return None
        joint = [isinstance(o, dict) for o in args]
        if any(joint) and not all(joint):
            errors.add(p, "expected every option a mapping of fields (a joint choice) or none")
            return None
        if all(joint):
            if key in valid:
                errors.add(path, f"{key} is a config field, so its options must be values; a "
                                 "joint choice (options that are mappings) needs a label that is "
                                 "not a field, e.g. `batch`")
                return None
            ok = True
            for i, o in enumerate(args):
                if not o:
                    errors.add(f"{p}[{i}]", "empty option: expected a mapping of config fields")
                    ok = False
                for k in o:
                    if k not in valid:
                        errors.add_error(_unknown(f"{p}[{i}]", k, valid))
                        ok = False
            return Dist(key, kind, tuple(args)) if ok else None
        if key not in valid:
            errors.add_error(_unknown(path.rsplit(".", 1)[0], key, valid))
            return None
        return Dist(key, kind, tuple(args))
    if key not in valid:
        errors.add_error(_unknown(path.rsplit(".", 1)[0], key, valid))
        return None
    if not isinstance(args, list) or len(args) != 2 or not all(_number(a) for a in args):
        errors.add(p, f"expected [lo, hi], two numbers, got {_got(args)}")
        return None
    lo, hi = args
    if kind in ("int", "log_int") and not all(float(a).is_integer() for a in args):
        errors.add(p, f"expected [lo, hi], two ints, got {args}")
        return None
    if not lo < hi:
        what = "empty" if lo == hi else "inverted"
        errors.add(p, f"{what} range [{lo}, {hi}]: expected lo < hi")
        return None
    if kind == "log_uniform" and lo <= 0:
        errors.add(p, f"a log-uniform range needs lo > 0, got [{lo}, {hi}]")
        return None
    if kind == "log_int" and lo < 1:
        errors.add(p, f"a log-int range needs lo >= 1, got [{lo}, {hi}]")
        return None
    if kind in ("int", "log_int"):
        lo, hi = int(lo), int(hi)
    return Dist(key, kind, (lo, hi))


def parse_tuning(raw: Any, variants: dict, test_seeds: list[int], source: str, errors,
                 max_runs: int = 5000) -> Tuning | None:
    """The checked `tuning:` section (None if absent or wrong; errors name their key)."""
    from sweeps.spec import NAME_RE, _got, _int, _mapping, _unknown, resolve_envs

    if raw is None:
        return None
    top = _mapping(raw, "tuning", errors, allow_none=False)
    if top is None:
        return None
    for k in top:
        if k not in TUNING_KEYS:
            errors.add_error(_unknown("tuning", k, TUNING_KEYS))

    # search
    search: dict[str, list[Dist]] = {}
    sm = _mapping(top.get("search"), "tuning.search", errors, allow_none=False)
    if top.get("search") is None:
        errors.add("tuning.search", "required: tuned variant -> hyperparameter -> distribution, "
                                    "e.g. search: {vmpo: {lr: {log_uniform: [1e-4, 1e-3]}}}")
    for vname, space in (sm or {}).items():
        p = f"tuning.search.{vname}"
        if vname not in variants:
            errors.add(p, f"unknown variant; valid: the spec's runs ({', '.join(variants)})")
            continue
        spm = _mapping(space, p, errors, allow_none=False)
        if spm is None:
            continue
        if not spm:
            errors.add(p, "empty search space: expected at least one hyperparameter")
            continue
        valid = _fields_of(variants[vname].algo)
        dims = []
        for key, d in spm.items():
            dist = _parse_dist(key, d, f"{p}.{key}", valid, errors)
            if dist is None:
                continue
            for f in dist.fields():
                if f in variants[vname].overrides:
                    errors.add(f"{p}.{key}", f"{f} is also set by runs.{vname}.{f}; a searched "
                                             "field is set by the search alone: remove one")
            dims.append(dist)
        seen: dict[str, str] = {}
        for dist in dims:
            for f in dist.fields():
                if f in seen:
                    errors.add(f"{p}.{dist.key}", f"{f} is searched twice (also by {p}.{seen[f]})")
                seen[f] = dist.key
        search[vname] = dims

    # configs
    configs: dict[str, int] = {}
    raw_c = top.get("configs", 16)
    if isinstance(raw_c, dict):
        for vname, n in raw_c.items():
            if vname not in search:
                errors.add(f"tuning.configs.{vname}", "not a tuned variant; valid: "
                                                      + ", ".join(search) if search else "none")
                continue
            v = _int(n, f"tuning.configs.{vname}", errors, 1, "a positive int (configurations)")
            if v is not None:
                configs[vname] = v
        missing = [v for v in search if v not in configs]
        if missing and not errors.items:
            errors.add("tuning.configs", f"no count for {', '.join(missing)}: give every tuned "
                                         "variant one, or one int for all")
    else:
        n = _int(raw_c, "tuning.configs", errors, 1, "a positive int (configurations per variant) "
                                                     "or a mapping variant -> int")
        if n is not None:
            configs = {v: n for v in search}
    equal = len(set(configs.values())) <= 1

    # seeds: disjoint from the test seeds
    seeds: list[int] = []
    raw_s = top.get("seeds")
    if raw_s is None:
        errors.add("tuning.seeds", "required: tuning seeds (a list, or a count n for "
                                   f"{TUNING_SEED_BASE}..{TUNING_SEED_BASE}+n-1), disjoint "
                                   "from the test seeds")
    elif isinstance(raw_s, list):
        if not raw_s:
            errors.add("tuning.seeds", "empty: expected at least one tuning seed")
        for i, s in enumerate(raw_s):
            v = _int(s, f"tuning.seeds[{i}]", errors, 0, "a seed (an int >= 0)")
            if v is not None and v not in seeds:
                seeds.append(v)
    else:
        n = _int(raw_s, "tuning.seeds", errors, 1, "a positive count or a list of seeds")
        if n is not None and n > max_runs:
            errors.add("tuning.seeds", f"{n:,} seeds alone exceed the cap of {max_runs:,} runs "
                                       "(max_runs); raise max_runs in the spec to allow it")
        elif n is not None:
            seeds = list(range(TUNING_SEED_BASE, TUNING_SEED_BASE + n))
    overlap = sorted(set(seeds) & set(test_seeds))
    if overlap:
        errors.add("tuning.seeds", f"seed(s) {', '.join(map(str, overlap))} are also test seeds "
                                   f"(seeds: {test_seeds}); selection must not see the seeds the "
                                   "results report: pick disjoint tuning seeds")

    # envs
    envs: list[str] = []
    env_entry: dict[str, str] = {}
    raw_e = top.get("envs")
    if isinstance(raw_e, str):
        raw_e = [raw_e]
    if not isinstance(raw_e, list) or not raw_e:
        errors.add("tuning.envs", f"required: a non-empty list of suites or env ids, got {_got(raw_e)}")
    else:
        resolve_envs(raw_e, "tuning.envs", errors, envs, env_entry)

    steps = None
    if top.get("steps") is not None:
        steps = _int(top["steps"], "tuning.steps", errors, 1, "a positive int (agent env steps per trial)")
    criterion = top.get("criterion", "final")
    if criterion not in CRITERIA:
        errors.add("tuning.criterion", f"unknown criterion {_got(criterion)}; valid: {', '.join(CRITERIA)}")
    sampler = top.get("sampler", "lhs")
    if sampler not in SAMPLERS:
        errors.add("tuning.sampler", f"unknown sampler {_got(sampler)}; valid: {', '.join(SAMPLERS)} "
                                     "(lhs: a Latin hypercube, the default; sobol: a scrambled Sobol "
                                     "sequence, as specs drew before the key existed)")
    sampler_seed = _int(top.get("sampler_seed", 0), "tuning.sampler_seed", errors, 0, "an int >= 0")

    default_sel = Path(source).with_suffix("").name + ".selected.yaml"
    sel = top.get("selected", default_sel)
    if not isinstance(sel, str) or not sel.endswith((".yaml", ".yml")):
        errors.add("tuning.selected", f"expected a .yaml path (relative to the spec), got {_got(sel)}")
        sel = default_sel
    selected_path = (Path(source).parent / sel) if not Path(sel).is_absolute() else Path(sel)

    # inherit: explicit, then the default rule
    inherit: dict[str, str] = {}
    im = _mapping(top.get("inherit"), "tuning.inherit", errors) or {}
    for vname, src in im.items():
        p = f"tuning.inherit.{vname}"
        if vname not in variants:
            errors.add(p, f"unknown variant; valid: {', '.join(variants)}")
        elif vname in search:
            errors.add(p, "a tuned variant takes its own selection; remove it from inherit or search")
        elif not isinstance(src, str) or src not in search:
            errors.add(p, f"expected a tuned variant ({', '.join(search) or 'none'}), got {_got(src)}")
        elif variants[src].algo != variants[vname].algo:
            errors.add(p, f"{src} is {variants[src].algo}, {vname} is {variants[vname].algo}: a "
                          "variant inherits only from a variant of its own algorithm")
        else:
            inherit[vname] = src
    for vname, v in variants.items():
        if vname in search or vname in inherit:
            continue
        same = [s for s in search if variants[s].algo == v.algo]
        if len(same) == 1:
            inherit[vname] = same[0]
    for vname in variants:
        if not NAME_RE.match(trial_name(vname, 0)) or parse_trial(vname):
            errors.add(f"runs.{vname}", "a variant name of a tuned spec must not end in .cNN "
                                        "(trials are named so)")
    n_trials = sum(configs.values()) * len(envs) * len(seeds)
    if n_trials > max_runs:
        errors.add("max_runs", f"the tuning grid has {n_trials:,} runs ({sum(configs.values())} "
                               f"configuration(s) x {len(envs)} env(s) x {len(seeds)} seed(s)), over "
                               f"the cap of {max_runs:,}; raise max_runs in the spec to launch it")
    if errors.items:
        return None
    return Tuning(configs, seeds, envs, env_entry, steps, criterion, sampler_seed or 0,
                  selected_path, inherit, search, equal, sampler)


# -- the phases as specs ---------------------------------------------------------------------


def tuning_spec(spec):
    """The tune phase as an ordinary Spec: sweep `<name>-tune`, the tuned variants'
    trials (`<variant>.cNN`) on the tuning envs and seeds. Raises SpecError."""
    from sweeps.spec import SpecError, Variant, _Errors, _expand

    t = spec.tuning
    variants: dict[str, Variant] = {}
    for vname, dims in t.search.items():
        base = spec.variants[vname]
        for i, cfg in enumerate(t.configurations(vname)):
            variants[trial_name(vname, i)] = Variant(
                trial_name(vname, i), base.algo, {**base.overrides, **cfg}, t.steps or base.steps)
    tuned = replace(spec, name=spec.name + TUNE_SUFFIX, seeds=list(t.seeds), envs=list(t.envs),
                    env_entry=dict(t.env_entry), variants=variants, runs=[], selection=None,
                    phase="tune")
    errors = _Errors()
    tuned.runs = _expand(tuned, errors)
    if errors.items:
        raise SpecError([_trial_error(e, t) for e in errors.items])
    return tuned


def _trial_error(err: ConfigError, t: Tuning) -> ConfigError:
    """Point an error in a trial's overrides (`runs.vmpo.c03.lr`) at the search key that
    drew the value, naming the trial."""
    m = re.match(r"^runs\.(.+\.c\d{2,})\.([A-Za-z_]\w*)(.*)$", err.path or "")
    parsed = parse_trial(m[1]) if m else None
    if parsed is None:
        return err
    vname, trial = parsed
    for d in t.search.get(vname, []):
        if m[2] in d.fields():
            return ConfigError(f"tuning.search.{vname}.{d.key}", f"trial c{trial:02d} sets {m[2]}"
                                                                 f"{m[3]}: {err.message}")
    return err


def test_variants(spec, selection: dict[str, dict[str, Any]]) -> dict:
    """The spec's variants with the selected values merged: a tuned variant's selection
    over its overrides (they never share a key); an inheriting variant's own overrides over
    its source's selection (its switch wins)."""
    from sweeps.spec import Variant

    t = spec.tuning
    out = {}
    for vname, v in spec.variants.items():
        if vname in t.search:
            over = {**v.overrides, **selection[vname]}
        elif vname in t.inherit:
            over = {**selection[t.inherit[vname]], **v.overrides}
        else:
            over = dict(v.overrides)
        out[vname] = Variant(vname, v.algo, over, v.steps)
    return out


def read_selection(tuning: Tuning) -> tuple[dict[str, dict[str, Any]] | None, list[ConfigError]]:
    """The selection fragment's `runs:` (variant -> selected values), None if the file is
    absent; errors name the file and key (a variant not tuned, a key not searched)."""
    from sweeps.spec import SpecError, load_yaml

    path = tuning.selected_path
    if not path.is_file():
        return None, []
    src = str(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), src)
    except SpecError as e:
        return None, list(e.errors)
    except (OSError, UnicodeDecodeError) as e:
        return None, [ConfigError("", f"{src}: cannot read: {e}")]
    errs: list[ConfigError] = []
    runs = raw.get("runs") if isinstance(raw, dict) else None
    if not isinstance(runs, dict):
        return None, [ConfigError("", f"{src}: expected a mapping with `runs:` (variant -> selected "
                                      "values), as `--phase select` writes it")]
    out: dict[str, dict[str, Any]] = {}
    for vname in tuning.search:
        if vname not in runs:
            errs.append(ConfigError(f"{src}: runs.{vname}", "missing: every tuned variant needs its "
                                                           "selected values (rerun --phase select)"))
    for vname, values in runs.items():
        if vname not in tuning.search:
            errs.append(ConfigError(f"{src}: runs.{vname}", "not a tuned variant of this spec; valid: "
                                                           + ", ".join(tuning.search)))
            continue
        if values is None:
            values = {}
        if not isinstance(values, dict):
            errs.append(ConfigError(f"{src}: runs.{vname}", "expected a mapping of selected values"))
            continue
        searched = {f for d in tuning.search[vname] for f in d.fields()}
        for k in values:
            if k not in searched:
                errs.append(ConfigError(f"{src}: runs.{vname}.{k}", "not a searched hyperparameter "
                                                                   f"of {vname}; valid: {', '.join(sorted(searched))}"))
        out[vname] = dict(values)
    return (out if not errs else None), errs


# -- selection ----------------------------------------------------------------------------------


@dataclass
class Trial:
    variant: str
    trial: int
    values: dict[str, Any]
    runs: int = 0
    failed: int = 0
    score: float = float("nan")           # the criterion (mean over envs x seeds)
    per_env: dict[str, float] = field(default_factory=dict)


def score_trials(spec, runs_table, curve) -> dict[str, list[Trial]]:
    """Per tuned variant, its trials with their criterion, from the tune sweep's runs.

    runs_table: analysis.load.Runs.table (rows of the `<name>-tune` sweep); curve(i) ->
    (steps, values) of row i. Raises ValueError naming what is missing."""
    import numpy as np

    from analysis.scores import by_pair, curve_score, normalise

    t = spec.tuning
    out: dict[str, list[Trial]] = {}
    for vname in t.search:
        trials = [Trial(vname, i, cfg) for i, cfg in enumerate(t.configurations(vname))]
        by_name = {trial_name(vname, i): tr for i, tr in enumerate(trials)}
        acc: dict[int, dict[str, list[float]]] = {i: {} for i in range(len(trials))}
        for i, row in runs_table.iterrows():
            tr = by_name.get(row["variant"])
            if tr is None or row["env"] not in t.envs or int(row["seed"]) not in t.seeds:
                continue
            tr.runs += 1
            if row["state"] == "failed":
                tr.failed += 1
                continue
            steps, values = curve(i)
            if len(values) == 0:
                continue
            values = np.asarray(values, dtype=np.float64)
            pair = spec.references.get(row["env"])  # else the suite's (validated: one exists)
            norm = (by_pair(values, pair["random"], pair["reference"]) if pair
                    else normalise(row["env"], values))
            s = curve_score(norm, t.criterion)
            acc[tr.trial].setdefault(row["env"], []).append(s)
        for tr in trials:
            tr.per_env = {e: float(np.mean(v)) for e, v in acc[tr.trial].items()}
            cells = [x for v in acc[tr.trial].values() for x in v]
            if not tr.failed and len(cells) == len(t.envs) * len(t.seeds):
                tr.score = float(np.mean(cells))
        out[vname] = trials
    return out


def choose(trials: list[Trial]) -> Trial | None:
    """The best trial by score; ties to the lower index (the defaults first): the one
    rule, `analysis.tuning_values.best_of`, which the report's tuning section uses too."""
    best = best_of((tr.trial, tr.score) for tr in trials)
    return next((tr for tr in trials if tr.trial == best), None)


def _fmt(v: Any) -> str:
    import yaml

    return yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("\n...")


def selection_text(spec, scored: dict[str, list[Trial]], chosen: dict[str, Trial],
                   defaults: dict[str, dict[str, Any]], provenance: str) -> str:
    """The selection fragment: `runs:` with each tuned variant's selected values (the
    searched fields only), each commented with its default; readable, diffable, committable."""
    t = spec.tuning
    lines = [
        f"# Selected configurations of spec {spec.name!r} ({Path(spec.source).name}), written by",
        "#   python sweeps/launch.py SPEC --phase select",
        f"# Criterion: {t.criterion} (mean normalised score over tuning envs "
        f"{', '.join(t.envs)} x seeds {', '.join(map(str, t.seeds))}).",
        f"# {provenance}",
        "# Each value is commented with the variant's default; trial c00 is the defaults.",
        "# The test phase (--phase test) runs these on the spec's seeds; commit this file.",
        "runs:",
    ]
    for vname, trials in scored.items():
        tr = chosen[vname]
        ok = sorted((x.score for x in trials if math.isfinite(x.score)))
        lines.append(f"  # {vname}: trial c{tr.trial:02d} of {len(trials)}, score {tr.score:.4g} "
                     f"(defaults c00: {trials[0].score:.4g}; best of {len(ok)} scored)")
        fields_ = [f for d in t.search[vname] for f in d.fields()]
        if not tr.values:
            lines.append(f"  {vname}: {{}}  # the defaults")
            continue
        lines.append(f"  {vname}:")
        ranged = {d.key: d for d in t.search[vname] if d.kind != "choice"}
        for f in fields_:
            if f in tr.values:
                note = ""
                if f in ranged and (edge := edge_of(tr.values[f], ranged[f].kind, *ranged[f].args)):
                    lo, hi = ranged[f].args
                    note = f"; at the {edge} of {ranged[f].kind} [{lo:g}, {hi:g}]: consider a wider range"
                lines.append(f"    {f}: {_fmt(tr.values[f])}  # default: "
                             f"{_fmt(defaults[vname].get(f))}{note}")
    return "\n".join(lines) + "\n"


def variant_defaults(spec, vname: str) -> dict[str, Any]:
    """The resolved config of a tuned variant as the spec writes it (its trial c00), on the
    first tuning env: what the selected values are compared with."""
    from algos.train import RunSpec, resolve

    from sweeps.spec import _budget_key

    t = spec.tuning
    v = spec.variants[vname]
    env = t.envs[0]
    steps = t.steps or v.steps or spec.budgets[_budget_key(env, t.env_entry[env], spec.budgets)].steps
    return resolve(RunSpec(v.algo, env, t.seeds[0], steps, dict(v.overrides), vname, spec.name))["config"]
