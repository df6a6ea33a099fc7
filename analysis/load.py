"""Find sweeps and read their run directories (docs/design.md's contract) into one table.

A RESULTS path may be a results root (a folder of sweeps), a sweep folder (a folder of
run directories, perhaps with `spec.yaml` and `manifest.csv`/`manifest.json`), or, for
convenience, several of either. A run directory is a child folder holding `config.json`.

Speed: `rundir.parse_metrics` turns every row of metrics.csv into a tuple, which
costs about a microsecond a row: 10,000 runs with a thousand rows each would take far
longer than the 10 s the report allows for loading. `read_eval` here looks only for the
`eval/return` rows (a `bytes.find` per row it keeps) and returns what `parse_metrics`
would for them; tests/test_analysis_load.py checks the two agree, partial last line
included.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rundir import CONFIG, EVAL_RETURN, METRICS, STATES, STATUS

MANIFESTS = ("manifest.json", "manifest.csv")
REQUIRED = {"run_id": str, "algo": str, "variant": str, "suite": str, "env": str,
            "seed": int, "steps": int}
_KEY = ("," + EVAL_RETURN + ",").encode()


class UsageError(Exception):
    """Bad input the user can fix (a path, a field): the CLI exits 2 with this message."""


@dataclass
class Runs:
    """Every run directory found, and its evaluation curve.

    table: one row per run directory, columns
        sweep, path, run_id, algo, variant, suite, env, seed (int), steps (int budget),
        frameskip (int), state ("done"|"running"|"failed"|"" when status.json is absent),
        status_step (int, -1 if absent), error (str), resumed_at (str: the steps it
        resumed from a checkpoint at, ";"-joined, "" if none), score (last finite-or-not
        eval/return, NaN if none), score_step (int, -1 if none), n_evals (int),
        problem (str: the first damaged eval/return row of metrics.csv, "" if none),
        commit, dirty, python, host, cpu ("" where not recorded), slurm_job (str),
        versions (canonical JSON str),
        config (the resolved algorithm + run config, canonical JSON str).
    eval_offsets: (n_runs + 1,) int64; run i's evaluations are rows
        eval_offsets[i]:eval_offsets[i+1] of
    eval_steps: (n_evals_total,) int64, ascending within a run, and
    eval_values: (n_evals_total,) float64.
    manifests: sweep name -> DataFrame of expected runs (variant, env, seed, run_id) or
        None where the sweep folder has no readable manifest.
    notes: warnings met while reading (an unreadable manifest, say), for the report.
    """

    table: pd.DataFrame
    eval_offsets: np.ndarray
    eval_steps: np.ndarray
    eval_values: np.ndarray
    manifests: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    sweep_paths: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def curve(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of run i's evaluations, each (n_evals_i,)."""
        a, b = self.eval_offsets[i], self.eval_offsets[i + 1]
        return self.eval_steps[a:b], self.eval_values[a:b]


# ----------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------
def _is_run_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG))


def _child_dirs(path: str) -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.path for e in it if e.is_dir() and not e.name.startswith("."))


def _is_sweep_dir(path: str, children: list[str] | None = None) -> bool:
    if any(os.path.isfile(os.path.join(path, m)) for m in (*MANIFESTS, "spec.yaml")):
        return True
    children = _child_dirs(path) if children is None else children
    return any(_is_run_dir(c) for c in children)


def find_sweeps(paths: list[str | os.PathLike]) -> list[Path]:
    """Sweep folders under the given results roots or sweep folders, sorted, no repeats.

    Raises UsageError for a path that does not exist, a run directory given in place of
    its sweep, or a path holding no sweep at all.
    """
    found: list[Path] = []
    for p in paths:
        p = os.fspath(p)
        if not os.path.isdir(p):
            raise UsageError(f"results path {p!r} is not a directory")
        if _is_run_dir(p):
            raise UsageError(f"{p!r} is a run directory (it holds {CONFIG}); "
                             f"pass its sweep folder {os.path.dirname(os.path.abspath(p))!r}")
        children = _child_dirs(p)
        if _is_sweep_dir(p, children):
            found.append(Path(p))
            continue
        sweeps = [Path(c) for c in children if _is_sweep_dir(c)]
        if not sweeps:
            raise UsageError(f"no sweeps under {p!r}: a sweep folder holds run directories "
                             f"(folders with {CONFIG}) or a manifest")
        found.extend(sweeps)
    out, seen = [], set()
    for s in found:
        key = os.path.realpath(s)
        if key not in seen:
            seen.add(key)
            out.append(s)
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"two sweep folders share the name {dup[0]!r}: "
                         + ", ".join(str(s) for s in out if s.name == dup[0]))
    return out


# ----------------------------------------------------------------------------------
# One run directory
# ----------------------------------------------------------------------------------
def read_eval(path: str | os.PathLike, problems: list[str] | None = None
              ) -> tuple[list[int], list[float]]:
    """(steps, values) of the `eval/return` rows of a metrics.csv, in file order.

    Equal to `[(s, v) for s, m, v, _ in parse_metrics(text) if m == "eval/return"]`:
    rows need four fields and an integer step; a partial last line is dropped; a
    missing file gives two empty lists. Each complete `eval/return` row that does not
    parse (a damaged file) is skipped and, given `problems`, described there (its line
    number and text).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], []
    return _rows(data, EVAL_RETURN, problems)


def read_metric(path: str | os.PathLike, metric: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric's rows of a metrics.csv, in file order (as read_eval)."""
    return read_metrics(path, (metric,))[metric]


def read_metrics(path: str | os.PathLike, metrics) -> dict[str, tuple[list[int], list[float]]]:
    """read_metric for several metrics, reading the file once."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {m: ([], []) for m in metrics}
    return {m: _rows(data, m) for m in metrics}


def _rows(data: bytes, metric: str, problems: list[str] | None = None
          ) -> tuple[list[int], list[float]]:
    key = _KEY if metric == EVAL_RETURN else ("," + metric + ",").encode()
    end = data.rfind(b"\n") + 1  # bytes after the last newline: a partial line
    steps: list[int] = []
    values: list[float] = []
    klen = len(key)
    i = data.find(key, 0, end)
    while i != -1:
        start = data.rfind(b"\n", 0, i) + 1
        stop = data.find(b"\n", i, end)
        rest = data[i + klen:stop].split(b",")
        ok = False
        if len(rest) == 2:
            try:
                step, value = int(data[start:i]), float(rest[0])
                float(rest[1])
            except ValueError:
                pass
            else:
                steps.append(step)
                values.append(value)
                ok = True
        if not ok and problems is not None:
            line = data[start:stop].decode("utf-8", "replace")
            no = data.count(b"\n", 0, start) + 1
            problems.append(f"{METRICS} line {no} is not a valid "
                            f"{metric} row ({line[:80]!r}; expected step,{metric},value,"
                            "wall_time)")
        i = data.find(key, stop, end)
    return steps, values


def _field_error(path: str, key: str, expected: str, got: object) -> UsageError:
    return UsageError(f"{path}: field {key!r} must be {expected}, got {got!r}")


def read_config(path: str) -> dict:
    """config.json of a run directory, checked for the fields analysis needs."""
    file = os.path.join(path, CONFIG)
    try:
        with open(file, "rb") as f:
            cfg = json.loads(f.read())
    except json.JSONDecodeError as e:
        raise UsageError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{file}: must hold a JSON object")
    for key, typ in REQUIRED.items():
        if key not in cfg:
            raise UsageError(f"{file}: missing field {key!r} (required: {', '.join(REQUIRED)})")
        val = cfg[key]
        if typ is int:
            if isinstance(val, bool) or not isinstance(val, int):
                raise _field_error(file, key, "an integer", val)
        elif not isinstance(val, str) or not val:
            raise _field_error(file, key, "a non-empty string", val)
    fs = cfg.get("frameskip", 1)
    if fs is None:
        fs = 1
    if isinstance(fs, bool) or not isinstance(fs, int) or fs < 1:
        raise _field_error(file, "frameskip", "a positive integer", fs)
    return cfg


def read_status(path: str) -> tuple[str, int, str, str]:
    """(state, step, error, resumed_at) from status.json; ("", -1, "", "") when absent or
    unreadable. resumed_at: the steps the run resumed from a checkpoint at, joined by
    ";" ("" if none, or not recorded)."""
    file = os.path.join(path, STATUS)
    try:
        with open(file, "rb") as f:
            st = json.loads(f.read())
    except FileNotFoundError:
        return "", -1, "", ""
    except json.JSONDecodeError:
        return "", -1, f"{STATUS} is not valid JSON", ""
    if not isinstance(st, dict):
        return "", -1, f"{STATUS} is not an object", ""
    state = st.get("state")
    if state not in STATES:
        return "", -1, f"{STATUS}: state {state!r} is not one of {STATES}", ""
    step = st.get("step")
    step = step if isinstance(step, int) and not isinstance(step, bool) else -1
    resumed = st.get("resumed_at")
    resumed = ";".join(str(x) for x in resumed) if isinstance(resumed, list) else ""
    return state, step, str(st.get("error") or ""), resumed


def _provenance(cfg: dict) -> dict[str, str]:
    prov = cfg.get("provenance") if isinstance(cfg.get("provenance"), dict) else {}
    git = prov.get("git") if isinstance(prov.get("git"), dict) else {}
    slurm = prov.get("slurm") if isinstance(prov.get("slurm"), dict) else {}
    versions = prov.get("versions") if isinstance(prov.get("versions"), dict) else {}
    dirty = git.get("dirty")
    return {
        "commit": str(git.get("commit") or ""),
        "dirty": "" if dirty is None else str(bool(dirty)).lower(),
        "python": str(prov.get("python") or ""),
        "host": str(prov.get("host") or ""),
        "cpu": str(prov.get("cpu") or ""),
        "slurm_job": str(slurm.get("SLURM_ARRAY_JOB_ID") or slurm.get("SLURM_JOB_ID") or ""),
        "versions": json.dumps(versions, sort_keys=True, separators=(",", ":")),
    }


def _read_run(sweep: str, rd: str) -> tuple[dict, list[int], list[float]]:
    """One run directory: its row of `Runs.table` and its eval/return (steps, values)."""
    cfg = read_config(rd)
    state, sstep, err, resumed = read_status(rd)
    problems: list[str] = []
    steps, values = read_eval(os.path.join(rd, METRICS), problems)
    if steps:
        last = max(range(len(steps)), key=lambda k: (steps[k], k))
        score, score_step = values[last], steps[last]
    else:
        score, score_step = float("nan"), -1
    record = {
        "sweep": sweep, "path": rd, "run_id": cfg["run_id"],
        "algo": cfg["algo"], "variant": cfg["variant"], "suite": cfg["suite"],
        "env": cfg["env"], "seed": cfg["seed"], "steps": cfg["steps"],
        "frameskip": cfg.get("frameskip") or 1, "state": state,
        "status_step": sstep, "error": err, "resumed_at": resumed, "score": score,
        "score_step": score_step, "n_evals": len(steps),
        "problem": problems[0] if problems else "", **_provenance(cfg),
        "config": json.dumps(cfg.get("config") or {}, sort_keys=True),
    }
    return record, steps, values


# ----------------------------------------------------------------------------------
# Manifests
# ----------------------------------------------------------------------------------
def read_manifest(sweep: Path) -> tuple[pd.DataFrame | None, str | None]:
    """Expected runs of a sweep from manifest.json or manifest.csv, read defensively.

    JSON may be a list of run objects, {"runs": [...]}, or {run_id: {...}}. A usable
    manifest names `variant`, `env` and `seed` for every run (`run_id` optional).
    Returns (DataFrame with columns run_id, variant, env, seed, suite ("" if not
    given); or None, a note for the
    report when a manifest exists but cannot be used).
    """
    for name in MANIFESTS:
        file = sweep / name
        if not file.is_file():
            continue
        try:
            if name.endswith(".json"):
                obj = json.loads(file.read_text())
                if isinstance(obj, dict) and isinstance(obj.get("runs"), list):
                    rows = obj["runs"]
                elif isinstance(obj, dict) and obj and all(isinstance(v, dict)
                                                           for v in obj.values()):
                    rows = [{"run_id": k, **v} for k, v in obj.items()]
                elif isinstance(obj, list):
                    rows = obj
                else:
                    raise ValueError("expected a list of runs, {'runs': [...]} or {run_id: {...}}")
                if not all(isinstance(r, dict) for r in rows):
                    raise ValueError("every run must be an object")
                df = pd.DataFrame(rows)
            else:
                df = pd.read_csv(file, dtype=str, keep_default_na=False)
            missing = [c for c in ("variant", "env", "seed") if c not in df.columns]
            if missing:
                raise ValueError(f"no column {missing[0]!r}")
            for opt in ("run_id", "suite"):
                if opt not in df.columns:
                    df[opt] = ""
            df = df[["run_id", "variant", "env", "seed", "suite"]].copy()
            df["seed"] = [int(float(s)) for s in df["seed"]]
            df["variant"] = df["variant"].astype(str)
            df["env"] = df["env"].astype(str)
            df["run_id"] = df["run_id"].fillna("").astype(str)
            df["suite"] = df["suite"].fillna("").astype(str)
            return df.drop_duplicates().reset_index(drop=True), None
        except (ValueError, TypeError, KeyError, json.JSONDecodeError,
                pd.errors.ParserError) as e:
            return None, (f"{file} could not be used ({e}); expected runs are the "
                          "variant x env x seed grid of the runs present")
    return None, None


# ----------------------------------------------------------------------------------
# Everything
# ----------------------------------------------------------------------------------
def load(paths: list[str | os.PathLike]) -> Runs:
    """Read every run directory of every sweep under `paths`.

    Rows are sorted by (sweep, variant, env, seed, run_id), so the same folders give
    the same table whatever order the filesystem lists them in.
    """
    sweeps = find_sweeps(paths)
    records: list[dict] = []
    curves: list[tuple[list[int], list[float]]] = []
    manifests: dict[str, pd.DataFrame | None] = {}
    notes: list[str] = []
    for sweep in sweeps:
        manifests[sweep.name], note = read_manifest(sweep)
        if note:
            notes.append(note)
        for rd in _child_dirs(os.fspath(sweep)):
            if not _is_run_dir(rd):
                continue
            record, steps, values = _read_run(sweep.name, rd)
            records.append(record)
            curves.append((steps, values))
    columns = ["sweep", "path", "run_id", "algo", "variant", "suite", "env", "seed",
               "steps", "frameskip", "state", "status_step", "error", "resumed_at", "score",
               "score_step", "n_evals", "problem", "commit", "dirty", "python", "host",
               "cpu", "slurm_job", "versions", "config"]
    table = pd.DataFrame.from_records(records, columns=columns)
    order = sorted(range(len(records)), key=lambda k: (
        records[k]["sweep"], records[k]["variant"], records[k]["env"], records[k]["seed"],
        records[k]["run_id"], records[k]["path"]))
    table = table.iloc[order].reset_index(drop=True)
    for col, dt in (("seed", np.int64), ("steps", np.int64), ("frameskip", np.int64),
                    ("status_step", np.int64), ("score_step", np.int64),
                    ("n_evals", np.int64), ("score", np.float64)):
        table[col] = table[col].astype(dt)
    counts = np.array([len(curves[k][0]) for k in order], dtype=np.int64)
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    steps_all = np.fromiter((s for k in order for s in curves[k][0]), dtype=np.int64,
                            count=int(offsets[-1]))
    values_all = np.fromiter((v for k in order for v in curves[k][1]), dtype=np.float64,
                             count=int(offsets[-1]))
    # Sort each run's evaluations by step (stable: file order breaks ties).
    for i in range(len(order)):
        a, b = offsets[i], offsets[i + 1]
        s = steps_all[a:b]
        if b - a > 1 and np.any(s[1:] < s[:-1]):
            o = np.argsort(s, kind="stable")
            steps_all[a:b] = s[o]
            values_all[a:b] = values_all[a:b][o]
    return Runs(table, offsets, steps_all, values_all, manifests,
                {s.name: str(s) for s in sweeps}, notes)


# ----------------------------------------------------------------------------------
# Every evaluation row, for notebooks
# ----------------------------------------------------------------------------------
RUN_COLUMNS = ["sweep", "run_id", "algo", "variant", "env", "suite", "seed", "step", "frames",
               "return", "normalised_score", "state", "path"]


def load_runs(path: str | os.PathLike | list[str | os.PathLike],
              config: bool = False) -> pd.DataFrame:
    """Every evaluation of every run under `path`, one row per `eval/return` row: the curves.

    path: a results root (a folder of sweeps), a sweep folder, a single run directory
    (a folder with config.json), or a list of these.

    Columns (RUN_COLUMNS):
        sweep (the sweep folder's name), run_id, algo, variant, env, suite, seed (int),
        step (int, agent env steps), frames (int, step * frameskip), return (float, the
        mean return of that evaluation's episodes), normalised_score (float: the suite's
        normalisation, `(return - random) / (reference - random)`, as the report uses;
        NaN where the env has no reference pair), state ("done" | "running" | "failed" |
        "" without status.json), path (the run directory).
    config=True adds one column per field of the resolved config, named `config.<field>`.

    Rows are sorted by sweep, variant, env, seed, run_id, step. A run without an
    evaluation yet has no row. Raises UsageError for a path that is not a folder or
    holds no runs, or a damaged config.json (naming the file).

        from analysis import load_runs
        df = load_runs("results/quickstart")
        curves = df.groupby(["variant", "env", "step"])["return"].agg(["mean", "std"])
        final = df.sort_values("step").groupby("run_id").tail(1)   # each run's last evaluation
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    runs: list[tuple[dict, list[int], list[float]]] = []
    sweeps = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p) and _is_run_dir(p):
            runs.append(_read_run(os.path.basename(os.path.dirname(os.path.abspath(p))), p))
        else:
            sweeps.append(p)
    if sweeps:
        loaded = load(sweeps)
        for i, row in enumerate(loaded.table.to_dict("records")):
            steps, values = loaded.curve(i)
            runs.append((row, steps.tolist(), values.tolist()))
    frames = []
    for rec, steps, values in runs:
        if not steps:
            continue
        order = np.argsort(np.asarray(steps, dtype=np.int64), kind="stable")
        st = np.asarray(steps, dtype=np.int64)[order]
        df = pd.DataFrame({
            "sweep": rec["sweep"], "run_id": rec["run_id"], "algo": rec["algo"],
            "variant": rec["variant"], "env": rec["env"], "suite": rec["suite"],
            "seed": int(rec["seed"]), "step": st, "frames": st * int(rec["frameskip"] or 1),
            "return": np.asarray(values, dtype=np.float64)[order],
            "state": rec["state"], "path": rec["path"],
        })
        if config:
            for key, value in json.loads(rec["config"]).items():
                df[f"config.{key}"] = [value] * len(df)
        frames.append(df)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RUN_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out["normalised_score"] = np.nan
    from analysis.scores import normalise, reference  # scores imports this module

    for env, idx in out.groupby("env").groups.items():
        if reference(env) is not None:
            out.loc[idx, "normalised_score"] = normalise(env, out.loc[idx, "return"].to_numpy())
    extra = [c for c in out.columns if c not in RUN_COLUMNS]
    out = out[RUN_COLUMNS + extra]
    out = out.sort_values(["sweep", "variant", "env", "seed", "run_id", "step"], kind="stable")
    return out.reset_index(drop=True)
