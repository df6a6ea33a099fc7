"""The sweep spec: schema, validation and expansion into runs.

A spec is one YAML file:

    name: quickstart              # the sweep: runs go to <results>/<name>/<run_id>/
    description: free text        # optional
    seeds: 3                      # a count (seeds 0..n-1) or a list of seeds, e.g. [0, 1, 7]
    envs: [classic]               # suite names (suites.SUITES) and/or env ids
    budgets:                      # per suite family (classic|mujoco|atari), suite name or env id
      classic:
        steps: 50_000             # required: the budget in agent env steps
        eval_every: 10_000        # optional: evaluation interval (0: only at the end)
        eval_episodes: 10         # optional: episodes per evaluation
        checkpoint_every: 10_000  # optional: checkpoint interval (what a preemption loses)
        slurm: {time: 30}         # optional: SLURM resources for this suite's runs
    runs:                         # the variants: name -> algorithm + config overrides
      vmpo: {algo: vmpo}
      vmpo-no-topk: {algo: vmpo, topk_fraction: 1.0}
      ppo: {}                     # algo defaults to the variant's name
      mpo: {steps: 300_000}       # optional: this variant's budget on every env
    overrides: {num_envs: 8}      # optional: overrides for every run
    references:                   # optional: a normalisation pair for an env without one
      MyEnv-v0: {random: 0.0, reference: 100.0, source: "where both numbers come from"}
    slurm:                        # optional: SLURM resources (defaults below)
      partition: null             # null: the cluster's default partition
      time: 240                   # time limit per array task: minutes, or "H:MM:SS", "D-HH:MM:SS"
      cpus_per_task: 1
      gpus_per_task: 0
      mem_gb: 4                   # null: the cluster's default
      array_parallelism: 256      # at most this many array tasks run at once
      runs_per_task: 1            # >1: that many runs share one array task, one after another
      max_requeues: 10            # timeouts a task may be requeued after (preemptions are free)
      signal_delay_s: 90          # USR2 this long before the time limit
      sbatch: {}                  # extra sbatch options, e.g. {account: rl, qos: normal}
      setup: []                   # shell lines run before the job, e.g. ["module load cuda"]
    local:
      parallelism: auto           # runs at once on the local executor; auto: one per core

Overrides are fields of the algorithm's Config (`algos/<algo>.py`) or of the run
(`algos.config.RunConfig`: num_envs, eval_every, ...); for a key set in several places,
`runs.<variant>` wins over `budgets.<suite>`, which wins over `overrides`. A budget
applies to an env when its key is the env id, else the suite name the env was listed
under in `envs`, else the env's suite family (`suites.suite_of`).

`references` gives (random, reference, source) for envs of the grid or of `tuning.envs`
that have no pair in `suites` (any Gymnasium id outside the named suites; MinAtar; a
tuning env must have a pair, its suite's or this one, as selection averages normalised
scores over the tuning envs): each run of that env
records it in its config.json under "reference" (runs without one keep their run ids),
and the report normalises with it. An env of a named suite with its own pair is an error.

Numbers follow YAML 1.2: `1e6` and `3e-4` are numbers (PyYAML alone reads them as
strings), `1_000_000` is an int, and `4:00:00` is a string (not a base-60 int).
Duplicate keys are errors.

Validation happens before anything is launched or written: unknown keys, algorithms,
config fields, suites or envs, wrong types, empty grids. Each error names its key path
and, where there are any, the valid choices, e.g.

    runs.vmpo-no-topk.topk_fraction: expected a float, got "half"

Every run is resolved by `algos.train.resolve`, whose `run_id` (a stable hash of the
resolved config) names its directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from algos.config import ConfigError
from rundir.yaml12 import load as load_yaml12

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
TOP_KEYS = ("name", "description", "seeds", "envs", "budgets", "runs", "overrides", "slurm", "local",
            "tuning", "max_runs", "references")
# A grid larger than this is refused unless the spec raises `max_runs`: `seeds: 10000000`
# would otherwise take minutes and gigabytes to expand before anything is checked.
MAX_RUNS = 5000
BUDGET_KEYS = ("steps", "eval_every", "eval_episodes", "checkpoint_every", "slurm")
LOCAL_KEYS = ("parallelism",)


class SpecError(ValueError):
    """Errors in a spec, each a ConfigError naming its key path."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# -- YAML -------------------------------------------------------------------------

def load_yaml(text: str, source: str = "spec") -> Any:
    """rundir.yaml12.load (YAML 1.2 numbers, no duplicate keys); SpecError naming
    `source` and the line on invalid YAML."""
    try:
        return load_yaml12(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError([ConfigError("", f"{source}: invalid YAML{where}: {problem}")]) from None


# -- the parsed spec ----------------------------------------------------------------


@dataclass(frozen=True)
class SlurmResources:
    """What one array task asks SLURM for."""

    partition: str | None = None
    time: int = 240
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem_gb: float | None = 4
    array_parallelism: int = 256
    runs_per_task: int = 1
    max_requeues: int = 10
    signal_delay_s: int = 90
    sbatch: tuple[tuple[str, Any], ...] = ()
    setup: tuple[str, ...] = ()


@dataclass
class Budget:
    key: str
    steps: int
    run_overrides: dict[str, Any]        # eval_every, eval_episodes, checkpoint_every
    slurm: dict[str, Any]                # SlurmResources fields for this budget's runs


@dataclass
class Variant:
    name: str
    algo: str
    overrides: dict[str, Any]
    steps: int | None = None  # this variant's budget on every env, instead of budgets.<key>.steps


@dataclass
class Run:
    """One run of the grid: variant x env x seed, with its stable run_id."""

    run_id: str
    variant: str
    algo: str
    env: str
    suite: str
    seed: int
    steps: int
    overrides: dict[str, Any]
    budget: str
    slurm: SlurmResources = field(default_factory=SlurmResources)
    reference: dict[str, Any] | None = None  # the spec's `references.<env>` pair, if any

    def run_spec(self, sweep: str):
        from algos.train import RunSpec

        return RunSpec(algo=self.algo, env=self.env, seed=self.seed, steps=self.steps,
                       overrides=dict(self.overrides), variant=self.variant, sweep=sweep,
                       reference=self.reference)

    def label(self) -> str:
        return f"{self.variant} {self.env} seed {self.seed} ({self.run_id})"

    def task(self, sweep: str, run_dir: str | os.PathLike) -> dict[str, Any]:
        """What the job needs to train this run (JSON-able)."""
        task = {"algo": self.algo, "env": self.env, "seed": self.seed, "steps": self.steps,
                "overrides": dict(self.overrides), "variant": self.variant, "sweep": sweep,
                "run_id": self.run_id, "run_dir": str(run_dir)}
        if self.reference is not None:
            task["reference"] = dict(self.reference)
        return task


@dataclass
class Spec:
    name: str
    description: str
    seeds: list[int]
    envs: list[str]
    env_entry: dict[str, str]            # env id -> the `envs` entry it came from
    budgets: dict[str, Budget]
    variants: dict[str, Variant]
    overrides: dict[str, Any]
    slurm: SlurmResources
    local_parallelism: int | None        # None: one per core
    runs: list[Run]
    text: str                            # the spec as written
    source: str                          # where it was read from
    tuning: Any = None                   # sweeps.tuning.Tuning, or None (no `tuning:` section)
    selection: dict[str, dict[str, Any]] | None = None  # tuned variant -> selected values
    phase: str = "test"                  # "tune": the trials (sweeps.tuning.tuning_spec)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)  # env -> pair

    def budget_for(self, env: str) -> Budget:
        return self.budgets[_budget_key(env, self.env_entry[env], self.budgets)]


# -- validation helpers --------------------------------------------------------------


def _got(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class _Errors:
    def __init__(self) -> None:
        self.items: list[ConfigError] = []
        self._seen: set[str] = set()

    def add(self, path: str, message: str) -> None:
        self.add_error(ConfigError(path, message))

    def add_error(self, err: ConfigError) -> None:
        if str(err) not in self._seen:
            self._seen.add(str(err))
            self.items.append(err)


def _mapping(value: Any, path: str, errors: _Errors, allow_none: bool = True) -> dict | None:
    if value is None and allow_none:
        return {}
    if not isinstance(value, dict):
        errors.add(path, f"expected a mapping, got {_got(value)}")
        return None
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        errors.add(path, f"keys must be strings, got {bad[0]!r}")
        return None
    return value


def _unknown(path: str, key: str, valid) -> ConfigError:
    from algos.config import unknown_key

    return unknown_key(path, key, list(valid))


def _int(value: Any, path: str, errors: _Errors, minimum: int | None = None,
         what: str = "an int") -> int | None:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, f"expected {what}, got {_got(value)}")
        return None
    if minimum is not None and value < minimum:
        errors.add(path, f"expected {what}, got {value}")
        return None
    return value


def parse_time(value: Any) -> int | None:
    """A SLURM time limit in whole minutes: an int (minutes) or "MM", "MM:SS", "H:MM:SS",
    "D-HH", "D-HH:MM", "D-HH:MM:SS" (seconds round up). None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not m:
        return None
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        h, mi, s = int(a), int(b or 0), int(c or 0)
        total = int(days) * 86400 + h * 3600 + mi * 60 + s
    elif c is not None:   # H:MM:SS
        total = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:   # MM:SS
        total = int(a) * 60 + int(b)
    else:                 # MM
        total = int(a) * 60
    minutes = -(-total // 60)
    return minutes if minutes > 0 else None


_SLURM_DOC = {
    "partition": "a string or null",
    "time": 'minutes (an int) or a SLURM time such as "4:00:00" or "1-12:00:00"',
    "cpus_per_task": "a positive int",
    "gpus_per_task": "an int >= 0",
    "mem_gb": "a positive number or null",
    "array_parallelism": "a positive int",
    "runs_per_task": "a positive int",
    "max_requeues": "an int >= 0",
    "signal_delay_s": "an int >= 0",
    "sbatch": "a mapping of sbatch options to strings, numbers or booleans",
    "setup": "a list of shell lines",
}


def _slurm_fields(raw: Any, path: str, errors: _Errors) -> dict[str, Any]:
    """Checked SlurmResources fields from a `slurm:` mapping."""
    m = _mapping(raw, path, errors)
    if m is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in m.items():
        p = _join(path, key)
        if key not in _SLURM_DOC:
            errors.add_error(_unknown(path, key, _SLURM_DOC))
            continue
        bad = False
        if key == "partition":
            bad = value is not None and not (isinstance(value, str) and value)
        elif key == "time":
            value = parse_time(value)
            bad = value is None
        elif key in ("cpus_per_task", "array_parallelism", "runs_per_task"):
            bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
        elif key in ("gpus_per_task", "max_requeues", "signal_delay_s"):
            bad = isinstance(value, bool) or not isinstance(value, int) or value < 0
        elif key == "mem_gb":
            bad = value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                         or value <= 0)
        elif key == "sbatch":
            bad = not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items())
            if not bad:
                value = tuple(sorted(value.items()))
        elif key == "setup":
            bad = not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            if not bad:
                value = tuple(value)
        if bad:
            errors.add(p, f"expected {_SLURM_DOC[key]}, got {_got(m[key])}")
        else:
            out[key] = value
    return out


def _budget_key(env: str, entry: str, budgets: dict[str, Any]) -> str | None:
    import suites

    for key in (env, entry, suites.suite_of(env)):
        if key in budgets:
            return key
    return None


# -- loading -------------------------------------------------------------------------


def resolve_spec_path(name: str | os.PathLike, cwd: str | os.PathLike | None = None) -> Path:
    """A spec path as given; a bare name (no folder) is looked for in the current
    directory, then in the project's sweeps/ folder, with or without `.yaml`."""
    p = Path(name)
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    candidates = [p if p.is_absolute() else cwd / p]
    if len(p.parts) == 1:
        candidates.append(Path(__file__).resolve().parent / p)
    tried = []
    for c in candidates:
        for q in (c, c.with_name(c.name + ".yaml")) if c.suffix not in (".yaml", ".yml") else (c,):
            tried.append(q)
            if q.is_file():
                return q
    raise FileNotFoundError(f"no spec {str(name)!r} (looked for {', '.join(str(t) for t in tried)})")


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and validate a spec file; raises SpecError listing every error found."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError([ConfigError("", f"{path}: not UTF-8 text (byte {e.start}); expected a "
                                         "YAML spec")]) from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "spec") -> Spec:
    raw = load_yaml(text, source)
    errors = _Errors()
    spec = _parse(raw, errors, text, source)
    if errors.items:
        raise SpecError(errors.items)
    assert spec is not None
    return spec


def _parse(raw: Any, errors: _Errors, text: str, source: str) -> Spec | None:
    import suites
    from algos.train import ALGOS

    top = _mapping(raw, "", errors, allow_none=False)
    if top is None:
        errors.items[-1] = ConfigError("", f"{source}: expected a mapping of {', '.join(TOP_KEYS)}")
        return None
    for key in top:
        if key not in TOP_KEYS:
            errors.add_error(_unknown("", key, TOP_KEYS))

    # name
    name = top.get("name")
    if name is None:
        errors.add("name", "required: the sweep's name (its folder under the results folder)")
    elif not isinstance(name, str) or not NAME_RE.match(name):
        errors.add("name", f"expected a name of letters, digits and ._+- (a folder name), got {_got(name)}")
    description = top.get("description") or ""
    if not isinstance(description, str):
        errors.add("description", f"expected a string, got {_got(description)}")
        description = ""

    max_runs = MAX_RUNS
    if "max_runs" in top:
        max_runs = _int(top["max_runs"], "max_runs", errors, 1, "a positive int (the largest grid "
                        "this spec may expand to)") or MAX_RUNS

    # seeds
    seeds: list[int] = []
    raw_seeds = top.get("seeds")
    if raw_seeds is None:
        errors.add("seeds", "required: a count (seeds 0..n-1) or a list of seeds")
    elif isinstance(raw_seeds, list):
        if not raw_seeds:
            errors.add("seeds", "empty grid: expected at least one seed")
        for i, s in enumerate(raw_seeds):
            v = _int(s, f"seeds[{i}]", errors, 0, "a seed (an int >= 0)")
            if v is not None:
                if v in seeds:
                    errors.add(f"seeds[{i}]", f"seed {v} is listed twice")
                else:
                    seeds.append(v)
    else:
        n = _int(raw_seeds, "seeds", errors, None, "a count or a list of seeds")
        if n is not None:
            if n < 1:
                errors.add("seeds", f"empty grid: expected a positive count or a list of seeds, got {n}")
            elif n > max_runs:
                errors.add("seeds", f"{n:,} seeds alone exceed the cap of {max_runs:,} runs "
                                    "(max_runs); raise max_runs in the spec to allow it")
                n = 0
            seeds = list(range(max(n, 0)))

    # envs
    envs: list[str] = []
    env_entry: dict[str, str] = {}
    raw_envs = top.get("envs")
    if isinstance(raw_envs, str):
        raw_envs = [raw_envs]
    if raw_envs is None:
        errors.add("envs", f"required: suite names ({', '.join(suites.SUITES)}) or env ids")
    elif not isinstance(raw_envs, list):
        errors.add("envs", f"expected a list of suite names or env ids, got {_got(raw_envs)}")
    else:
        if not raw_envs:
            errors.add("envs", f"empty grid: expected at least one suite ({', '.join(suites.SUITES)}) or env id")
        resolve_envs(raw_envs, "envs", errors, envs, env_entry)

    # budgets
    budgets: dict[str, Budget] = {}
    raw_budgets = _mapping(top.get("budgets"), "budgets", errors)
    if raw_budgets is not None and not raw_budgets and top.get("budgets") is None:
        errors.add("budgets", "required: env steps per suite, e.g. budgets: {classic: {steps: 100000}}")
    from suites.anyenv import FAMILIES

    for key, b in (raw_budgets or {}).items():
        p = _join("budgets", key)
        if not _is_suite_or_env(key):
            families = sorted({suites.suite_of(e) for ids in suites.SUITES.values() for e in ids})
            families += [f"{f} (any other Gymnasium id)" for f in FAMILIES]
            errors.add(p, f"unknown suite or env; valid: a suite family ({', '.join(families)}), "
                          f"a suite ({', '.join(suites.SUITES)}) or an env id")
            continue
        bm = _mapping(b, p, errors, allow_none=False)
        if bm is None:
            continue
        for k in bm:
            if k not in BUDGET_KEYS:
                errors.add_error(_unknown(p, k, BUDGET_KEYS))
        steps = bm.get("steps")
        if steps is None:
            errors.add(_join(p, "steps"), "required: the budget in agent env steps")
        else:
            steps = _int(steps, _join(p, "steps"), errors, 1, "a positive int (agent env steps)")
        run_over = {k: bm[k] for k in ("eval_every", "eval_episodes", "checkpoint_every") if k in bm}
        slurm_over = _slurm_fields(bm.get("slurm"), _join(p, "slurm"), errors)
        if steps is not None:
            budgets[key] = Budget(key, steps, run_over, slurm_over)

    if envs and raw_budgets is not None:
        for env in envs:
            if _budget_key(env, env_entry[env], raw_budgets) is None:
                fam = suites.suite_of(env)
                keys = [fam] + ([env_entry[env]] if env_entry[env] not in (env, fam) else []) + [env]
                errors.add("budgets", f"no budget for {env} (suite {fam}); add one of "
                                      + ", ".join(f"budgets.{k}" for k in keys))

    # runs (variants)
    variants: dict[str, Variant] = {}
    raw_runs = top.get("runs")
    if raw_runs is None:
        errors.add("runs", "required: named variants, each an algorithm plus config overrides")
    else:
        rm = _mapping(raw_runs, "runs", errors, allow_none=False)
        if rm is not None and not rm:
            errors.add("runs", "empty grid: expected at least one variant")
        for vname, v in (rm or {}).items():
            p = _join("runs", vname)
            if not NAME_RE.match(vname):
                errors.add(p, "a variant name is letters, digits and ._+- (it names the variant in reports)")
                continue
            vm = _mapping(v, p, errors)
            if vm is None:
                continue
            algo = vm.get("algo", vname if vname in ALGOS else None)
            if algo is None:
                errors.add(_join(p, "algo"), f"required (the variant's name is no algorithm); valid: {', '.join(ALGOS)}")
                continue
            if not isinstance(algo, str) or algo not in ALGOS:
                errors.add(_join(p, "algo"), f"unknown algorithm {_got(algo)}; valid: {', '.join(ALGOS)}")
                continue
            steps = None
            if "steps" in vm:
                steps = _int(vm["steps"], _join(p, "steps"), errors, 1,
                             "a positive int (agent env steps; this variant's budget on every env)")
                if steps is None:
                    continue
            variants[vname] = Variant(vname, algo, {k: x for k, x in vm.items()
                                                    if k not in ("algo", "steps")}, steps)

    overrides = _mapping(top.get("overrides"), "overrides", errors) or {}
    slurm = SlurmResources(**_slurm_fields(top.get("slurm"), "slurm", errors))

    local_parallelism = None
    lm = _mapping(top.get("local"), "local", errors) or {}
    for k in lm:
        if k not in LOCAL_KEYS:
            errors.add_error(_unknown("local", k, LOCAL_KEYS))
    par = lm.get("parallelism", "auto")
    if par != "auto":
        local_parallelism = _int(par, "local.parallelism", errors, 1, 'a positive int or "auto"')

    from sweeps import tuning as tuning_

    n_runs = len(variants) * len(envs) * len(seeds)
    if n_runs > max_runs:
        errors.add("max_runs", f"the grid has {n_runs:,} runs ({len(variants)} variant(s) x "
                               f"{len(envs)} env(s) x {len(seeds)} seed(s)), over the cap of "
                               f"{max_runs:,}; raise max_runs in the spec to launch it")
    tuning = tuning_.parse_tuning(top.get("tuning"), variants, seeds, source, errors, max_runs)
    if tuning is not None and raw_budgets is not None:
        for env in tuning.envs:
            if _budget_key(env, tuning.env_entry[env], raw_budgets) is None:
                errors.add("budgets", f"no budget for tuning env {env} (suite {suites.suite_of(env)}); "
                                      f"add budgets.{suites.suite_of(env)} or budgets.{env}")

    references = _references(top.get("references"),
                             envs + [e for e in (tuning.envs if tuning else []) if e not in envs],
                             errors)
    if tuning is not None:
        _require_pairs(tuning.envs, references, errors)

    if errors.items:
        return None

    spec = Spec(name=name, description=description, seeds=seeds, envs=envs, env_entry=env_entry,
                budgets=budgets, variants=variants, overrides=overrides, slurm=slurm,
                local_parallelism=local_parallelism, runs=[], text=text, source=source,
                tuning=tuning, references=references)
    if tuning is None:
        spec.runs = _expand(spec, errors)
        return spec if not errors.items else None
    # A tuned spec: its trials must resolve (a sampled value of the wrong type is an error
    # now, not in the middle of the sweep); its test runs exist once a selection does.
    try:
        tuning_.tuning_spec(spec)
    except SpecError as e:
        for err in e.errors:
            errors.add_error(err)
        return None
    selection, sel_errors = tuning_.read_selection(tuning)
    for err in sel_errors:
        errors.add_error(err)
    if selection is not None:
        spec.selection = selection
        spec.runs = _expand(spec, errors, tuning_.test_variants(spec, selection))
    return spec if not errors.items else None


REFERENCE_KEYS = ("random", "reference", "source")


def _require_pairs(tuning_envs: list[str], references: dict, errors: _Errors) -> None:
    """Every tuning env needs a reference pair (its suite's or the spec's `references:`):
    the selection criterion averages normalised scores over the tuning envs, and raw
    returns of two envs do not average. Checked here, before any trial is trained."""
    import suites

    for env in tuning_envs:
        if env in references:
            continue
        try:
            suites.reference(env)
        except ValueError:
            errors.add("tuning.envs", f"{env} has no reference pair: selection averages "
                                      "normalised scores over the tuning envs; give it one in "
                                      f"`references: {{{env}: {{random, reference, source}}}}` "
                                      "or tune on envs that have one")


def _references(raw: Any, envs: list[str], errors: _Errors) -> dict[str, dict[str, Any]]:
    """`references: {env: {random, reference, source}}`, checked: numbers (finite, apart),
    a non-empty source, envs of the grid that have no pair of their own in `suites`."""
    import math

    import suites

    out: dict[str, dict[str, Any]] = {}
    top = _mapping(raw, "references", errors)
    for env, pair in (top or {}).items():
        p = _join("references", str(env))
        if env not in envs:
            errors.add(p, f"not an env of this spec's grid or tuning envs; envs: "
                          f"{', '.join(envs) or 'none'}")
            continue
        try:
            own = suites.reference(env)
        except ValueError:
            own = None
        if own is not None:
            errors.add(p, f"{env} has its own reference pair (random {own.random:g}, reference "
                          f"{own.reference:g}: {own.source}); `references:` is for envs without one")
            continue
        m = _mapping(pair, p, errors, allow_none=False)
        if m is None:
            continue
        bad = False
        for k in m:
            if k not in REFERENCE_KEYS:
                errors.add_error(_unknown(p, k, REFERENCE_KEYS))
                bad = True
        for k in ("random", "reference"):
            v = m.get(k)
            if v is None:
                errors.add(_join(p, k), "required: a number (the return that normalises to "
                                        f"{0 if k == 'random' else 1})")
                bad = True
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                errors.add(_join(p, k), f"expected a finite number, got {_got(v)}")
                bad = True
        src = m.get("source")
        if not isinstance(src, str) or not src.strip():
            errors.add(_join(p, "source"), f"required: a non-empty string saying where the "
                                           f"numbers come from, got {_got(src)}")
            bad = True
        if not bad and float(m["random"]) == float(m["reference"]):
            errors.add(_join(p, "reference"), f"must differ from random ({m['random']!r}): "
                                              "the pair divides by reference - random")
            bad = True
        if not bad:
            out[env] = {"random": float(m["random"]), "reference": float(m["reference"]),
                        "source": src.strip()}
    return out


def resolve_envs(entries: list, path: str, errors: _Errors, envs: list[str],
                 env_entry: dict[str, str]) -> None:
    """Append the env ids of `entries` (suite names or env ids, as in `envs:`) to `envs`,
    each once, recording in `env_entry` the entry it came from; errors name `path[i]`."""
    import suites

    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            errors.add(f"{path}[{i}]", f"expected a suite name or env id, got {_got(entry)}")
            continue
        try:
            ids = suites.resolve(entry)
        except suites.UnknownEnvError as e:
            errors.add(f"{path}[{i}]", str(e))
            continue
        if not ids:
            errors.add(f"{path}[{i}]", f"empty grid: suite {entry!r} has no envs")
        for env in ids:
            if env not in env_entry:
                env_entry[env] = entry
                envs.append(env)


def _is_suite_or_env(key: str) -> bool:
    import suites
    from suites.anyenv import FAMILIES

    if key in FAMILIES:
        return True
    families = {suites.suite_of(e) for ids in suites.SUITES.values() for e in ids}
    if key in families or key in suites.SUITES:
        return True
    try:
        suites.resolve(key)
        return True
    except suites.UnknownEnvError:
        return False


def _expand(spec: Spec, errors: _Errors, variants: dict[str, Variant] | None = None) -> list[Run]:
    """Variants (default: spec.variants) x envs x seeds, each resolved by
    algos.train.resolve (errors attributed to the spec key that set the offending value)."""
    import suites
    from algos.train import RunSpec, resolve

    runs: list[Run] = []
    seen: dict[str, Run] = {}
    for vname, variant in (variants if variants is not None else spec.variants).items():
        for env in spec.envs:
            budget = spec.budget_for(env)
            steps = variant.steps or budget.steps
            sources: dict[str, str] = {"algo": f"runs.{vname}.algo", "seed": "seeds",
                                       "steps": (f"runs.{vname}.steps" if variant.steps
                                                 else f"budgets.{budget.key}.steps")}
            merged: dict[str, Any] = {}
            for key, value in spec.overrides.items():
                merged[key], sources[key] = value, f"overrides.{key}"
            for key, value in budget.run_overrides.items():
                merged[key], sources[key] = value, f"budgets.{budget.key}.{key}"
            for key, value in variant.overrides.items():
                merged[key], sources[key] = value, f"runs.{vname}.{key}"
            slurm = replace(spec.slurm, **budget.slurm)
            failed = False
            for seed in spec.seeds:
                rs = RunSpec(variant.algo, env, seed, steps, dict(merged), vname, spec.name,
                             reference=spec.references.get(env))
                try:
                    resolved = resolve(rs)
                except ConfigError as e:
                    errors.add_error(_attribute(e, sources, f"runs.{vname}"))
                    failed = True
                    break
                except suites.UnknownEnvError as e:
                    errors.add(f"envs ({env})", str(e))
                    failed = True
                    break
                run = Run(run_id=resolved["run_id"], variant=vname, algo=variant.algo, env=env,
                          suite=resolved["suite"], seed=seed, steps=steps,
                          overrides=dict(merged), budget=budget.key, slurm=slurm,
                          reference=spec.references.get(env))
                if run.run_id in seen:
                    errors.add(f"runs.{vname}", f"{run.label()} resolves to the same config as "
                                                f"{seen[run.run_id].label()}")
                seen[run.run_id] = run
                runs.append(run)
            if failed:
                continue
    return runs


def _attribute(err: ConfigError, sources: dict[str, str], fallback: str) -> ConfigError:
    """Point an error from algos.train.resolve (path = the override key) at the spec key."""
    head = re.split(r"[.\[]", err.path, maxsplit=1)[0] if err.path else ""
    if head in sources:
        return ConfigError(sources[head] + err.path[len(head):], err.message)
    return err.under(fallback)


def slurm_field_names() -> list[str]:
    return [f.name for f in fields(SlurmResources)]
