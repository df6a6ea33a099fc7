"""The select phase of a tuned spec: score the trials, write the selected configurations.

Reads the tune sweep's run directories (`analysis.load`), scores each trial by the spec's
criterion (`sweeps.tuning.score_trials`), picks the best per tuned variant
(`sweeps.tuning.choose`) and writes the selection fragment (`tuning.selected`,
atomically). A selection that exists and differs is never overwritten: it may be
committed, and test runs may already use it.
"""

from __future__ import annotations

import math
from pathlib import Path

from rundir import atomic_write_bytes
from sweeps import tuning
from sweeps.state import count, run_states


def run(spec, tune, tune_folder: Path, out, err, keep_existing: bool = False) -> int:
    """0 on a selection written (or already there, identical); 2 when the trials are not
    all finished or a different selection exists; 1 when a variant has no scored trial."""
    from analysis.load import load

    states, _ = run_states(tune_folder, tune)
    c = count(states)
    unfinished = len(states) - c["done"] - c["failed"]
    if unfinished:
        print(f"error: --phase select: {unfinished} of {len(states)} tuning runs of {tune.name} "
              "are not finished (" + ", ".join(f"{c[s]} {s}" for s in ("running", "queued", "stale", "new")
                                               if c[s]) + "); launch --phase tune until they are",
              file=err)
        return 2
    runs = load([tune_folder])
    ids = {r.run_id for r in tune.runs}
    keep = runs.table["run_id"].isin(ids).to_numpy()
    table = runs.table[keep]
    scored = tuning.score_trials(spec, table, runs.curve)
    chosen: dict[str, tuning.Trial] = {}
    for vname, trials in scored.items():
        best = tuning.choose(trials)
        if best is None:
            print(f"error: --phase select: no trial of {vname} has a score (every trial has a "
                  "failed run); --status on the tune phase shows the errors", file=err)
            return 1
        chosen[vname] = best
    defaults = {v: tuning.variant_defaults(spec, v) for v in scored}
    commits = sorted({str(x) for x in table["commit"] if str(x)})
    prov = (f"From {len(table)} tuning runs in {tune.name}/ ({c['failed']} failed), "
            f"code {', '.join(commits) or 'unknown'}.")
    text = tuning.selection_text(spec, scored, chosen, defaults, prov)
    path = spec.tuning.selected_path
    if path.is_file():
        old = path.read_text(encoding="utf-8", errors="replace")
        if old != text:
            print(f"error: --phase select: {path} exists and differs from this selection; it is "
                  "never overwritten (it may be committed and in use by test runs): remove it to "
                  "select again", file=err)
            return 2
        print(f"selection unchanged: {path}", file=out)
    else:
        atomic_write_bytes(path, text.encode())
        print(f"wrote the selection: {path}", file=out)
    for vname, trials in scored.items():
        ok = sorted(tr.score for tr in trials if math.isfinite(tr.score))
        tr = chosen[vname]
        print(f"  {vname}: c{tr.trial:02d} score {tr.score:.4g} (defaults {trials[0].score:.4g}; "
              f"{len(ok)} of {len(trials)} trials scored, median {ok[len(ok) // 2]:.4g})", file=out)
    return 0
