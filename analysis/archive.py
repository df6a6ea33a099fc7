"""Pack a sweep's finished runs into one compressed archive a repository can hold; unpack it.

A MuJoCo run directory holds ~4 MB of metrics (every training statistic at every update)
and a checkpoint. What `analysis/report.py` reads of it is far less: config.json,
status.json and, of metrics.csv, the evaluation rows (`eval/*`) and the dual-variable
rows the duals and diagnostics figures draw (`analysis.duals.ARCHIVED_METRICS`). `pack` keeps exactly that:
every `eval/*` row, and of each dual metric at most `max_rows` block means of consecutive
rows (the figure averages them over 20 spans of the budget, so 400 blocks keep 20 a
span; `thin_metrics` says why means and not a stride). Only runs whose status is "done"
are packed: without its checkpoint an unfinished run could not be resumed from the
archive, and `launch.py` trains it anew.

    python -m analysis.archive pack results/mujoco-core docs/results/mujoco-core/runs.tar.xz \
        --spec sweeps/mujoco-core.yaml      # the manifest lists all of the spec's runs
    python -m analysis.archive unpack docs/results/mujoco-core/runs.tar.xz results/

`unpack` restores <root>/<sweep>/<run_id>/ for each packed run, never over a run
directory that already exists (it is skipped, and said), and the sweep's spec.yaml and
manifest.json where the sweep folder has none. `sweeps/launch.py <spec>` then trains only
the runs missing, and `analysis/report.py <root>/<sweep>` reports the union: a study can
be run over several sessions or machines and its evidence kept in the repository.
Exit status 2 for a usage error (a missing folder, an archive that is not one).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import sys
import tarfile
from pathlib import Path, PurePosixPath

from rundir import CONFIG, METRICS, METRICS_HEADER, STATUS
from analysis.duals import ARCHIVED_METRICS
from analysis.load import UsageError, read_status

SWEEP_FILES = ("spec.yaml", "manifest.json")
RUN_FILES = (CONFIG, STATUS, METRICS)


def thin_metrics(text: str, max_rows: int = 400) -> str:
    """metrics.csv text -> the rows the report reads: every `eval/*` row as it is, and of
    each metric in ARCHIVED_METRICS one row per block of k = ceil(n / max_rows) consecutive
    rows: the block's mean value at the block's last step (and wall time). Block means,
    not every k-th row: a dual's KL is zero at each target refresh and so periodic in
    the learner step, and a stride equal to that period would keep only the zeros.
    Other metrics are dropped; rows keep their order."""
    lines = text.splitlines()
    if not lines or lines[0] != ",".join(METRICS_HEADER):
        raise UsageError(f"metrics.csv does not start with the header {','.join(METRICS_HEADER)}")
    out: dict[int, str] = {}
    rows_of: dict[str, list[tuple[int, list[str]]]] = {}
    for i, line in enumerate(lines[1:], start=1):
        parts = line.split(",")
        if len(parts) != 4:
            continue  # a partial last line of a crashed writer: the report skips it too
        if parts[1].startswith("eval/"):
            out[i] = line
        elif parts[1] in ARCHIVED_METRICS:
            rows_of.setdefault(parts[1], []).append((i, parts))
    for metric, rows in rows_of.items():
        k = -(-len(rows) // max_rows)
        for b in range(0, len(rows), k):
            block = rows[b:b + k]
            i, (step, _, _, wall) = block[-1]
            mean = sum(float(p[2]) for _, p in block) / len(block)
            out[i] = f"{step},{metric},{mean!r},{wall}"
    return "\n".join([lines[0]] + [out[i] for i in sorted(out)]) + "\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _spec_manifest(spec_path: str | Path, name: str, done: set[str]) -> tuple[bytes, bytes]:
    """(spec text, manifest.json) naming every run of the spec file, "done" where packed.
    A study launched in stages (specs with the same name and a subset of the runs) has
    in its folder the manifest of the last stage only; the report needs the whole grid."""
    from sweeps.spec import SpecError, load_spec  # sweeps/ only where a spec is asked for
    from sweeps.state import run_entry, tuning_record

    try:
        spec = load_spec(spec_path)
    except (OSError, SpecError) as e:
        raise UsageError(f"--spec {spec_path}: {e}") from None
    if spec.tuning is not None and name == spec.name + "-tune":
        from sweeps.tuning import tuning_spec  # a tuned spec's trials: sweep <name>-tune

        spec = tuning_spec(spec)
    if spec.name != name:
        raise UsageError(f"--spec {spec_path} is sweep {spec.name!r}, the folder holds {name!r}")
    runs = [{**run_entry(r), "state": "done" if r.run_id in done else "new"} for r in spec.runs]
    manifest = {"sweep": name, "spec": "spec.yaml", "runs": runs, **tuning_record(spec),
                "note": f"written by analysis.archive from {Path(spec_path).name}"}
    return spec.text.encode(), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def pack(sweep_dir: str | Path, out: str | Path, max_rows: int = 400,
         spec: str | Path | None = None, whole_cells: int = 0) -> list[str]:
    """Write `out` (.tar.xz) holding the sweep folder's spec/manifest and each done run's
    config.json, status.json and thinned metrics.csv under <sweep>/<run_id>/. With
    `spec`, the spec file's text and a manifest of all its runs replace the folder's.
    With `whole_cells` = n > 0, only the (variant, env) cells with at least n done runs
    are packed: rliable's score matrices need as many runs on every env, and a cell
    caught half-finished would cut a variant's matrix to its fewest seeds.
    Returns the run ids packed. The archive is written to a temporary name, then renamed."""
    sweep_dir, out = Path(sweep_dir), Path(out)
    if not sweep_dir.is_dir():
        raise UsageError(f"sweep folder {sweep_dir} does not exist; expected a folder of run directories")
    name = sweep_dir.resolve().name
    done = []
    for run in sorted(p for p in sweep_dir.iterdir() if (p / CONFIG).is_file()):
        if read_status(str(run))[0] == "done" and (run / METRICS).is_file():
            done.append(run)
    if whole_cells > 0:
        configs = {r: json.loads((r / CONFIG).read_text()) for r in done}
        cell = {r: (c.get("variant"), c.get("env")) for r, c in configs.items()}
        sizes = collections.Counter(cell.values())
        done = [r for r in done if sizes[cell[r]] >= whole_cells]
    if not done:
        raise UsageError(f"{sweep_dir} holds no finished run (status.json state \"done\")")
    sweep_files = {f: (sweep_dir / f).read_bytes() for f in SWEEP_FILES if (sweep_dir / f).is_file()}
    if spec is not None:
        sweep_files = dict(zip(SWEEP_FILES, _spec_manifest(spec, name, {r.name for r in done})))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:xz") as tar:
        for f, data in sweep_files.items():
            _add(tar, f"{name}/{f}", data)
        for run in done:
            for f in (CONFIG, STATUS):
                _add(tar, f"{name}/{run.name}/{f}", (run / f).read_bytes())
            thinned = thin_metrics((run / METRICS).read_text(), max_rows)
            _add(tar, f"{name}/{run.name}/{METRICS}", thinned.encode())
    tmp.replace(out)
    return [r.name for r in done]


def _members(tar: tarfile.TarFile, archive: Path) -> dict[str, dict[str, tarfile.TarInfo]]:
    """folder ('<sweep>' or '<sweep>/<run_id>') -> file name -> member; every member
    checked to be a plain file at one of the two depths, with a known name."""
    folders: dict[str, dict[str, tarfile.TarInfo]] = {}
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        bad = (not m.isfile() or p.is_absolute() or ".." in p.parts
               or not (len(p.parts) == 2 and p.name in SWEEP_FILES
                       or len(p.parts) == 3 and p.name in RUN_FILES))
        if bad:
            raise UsageError(f"{archive}: unexpected member {m.name!r}; expected <sweep>/"
                             f"{{{','.join(SWEEP_FILES)}}} or <sweep>/<run_id>/{{{','.join(RUN_FILES)}}}")
        folders.setdefault(str(p.parent), {})[p.name] = m
    return folders


def unpack(archive: str | Path, root: str | Path) -> tuple[list[str], list[str]]:
    """Restore the archive's runs under `root`; returns (restored, skipped) run folders
    ('<sweep>/<run_id>'). A run folder that exists is skipped, not merged; each
    restored run is written to a temporary folder, then renamed into place."""
    archive, root = Path(archive), Path(root)
    if not archive.is_file():
        raise UsageError(f"archive {archive} does not exist")
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise UsageError(f"{archive} is not a readable tar archive ({e})") from None
    restored, skipped = [], []
    with tar:
        folders = _members(tar, archive)
        for folder, files in sorted(folders.items()):
            dest = root / folder
            if "/" not in folder:  # the sweep's own files, where it has none
                dest.mkdir(parents=True, exist_ok=True)
                for f, m in files.items():
                    if not (dest / f).exists():
                        (dest / f).write_bytes(tar.extractfile(m).read())
                continue
            if set(files) != set(RUN_FILES):
                raise UsageError(f"{archive}: run {folder} lacks {sorted(set(RUN_FILES) - set(files))}")
            if dest.exists():
                skipped.append(folder)
                continue
            tmp = dest.with_name(dest.name + ".unpacking")
            tmp.mkdir(parents=True, exist_ok=False)
            for f, m in files.items():
                (tmp / f).write_bytes(tar.extractfile(m).read())
            tmp.rename(dest)
            restored.append(folder)
    return restored, skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.archive", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="a sweep folder's done runs -> ARCHIVE (.tar.xz)")
    a.add_argument("sweep")
    a.add_argument("archive")
    a.add_argument("--max-rows", type=int, default=400, help="rows kept per dual metric (default 400)")
    a.add_argument("--whole-cells", type=int, default=0, metavar="N", help="pack only the "
                   "(variant, env) cells with N done runs (default 0: every done run)")
    a.add_argument("--spec", default=None, help="spec file whose runs the manifest lists (default: "
                   "the folder's own manifest.json and spec.yaml)")
    b = sub.add_parser("unpack", help="ARCHIVE -> RESULTS/<sweep>/<run_id>/ (existing runs kept)")
    b.add_argument("archive")
    b.add_argument("results")
    args = p.parse_args(argv)
    try:
        if args.cmd == "pack":
            if args.max_rows < 1:
                raise UsageError(f"--max-rows {args.max_rows}: expected an int >= 1")
            ids = pack(args.sweep, args.archive, args.max_rows, args.spec, args.whole_cells)
            print(f"packed {len(ids)} finished run(s) of {args.sweep} into {args.archive}")
        else:
            restored, skipped = unpack(args.archive, args.results)
            print(f"restored {len(restored)} run(s) into {args.results}"
                  + (f"; kept {len(skipped)} existing: {', '.join(skipped)}" if skipped else ""))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
