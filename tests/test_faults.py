"""Fault injection (slow): a small local sweep is killed with SIGKILL at random moments,
over many seeded trials, and relaunched with the same command until it is done; then the
report is killed while it writes. Two launchers started at once train no run twice.

Each trial adds a seed to the sweep (two new runs, PPO and V-MPO on CartPole-v1, 12
rollouts of 128 steps, a checkpoint every 2 rollouts), launches it, and SIGKILLs one of:

    launcher          the launcher (its runs get SIGTERM from the kernel: PDEATHSIG)
    child             one training process (the launcher goes on with the other run)
    both              a training process and the launcher at once
    checkpoint-write  a training process inside the write of its N-th checkpoint (its temp
                      file cut to half, then killed before the rename: a partial file)
    manifest-write    the launcher inside the N-th write of manifest.json

at a moment drawn from the trial's RNG: a time after the start, or the moment a run's
metrics reach a drawn step (so most kills land between checkpoints). Then the same
command runs again until it exits 0. After every trial, for every run of the sweep: the
metrics have one row per metric per rollout, every rollout of the budget present and
none twice (nothing lost, nothing doubled), steps strictly increasing, evaluations at
the schedule's steps and a final one at the budget; status.json says done at the budget;
the checkpoint is the budget's; the runs of earlier trials are byte-identical to what
they were (relaunches did not touch them); no temporary, partial or unexpected file is
left anywhere; and `--status` says every run is done.

Environment: VMPO_FAULT_SEED (default 12), VMPO_FAULT_TRIALS (default 20),
VMPO_FAULT_REPORT_TRIALS (default 4). The seed and the counts are printed.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from algos.results import RunDir
from sweeps import launch
from sweeps.spec import parse_spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FAILPOINTS = Path(__file__).resolve().parent / "failpoints"
SEED = int(os.environ.get("VMPO_FAULT_SEED", "12"))
TRIALS = int(os.environ.get("VMPO_FAULT_TRIALS", "20"))
REPORT_TRIALS = int(os.environ.get("VMPO_FAULT_REPORT_TRIALS", "4"))
KINDS = ("launcher", "child", "both", "checkpoint-write", "manifest-write")

BUDGET, PER_ITER, EVAL_EVERY, CKPT_EVERY = 1536, 128, 768, 256
RUN_FILES = {"config.json", "metrics.csv", "status.json", "checkpoint.pt"}
SWEEP_FILES = {"spec.yaml", "manifest.json", ".manifest.lock", ".launch.lock"}


def spec_text(name: str, seeds: list[int], variants=("ppo", "vmpo"), env: str = "CartPole-v1") -> str:
    return "\n".join([
        f"name: {name}",
        f"seeds: {seeds}",
        f"envs: [{env}]",
        "budgets:",
        f"  classic: {{steps: {BUDGET}, eval_every: {EVAL_EVERY}, eval_episodes: 1, "
        f"checkpoint_every: {CKPT_EVERY}}}",
        "overrides: {num_envs: 2, rollout_length: 64}",
        "runs:",
        *[f"  {v}: {{}}" for v in variants],
        "local: {parallelism: 2}",
        "",
    ])


def env_for(failpoint: str | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("VMPO_FAILPOINT", None)
    if failpoint:
        env["PYTHONPATH"] = f"{FAILPOINTS}{os.pathsep}{ROOT}"
        env["VMPO_FAILPOINT"] = failpoint
    return env


def start_launcher(base: Path, failpoint: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "sweeps" / "launch.py"), "spec.yaml", "--executor", "local",
         "--results", "results"], cwd=base, env=env_for(failpoint),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def pids_with(needle: str) -> list[int]:
    """Live processes whose command line contains `needle` (this test's folders)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{d}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if needle in cmd and not zombie and int(d) != os.getpid():
            out.append(int(d))
    return out


def wait_gone(needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while pids_with(needle):
        assert time.monotonic() < deadline, f"processes of {needle} still alive"
        time.sleep(0.05)


def last_step(run_dir: Path) -> int:
    try:
        data = (run_dir / "metrics.csv").read_bytes()
    except FileNotFoundError:
        return 0
    lines = data.split(b"\n")[:-1]
    try:
        return int(lines[-1].split(b",")[0]) if len(lines) > 1 else 0
    except ValueError:
        return 0


def relaunch_until_done(base: Path, attempts: int = 5) -> int:
    """Run the same launch command until it exits 0; return how many runs it took."""
    for n in range(1, attempts + 1):
        p = start_launcher(base)
        log, _ = p.communicate(timeout=300)
        if p.returncode == 0:
            return n
    raise AssertionError(f"the sweep was not done after {attempts} relaunches; last:\n{log}")


def check_run(rd: Path) -> dict[str, int]:
    """Assert everything the trial promises of one run directory; return lost/doubled."""
    assert {p.name for p in rd.iterdir()} == RUN_FILES | {"tb"}, sorted(p.name for p in rd.iterdir())
    text = (rd / "metrics.csv").read_text()
    assert text.endswith("\n"), "metrics.csv ends in a partial row"
    rows = RunDir(rd).read_metrics(strict=True)
    by_metric: dict[str, list[int]] = {}
    for step, metric, _, _ in rows:
        by_metric.setdefault(metric, []).append(step)
    for metric, steps in by_metric.items():
        assert all(a < b for a, b in zip(steps, steps[1:])), f"{rd.name} {metric}: {steps}"
    rollouts = list(range(PER_ITER, BUDGET + 1, PER_ITER))
    got = by_metric["time/sps"]
    lost = len(set(rollouts) - set(got))
    doubled = len(got) - len(set(got))
    assert got == rollouts, f"{rd.name}: rollout steps {got}"
    assert by_metric["eval/return"] == list(range(EVAL_EVERY, BUDGET + 1, EVAL_EVERY))
    st = RunDir(rd).read_status()
    assert (st["state"], st["step"], st["error"]) == ("done", BUDGET, None)
    # every resume is recorded, at a checkpoint's step, in order
    assert st["resumed_at"] == sorted(st["resumed_at"]) and set(st["resumed_at"]) <= set(rollouts)
    ckpt = torch.load(rd / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == BUDGET and ckpt["evals_done"] == BUDGET // EVAL_EVERY
    return {"lost": lost, "doubled": doubled}


def check_sweep(results: Path, name: str, spec) -> dict[str, int]:
    """Every run checked, and nothing else left in the sweep folder but what belongs."""
    folder = results / name
    run_ids = {r.run_id for r in spec.runs}
    top = {p.name for p in folder.iterdir()}
    assert top == SWEEP_FILES | {"logs", "locks"} | run_ids, sorted(top ^ (SWEEP_FILES | run_ids))
    assert {p.name for p in (folder / "logs").iterdir()} == {"local"}
    assert {p.name for p in (folder / "locks").iterdir()} <= {f"{r}.lock" for r in run_ids}
    totals = Counter()
    for r in spec.runs:
        totals.update(check_run(folder / r.run_id))
    out, err = io.StringIO(), io.StringIO()
    assert launch.main([str(results.parent / "spec.yaml"), "--results", str(results), "--status"],
                       out=out, err=err) == 0
    n = len(spec.runs)
    assert f"{n} runs: {n} done, 0 running, 0 queued, 0 stale, 0 failed, 0 new" in out.getvalue()
    return dict(totals)


def digest_runs(folder: Path, run_ids) -> dict[str, str]:
    h = {}
    for rid in run_ids:
        for name in sorted(RUN_FILES):
            h[f"{rid}/{name}"] = hashlib.sha256((folder / rid / name).read_bytes()).hexdigest()
    return h


def inject(base: Path, name: str, spec, new_runs, kind: str, rng: random.Random) -> bool:
    """Launch the sweep and SIGKILL per `kind`; True if a process was killed."""
    folder = base / "results" / name
    victim = rng.choice(new_runs)
    if kind == "checkpoint-write":
        nth = rng.randint(1, BUDGET // CKPT_EVERY)
        p = start_launcher(base, f"fsync:{victim.run_id}/.checkpoint.pt.:{nth}")
        log, _ = p.communicate(timeout=300)
        return "stopped by SIGKILL" in log and p.returncode == 1
    if kind == "manifest-write":
        p = start_launcher(base, f"fsync:/{name}/.manifest.json.:{rng.randint(1, 2)}")
        p.communicate(timeout=300)
        return p.returncode == -signal.SIGKILL
    p = start_launcher(base)
    t0 = time.monotonic()
    if rng.random() < 0.3:
        moment = ("time", rng.uniform(0.2, 5.0))
    else:
        moment = ("step", PER_ITER * rng.randint(1, BUDGET // PER_ITER - 2))
    job_of = f"{folder / victim.run_id}\""
    while p.poll() is None:
        if moment[0] == "time":
            reached = time.monotonic() - t0 >= moment[1]
        else:
            reached = last_step(folder / victim.run_id) >= moment[1]
        children = pids_with(job_of)
        if reached and (kind == "launcher" or children):
            break
        time.sleep(0.02)
    else:
        return False
    killed = False
    if kind in ("child", "both"):
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                pass
    if kind in ("launcher", "both"):
        p.kill()
    log, _ = p.communicate(timeout=300)
    if kind in ("launcher", "both"):
        killed = p.returncode == -signal.SIGKILL
    else:
        killed = killed and "stopped by SIGKILL" in log and p.returncode == 1
    return killed


def test_sweep_survives_random_sigkills_and_relaunches(tmp_path, capsys):
    rng = random.Random(SEED)
    with capsys.disabled():
        print(f"\nfault injection: VMPO_FAULT_SEED={SEED} VMPO_FAULT_TRIALS={TRIALS} "
              f"VMPO_FAULT_REPORT_TRIALS={REPORT_TRIALS}")
    base = tmp_path / "sweep"
    base.mkdir()
    name = "faults"
    kinds = [KINDS[i % len(KINDS)] for i in range(TRIALS)]
    rng.shuffle(kinds)
    injected, relaunches, totals = Counter(), 0, Counter()
    t_start = time.monotonic()
    earlier: dict[str, str] = {}
    for trial, kind in enumerate(kinds):
        text = spec_text(name, list(range(trial + 1)))
        (base / "spec.yaml").write_text(text)
        spec = parse_spec(text)
        new_runs = [r for r in spec.runs if r.seed == trial]
        if inject(base, name, spec, new_runs, kind, rng):
            injected[kind] += 1
        wait_gone(str(base))
        relaunches += relaunch_until_done(base)
        totals.update(check_sweep(base / "results", name, spec))
        folder = base / "results" / name
        old = [r.run_id for r in spec.runs if r.seed < trial]
        assert digest_runs(folder, old) == earlier, "a relaunch touched a finished run"
        earlier = digest_runs(folder, [r.run_id for r in spec.runs])
    t_sweep = time.monotonic() - t_start
    report_kills = report_faults(base / "results", rng)
    summary = (f"fault injection: seed {SEED}, {TRIALS} trials, {2 * TRIALS} runs: "
               f"{sum(injected.values())} SIGKILLs landed ("
               + ", ".join(f"{k} {injected[k]}" for k in KINDS)
               + f"), {relaunches} relaunches; report: {report_kills} of {REPORT_TRIALS} kills; "
               f"lost {totals['lost']} steps, doubled {totals['doubled']} "
               f"[{t_sweep:.0f}s + {time.monotonic() - t_start - t_sweep:.0f}s]")
    with capsys.disabled():
        print(summary)
    assert totals["lost"] == 0 and totals["doubled"] == 0
    # each kind landed in most of its trials (a drawn moment can come after the runs ended)
    for k in KINDS:
        assert injected[k] >= kinds.count(k) - 1, summary
    assert report_kills == REPORT_TRIALS, summary


def report_faults(results: Path, rng: random.Random) -> int:
    """Kill the report while it writes (at a random moment, or between the two renames
    that publish it), rerun it, and check that the report is whole and nothing is left."""
    if REPORT_TRIALS == 0:
        return 0
    base = results.parent
    args = [sys.executable, str(ROOT / "analysis" / "report.py"), str(results), "--reps", "50",
            "--jobs", "1"]
    t0 = time.monotonic()
    subprocess.run(args + ["--out", "ref"], cwd=base, env=env_for(), check=True,
                   capture_output=True, timeout=300)
    duration = time.monotonic() - t0
    ref = {p.name: p.read_bytes() for p in (base / "ref").iterdir()}
    kills = 0
    for trial in range(REPORT_TRIALS):
        failpoint = "rename:.old:1" if trial % 2 else None
        p = subprocess.Popen(args + ["--out", "reports/rep"], cwd=base, env=env_for(failpoint),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if failpoint is None:
            time.sleep(rng.uniform(0.3, duration * 0.9))
            p.kill()
        p.communicate(timeout=300)
        kills += p.returncode == -signal.SIGKILL
        res = subprocess.run(args + ["--out", "reports/rep"], cwd=base, env=env_for(),
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        assert sorted(os.listdir(base / "reports")) == ["rep"], os.listdir(base / "reports")
        got = {q.name: q.read_bytes() for q in (base / "reports" / "rep").iterdir()}
        assert got.keys() == ref.keys() and all(got[k] == ref[k] for k in ref)
    return kills


# -- two launchers at once -----------------------------------------------------------------


def _log_counts(folder: Path) -> Counter:
    c = Counter()
    for log in (folder / "logs" / "local").glob("*.log"):
        text = log.read_text()
        for key in ("starting in", "resuming from its checkpoint", "another process", "already done"):
            c[key] += text.count(key)
    return c


def test_two_launchers_at_once_train_no_run_twice(tmp_path):
    """Round 1: two launchers of a new sweep (PPO and TRPO on Pendulum-v1) started
    together; round 2: the launcher of the next seed killed once its runs have
    checkpointed, then two relaunchers started together. Each run is started once and
    each stale run resumed once, both launchers exit 0, one of them says it has nothing
    to launch, and the sweep ends done with every step once."""
    base = tmp_path / "sweep"
    base.mkdir()
    name = "pair"
    for seeds in ([0], [0, 1]):
        text = spec_text(name, seeds, variants=("ppo", "trpo"), env="Pendulum-v1")
        (base / "spec.yaml").write_text(text)
        spec = parse_spec(text)
        folder = base / "results" / name
        stale = []
        if seeds == [0, 1]:  # make seed 1 stale: kill its launcher once both runs checkpointed
            new = [folder / r.run_id for r in spec.runs if r.seed == 1]
            p = start_launcher(base)
            while p.poll() is None and not all((rd / "checkpoint.pt").exists() for rd in new):
                time.sleep(0.02)
            p.kill()
            p.communicate()
            wait_gone(str(base))
            stale = [rd for rd in new if RunDir(rd).read_status()["state"] != "done"]
            assert stale, "both runs ended before the kill"
        before = _log_counts(folder) if folder.exists() else Counter()
        a, b = start_launcher(base), start_launcher(base)
        out_a, _ = a.communicate(timeout=300)
        out_b, _ = b.communicate(timeout=300)
        assert a.returncode == 0 and b.returncode == 0, out_a + out_b
        assert sum("nothing to launch" in o for o in (out_a, out_b)) == 1, out_a + out_b
        counts = _log_counts(folder)
        started = counts["starting in"] - before["starting in"]
        resumed = counts["resuming from its checkpoint"] - before["resuming from its checkpoint"]
        if seeds == [0]:
            assert (started, resumed) == (2, 0), (counts, out_a, out_b)
        else:  # each stale run resumed once, by one of the two
            assert (started, resumed) == (0, len(stale)), (counts, before, out_a, out_b)
        assert counts["another process"] == 0, counts
        check_sweep(base / "results", name, spec)
