"""Sweeps without SLURM: spec validation (exact messages, exit 2, nothing written),
expansion and stable run_ids, --dry-run, and the debug and local executors: launch,
relaunch skipping, --retry-failed, stale runs, --status with errors."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from algos.results import read_json
from algos.train import ALGOS, resolve
from sweeps import launch, state
from sweeps.spec import SpecError, parse_spec, parse_time, resolve_spec_path

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
seeds: 2
envs: [CartPole-v1]
budgets:
  classic: {steps: 1024, eval_every: 0, eval_episodes: 1, checkpoint_every: 512}
runs:
  ppo: {}
"""

# a run that fails at start on every machine: no machine has a 100th GPU
BROKEN = """
name: broken
seeds: [0]
envs: [CartPole-v1]
budgets:
  CartPole-v1: {steps: 1024, eval_every: 0, eval_episodes: 1}
runs:
  ok: {algo: ppo}
  broken: {algo: ppo, device: "cuda:99"}
"""


def cli(tmp_path, *args, spec_text=None, spec="spec.yaml"):
    """Run `launch.main` in-process from tmp_path; returns (exit status, stdout, stderr)."""
    if spec_text is not None:
        (tmp_path / spec).write_text(textwrap.dedent(spec_text))
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rc = launch.main([spec, *args], out=out, err=err)
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


def spec_errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as e:
        parse_spec(textwrap.dedent(text))
    return [str(x) for x in e.value.errors]


def metric_rows(run_dir: Path) -> list[tuple[int, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), r["metric"]) for r in csv.DictReader(f)]


# -- validation ------------------------------------------------------------------------

VALID = """
name: v
seeds: 2
envs: [CartPole-v1]
budgets:
  classic: {steps: 1000}
runs:
  ppo: {}
"""


@pytest.mark.parametrize("change,expected", [
    # the example
    ({"runs": {"vmpo-no-topk": {"algo": "vmpo", "topk_fraction": "half"}}},
     'runs.vmpo-no-topk.topk_fraction: expected a float, got "half"'),
    ({"runs": {"ppo": {"learning_rate": 0.1}}},
     "runs.ppo.learning_rate: unknown key; valid keys: activation, adam_eps"),
    ({"runs": {"fast": {"algo": "ppq"}}},
     f'runs.fast.algo: unknown algorithm "ppq"; valid: {", ".join(ALGOS)}'),
    ({"runs": {"fast": {"lr": 0.1}}},
     f"runs.fast.algo: required (the variant's name is no algorithm); valid: {', '.join(ALGOS)}"),
    ({"seed": 3}, "seed: unknown key (did you mean seeds?); valid keys: budgets, description, envs"),
    ({"envs": ["CartPol-v1"]}, "envs[0]: "),
    ({"envs": ["classik"]}, "envs[0]: "),
    ({"budgets": {"classic": {"steps": "many"}}},
     'budgets.classic.steps: expected a positive int (agent env steps), got "many"'),
    ({"budgets": {"classic": {"steps": 1000, "eval_every": "often"}}},
     'budgets.classic.eval_every: expected an int, got "often"'),
    ({"budgets": {"classic": {"eval_every": 10}}}, "budgets.classic.steps: required"),
    ({"budgets": {"mujoco": {"steps": 10}}}, ("budgets: no budget for CartPole-v1 (suite classic); "
                                            "add one of budgets.classic, budgets.CartPole-v1")),
    ({"budgets": {"classic": {"steps": 1000, "slurm": {"time": "soon"}}}},
     'budgets.classic.slurm.time: expected minutes (an int) or a SLURM time'),
    ({"runs": {"ppo": {"steps": 0}}},
     "runs.ppo.steps: expected a positive int (agent env steps; this variant's budget on every env), got 0"),
    ({"runs": {"ppo": {"steps": "long"}}}, 'runs.ppo.steps: expected a positive int'),
    ({"slurm": {"cpus": 2}}, "slurm.cpus: unknown key; valid keys: array_parallelism, cpus_per_task"),
    ({"slurm": {"array_parallelism": 0}}, "slurm.array_parallelism: expected a positive int, got 0"),
    ({"local": {"parallelism": "many"}}, 'local.parallelism: expected a positive int or "auto", got "many"'),
    ({"overrides": {"num_envs": 0}}, "overrides.num_envs: expected a positive int, got 0"),
    ({"name": "my sweep"}, "name: expected a name of letters, digits and ._+-"),
    # empty grids
    ({"seeds": 0}, "seeds: empty grid: expected a positive count or a list of seeds, got 0"),
    ({"seeds": []}, "seeds: empty grid: expected at least one seed"),
    ({"envs": []}, "envs: empty grid: expected at least one suite"),
    ({"runs": {}}, "runs: empty grid: expected at least one variant"),
    ({"seeds": [0, 0]}, "seeds[1]: seed 0 is listed twice"),
])
def test_validation_errors_name_the_key_path(change, expected):
    import yaml

    doc = yaml.safe_load(VALID)
    doc.update(change)
    errors = spec_errors(yaml.safe_dump(doc))
    assert any(e.startswith(expected) for e in errors), errors


def test_unknown_config_field_lists_valid_fields():
    errors = spec_errors(VALID.replace("ppo: {}", "ppo: {clip: 0.1}"))
    assert len(errors) == 1 and "clip_coef" in errors[0] and "eval_every" in errors[0]


def test_unknown_env_error_lists_suites():
    errors = spec_errors(VALID.replace("[CartPole-v1]", "[CartPol-v1]"))
    assert errors[0].startswith("envs[0]: ")
    assert "classic" in errors[0] and "mujoco" in errors[0]


def test_every_error_is_reported_at_once():
    errors = spec_errors("""
        name: v
        seeds: 0
        envs: [classic]
        budgets: {classic: {steps: 10}}
        runs: {ppo: {}}
        extra: 1
    """)
    assert [e.split(":")[0] for e in errors] == ["extra", "seeds"]


def test_yaml_problems_are_spec_errors():
    errors = spec_errors("name: a\nname: b\n")
    assert "duplicate key 'name'" in errors[0] and "line 2" in errors[0]
    assert "invalid YAML" in spec_errors("name: [unclosed\n")[0]


@pytest.mark.parametrize("bad", [
    VALID.replace("ppo: {}", 'ppo: {lr: "fast"}'),
    VALID.replace("seeds: 2", "seeds: []"),
    VALID.replace("name: v", "name: v\nbogus: 1"),
])
def test_cli_exits_2_and_writes_nothing(tmp_path, bad):
    rc, _out, err = cli(tmp_path, "--executor", "debug", spec_text=bad)
    assert rc == 2
    assert err.startswith("error: ") and "nothing launched" in err
    assert not (tmp_path / "results").exists()
    assert sorted(os.listdir(tmp_path)) == ["spec.yaml"]


def test_missing_spec_exits_2(tmp_path):
    rc, _, err = cli(tmp_path, spec="nope.yaml")
    assert rc == 2 and "no spec 'nope.yaml'" in err


def test_yaml_numbers_and_times():
    spec = parse_spec(textwrap.dedent("""
        name: n
        seeds: [3, 1]
        envs: CartPole-v1
        budgets: {classic: {steps: 2e4, eval_every: 1_000}}
        runs: {ppo: {lr: 3e-4}}
        slurm: {time: "1:30:00"}
    """))
    assert [r.seed for r in spec.runs] == [3, 1]
    assert spec.runs[0].steps == 20_000 and isinstance(spec.runs[0].steps, int)
    assert spec.runs[0].overrides == {"eval_every": 1000, "lr": 3e-4}
    assert spec.slurm.time == 90
    assert parse_time(30) == 30 and parse_time("2-00:00:00") == 2880 and parse_time("10:30") == 11
    assert parse_time("1-12") == 36 * 60 and parse_time("soon") is None and parse_time(0) is None


# -- expansion ------------------------------------------------------------------------------


GRID = """
name: grid
seeds: 3
envs: [CartPole-v1, Pendulum-v1]
budgets:
  classic: {steps: 5000, eval_every: 1000}
  Pendulum-v1: {steps: 4000}
overrides: {eval_episodes: 3, lr: 1e-3}
runs:
  ppo: {}
  ppo-slow: {algo: ppo, lr: 1e-4, eval_every: 2500}
"""


def test_expansion_grid_precedence_and_stable_run_ids():
    spec = parse_spec(GRID)
    assert len(spec.runs) == 2 * 2 * 3
    assert Counter((r.variant, r.env) for r in spec.runs) == {
        (v, e): 3 for v in ("ppo", "ppo-slow") for e in ("CartPole-v1", "Pendulum-v1")}
    by = {(r.variant, r.env, r.seed): r for r in spec.runs}
    # budget per env id beats the suite's; runs.<variant> beats budgets beats overrides
    assert by["ppo", "Pendulum-v1", 0].steps == 4000 and by["ppo", "CartPole-v1", 0].steps == 5000
    assert by["ppo", "CartPole-v1", 0].overrides == {"eval_episodes": 3, "lr": 1e-3, "eval_every": 1000}
    assert by["ppo-slow", "CartPole-v1", 0].overrides["lr"] == 1e-4
    assert by["ppo-slow", "CartPole-v1", 0].overrides["eval_every"] == 2500
    assert "eval_every" not in by["ppo", "Pendulum-v1", 0].overrides
    # run_id: the hash of the resolved config, the same as algos.train.resolve gives
    for r in spec.runs:
        assert r.run_id == resolve(r.run_spec("grid"))["run_id"]
    assert len({r.run_id for r in spec.runs}) == len(spec.runs)
    # stable: the same spec again, and more seeds keep the existing runs' ids
    assert [r.run_id for r in parse_spec(GRID).runs] == [r.run_id for r in spec.runs]
    more = parse_spec(GRID.replace("seeds: 3", "seeds: [0, 1, 2, 3]"))
    assert {r.run_id for r in spec.runs} < {r.run_id for r in more.runs}
    # the sweep's name is not part of a run's identity
    renamed = parse_spec(GRID.replace("name: grid", "name: other"))
    assert [r.run_id for r in renamed.runs] == [r.run_id for r in spec.runs]


def test_a_variant_steps_overrides_the_budget_on_every_env():
    spec = parse_spec(GRID.replace("ppo-slow: {algo: ppo, lr: 1e-4, eval_every: 2500}",
                                   "ppo-slow: {algo: ppo, lr: 1e-4, eval_every: 2500, steps: 3000}"))
    by = {(r.variant, r.env, r.seed): r for r in spec.runs}
    assert by["ppo-slow", "CartPole-v1", 0].steps == by["ppo-slow", "Pendulum-v1", 0].steps == 3000
    assert by["ppo", "Pendulum-v1", 0].steps == 4000 and by["ppo", "CartPole-v1", 0].steps == 5000
    assert "steps" not in by["ppo-slow", "CartPole-v1", 0].overrides
    assert resolve(by["ppo-slow", "CartPole-v1", 0].run_spec("grid"))["steps"] == 3000


def test_variants_with_equal_overrides_are_distinct_runs():
    spec = parse_spec(VALID.replace("ppo: {}", "ppo: {}\n  ppo2: {algo: ppo}"))
    assert len({r.run_id for r in spec.runs}) == 4  # the variant name is part of the config


def test_spec_lookup_cwd_then_sweeps_folder(tmp_path):
    assert resolve_spec_path("quickstart.yaml", tmp_path) == ROOT / "sweeps" / "quickstart.yaml"
    assert resolve_spec_path("ablations", tmp_path) == ROOT / "sweeps" / "ablations.yaml"
    (tmp_path / "quickstart.yaml").write_text("x")
    assert resolve_spec_path("quickstart.yaml", tmp_path) == tmp_path / "quickstart.yaml"
    with pytest.raises(FileNotFoundError):
        resolve_spec_path("sub/quickstart.yaml", tmp_path)


@pytest.mark.parametrize("name", ["quickstart.yaml", "ablations.yaml"])
def test_shipped_specs_validate(name):
    spec = parse_spec((ROOT / "sweeps" / name).read_text())
    variants = ["vmpo", "vmpo-no-topk", "vmpo-no-alpha", "vmpo-fixed-eta", "ppo", "trpo", "mpo"]
    assert list(spec.variants) == variants
    ov = {v: spec.variants[v].overrides for v in variants}
    assert ov["vmpo-no-topk"] == {"topk_fraction": 1.0}
    assert ov["vmpo-no-alpha"] == {"trust_region": False}
    assert ov["vmpo-fixed-eta"] == {"learn_eta": False}
    if name == "ablations.yaml":
        assert len(spec.seeds) == 10
        assert {r.suite for r in spec.runs} == {"mujoco", "atari"}
        assert {r.steps for r in spec.runs if r.suite == "mujoco"} == {1_000_000}
    else:
        assert {r.suite for r in spec.runs} == {"classic"}


# -- dry run --------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    before = sorted(os.listdir(tmp_path))
    rc, out, err = cli(tmp_path, "--dry-run", "--executor", "local", "--results", "res",
                       spec_text=GRID)
    assert rc == 0, err
    assert "2 variant(s) x 2 env(s) x 3 seed(s) = 12 runs" in out
    assert "ppo-slow" in out and "Pendulum-v1" in out
    assert "total: 12 runs, 54k env steps" in out
    assert "core-hours" in out and "would launch 12 run(s), skip 0" in out
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["spec.yaml"])


def test_dry_run_of_the_shipped_specs(tmp_path):
    for name in ("quickstart.yaml", "ablations.yaml"):
        rc, out, err = cli(tmp_path, "--dry-run", "--executor", "slurm", spec=name)
        assert rc == 0, err
        assert "core-hours" in out
    assert os.listdir(tmp_path) == []


# -- debug executor ------------------------------------------------------------------------


def test_debug_launch_relaunch_and_status(tmp_path):
    rc, out, err = cli(tmp_path, "--executor", "debug", spec_text=TINY)
    assert rc == 0, err
    folder = tmp_path / "results" / "tiny"
    spec = parse_spec(TINY)
    for r in spec.runs:
        assert read_json(folder / r.run_id / "status.json")["state"] == "done"
        assert read_json(folder / r.run_id / "config.json")["sweep"] == "tiny"
    assert (folder / "spec.yaml").read_text() == textwrap.dedent(TINY)
    man = read_json(folder / "manifest.json")
    assert [(m["run_id"], m["variant"], m["env"], m["seed"], m["state"]) for m in man["runs"]] == [
        (r.run_id, "ppo", "CartPole-v1", r.seed, "done") for r in spec.runs]
    assert all(m["executor"] == "debug" and m["job_id"] for m in man["runs"])
    assert len(man["launches"]) == 1

    rc, out, err = cli(tmp_path, "--executor", "debug", spec_text=TINY)
    assert rc == 0 and "nothing to launch" in out and "skipping 2 done" in out
    assert len(read_json(folder / "manifest.json")["launches"]) == 1

    rc, out, _ = cli(tmp_path, "--status", spec_text=TINY)
    assert rc == 0
    assert "2 runs: 2 done, 0 running, 0 queued, 0 stale, 0 failed, 0 new" in out


def test_debug_failed_run_status_and_retry(tmp_path):
    rc, out, err = cli(tmp_path, "--executor", "debug", spec_text=BROKEN)
    assert rc == 1
    rc, out, _ = cli(tmp_path, "--status", spec_text=BROKEN)
    assert "1 done, 0 running, 0 queued, 0 stale, 1 failed" in out
    failed_line = [line for line in out.splitlines() if line.startswith("  broken CartPole-v1 seed 0")]
    assert failed_line and ("CUDA" in failed_line[0] or "cuda" in failed_line[0]), out

    rc, out, _ = cli(tmp_path, "--executor", "debug", spec_text=BROKEN)
    assert rc == 0 and "not relaunching 1 failed run(s)" in out and "nothing to launch" in out
    rc, out, _err = cli(tmp_path, "--executor", "debug", "--retry-failed", spec_text=BROKEN)
    assert rc == 1 and "launching 1 run(s)" in out
    man = read_json(tmp_path / "results" / "broken" / "manifest.json")
    assert len(man["launches"]) == 2
    assert {m["variant"]: m["state"] for m in man["runs"]} == {"ok": "done", "broken": "failed"}


# -- local executor -------------------------------------------------------------------------


def test_local_launch_failure_status_and_relaunch(tmp_path):
    spec_text = BROKEN.replace("seeds: [0]", "seeds: [0, 1]") + "local: {parallelism: 2}\n"
    rc, out, err = cli(tmp_path, "--executor", "local", spec_text=spec_text)
    assert rc == 1, err
    assert "4/4 finished: 2 done, 2 failed, 0 running, 0 queued" in err
    folder = tmp_path / "results" / "broken"
    man = read_json(folder / "manifest.json")
    assert {(m["variant"], m["state"]) for m in man["runs"]} == {("ok", "done"), ("broken", "failed")}
    assert all(m["executor"] == "local" and m["pid"] == os.getpid() for m in man["runs"])
    assert all(Path(m["log"]).exists() for m in man["runs"])
    failed = [m for m in man["runs"] if m["state"] == "failed"]
    assert all("CUDA" in m["error"] or "cuda" in m["error"] for m in failed)
    assert "Traceback" in Path(failed[0]["log"]).read_text()

    rc, out, err = cli(tmp_path, "--status", spec_text=spec_text)
    assert "4 runs: 2 done, 0 running, 0 queued, 0 stale, 2 failed, 0 new" in out
    assert out.count("log: ") == 2
    rc, out, err = cli(tmp_path, "--executor", "local", spec_text=spec_text)
    assert rc == 0 and "nothing to launch" in out and "skipping 2 done" in out


LONG = """
name: long
seeds: [0]
envs: [CartPole-v1]
budgets:
  classic: {steps: 20000, eval_every: 0, eval_episodes: 1, checkpoint_every: 4096}
runs:
  ppo: {}
"""


def test_local_launcher_killed_leaves_a_stale_run_that_resumes(tmp_path):
    """SIGKILL the local launcher mid-run: its child dies with it (PDEATHSIG), the run
    keeps status "running" at its last checkpoint, counts as stale, and the next launch
    resumes it from the checkpoint with no step written twice."""
    import signal

    (tmp_path / "spec.yaml").write_text(textwrap.dedent(LONG))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "launch.py"), "spec.yaml",
                             "--executor", "local"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    spec = parse_spec(LONG)
    rd = tmp_path / "results" / "long" / spec.runs[0].run_id
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = read_json(rd / "status.json") if (rd / "status.json").exists() else None
        if st and st["step"] >= 4096:
            break
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the child gets SIGTERM from the kernel and exits
    folder = tmp_path / "results" / "long"
    states, _ = state.run_states(folder, spec)
    assert states[0].state == "stale", states[0]
    killed_at = read_json(rd / "status.json")
    assert killed_at["state"] == "running" and 4096 <= killed_at["step"] < 20000

    rc, out, err = cli(tmp_path, "--status", spec="spec.yaml")
    assert "1 stale" in out and "the next launch relaunches them" in out
    rc, out, err = cli(tmp_path, "--executor", "local", spec="spec.yaml")
    assert rc == 0, err
    assert "relaunching 1 stale run(s)" in out and "launching 1 run(s)" in out
    assert read_json(rd / "status.json")["state"] == "done"
    log = Path(state.manifest_entries(folder)[spec.runs[0].run_id]["log"]).read_text()
    assert f"resuming from its checkpoint (last status: running at step {killed_at['step']})" in log
    rows = metric_rows(rd)
    assert len(rows) == len(set(rows)), "a step was written twice"
    steps = [s for s, _ in rows]
    assert steps == sorted(steps) and steps[-1] >= 20000

def test_a_second_process_does_not_train_a_run_being_trained(tmp_path, monkeypatch):
    from sweeps import job
    from sweeps.job import _lock, run_task

    monkeypatch.setattr(job, "LOCK_WAIT_S", 0.5)
    spec = parse_spec(TINY)
    task = spec.runs[0].task("tiny", tmp_path / "tiny" / spec.runs[0].run_id)
    held = _lock(task)
    try:
        t0 = time.monotonic()
        assert run_task(task)["state"] == "busy"
        assert time.monotonic() - t0 >= 0.5  # it waited for the holder to let go
        assert not (tmp_path / "tiny" / spec.runs[0].run_id).exists()
    finally:
        held.close()


def test_a_run_waits_for_a_process_that_is_letting_go_of_it(tmp_path):
    """A relaunch right after a kill: the old process, still stopping, holds the run's
    lock for a moment; the new one waits for it instead of skipping the run."""
    import threading

    from sweeps.job import _lock

    spec = parse_spec(TINY)
    task = spec.runs[0].task("tiny", tmp_path / "tiny" / spec.runs[0].run_id)
    held = _lock(task)
    threading.Timer(0.4, held.close).start()
    t0 = time.monotonic()
    mine = _lock(task, wait_s=30)
    assert mine is not None and 0.4 <= time.monotonic() - t0 < 10
    mine.close()


# -- run states -----------------------------------------------------------------------------


def test_slurm_job_states_drive_queued_running_and_stale(tmp_path, monkeypatch):
    spec = parse_spec(VALID.replace("seeds: 2", "seeds: 4"))
    folder = tmp_path / "v"
    folder.mkdir()
    ids = ["41_0", "41_1", "41_2", "41_3"]
    state.write_manifest(folder, spec, updates={
        r.run_id: {"executor": "slurm", "job_id": j} for r, j in zip(spec.runs, ids)})
    from algos.results import RunDir

    for r in spec.runs[1:3]:
        (folder / r.run_id).mkdir()
        RunDir(folder / r.run_id).write_status("running", 100)
    squeue = {"41_1": "RUNNING", "41_[2-3%2]": "PENDING"}
    monkeypatch.setattr(state, "slurm_job_states", lambda ids: squeue)
    monkeypatch.setattr(state, "slurm_final_states", lambda ids: {"41_0": "CANCELLED"})
    states, warnings = state.run_states(folder, spec)
    # 41_0: gone before it started; 41_1 running; 41_2 requeued (pending, had started); 41_3 queued
    assert [s.state for s in states] == ["stale", "running", "queued", "queued"]
    assert "job 41_0 gone (CANCELLED)" in states[0].error and not warnings

    # a failure older than the job that --retry-failed submitted is not a failure (yet)
    r3 = spec.runs[3]
    (folder / r3.run_id).mkdir()
    RunDir(folder / r3.run_id).write_status("failed", 0, "RuntimeError: boom")
    state.write_manifest(folder, spec, updates={r3.run_id: {"submitted_ts": 0}})
    assert state.run_states(folder, spec)[0][3].state == "failed"
    state.write_manifest(folder, spec, updates={r3.run_id: {"submitted_ts": time.time() + 1}})
    assert state.run_states(folder, spec)[0][3].state == "queued"

    def unreachable(ids):
        raise state.SchedulerUnavailable("squeue failed: connection refused")

    monkeypatch.setattr(state, "slurm_job_states", unreachable)
    states, warnings = state.run_states(folder, spec)
    assert [s.state for s in states] == ["queued", "running", "running", "queued"]
    assert "count as alive" in warnings[0]
    monkeypatch.setattr(state, "slurm_job_states", lambda ids: {})
    assert [s.state for s in state.run_states(folder, spec)[0]] == ["stale", "stale", "stale", "failed"]


def test_a_relaunched_stale_run_is_queued_until_it_restarts(tmp_path):
    """A local launcher relaunches a run that a killed session left at step 100: until a
    slot frees and the run writes status.json again, it is queued (resuming), not running."""
    from algos.results import RunDir
    from sweeps.plan import status_text

    spec = parse_spec(VALID)
    folder = tmp_path / "v"
    folder.mkdir()
    r = spec.runs[0]
    (folder / r.run_id).mkdir()
    RunDir(folder / r.run_id).write_status("running", 100)
    mtime = (folder / r.run_id / "status.json").stat().st_mtime
    me = {"executor": "local", **state.this_process()}
    state.write_manifest(folder, spec, updates={r.run_id: {**me, "submitted_ts": mtime + 1}})
    states, _ = state.run_states(folder, spec)
    assert states[0].state == "queued" and states[0].step == 100
    text = status_text(spec, folder, states, [])
    assert "queued to resume (1; relaunched, waiting for a slot):" in text
    assert "from its checkpoint at or before step 100" in text and "running (" not in text
    state.write_manifest(folder, spec, updates={r.run_id: {**me, "submitted_ts": mtime - 1}})
    assert state.run_states(folder, spec)[0][0].state == "running"  # restarted since


def test_local_liveness_uses_pid_and_start_time():
    me = state.this_process()
    assert state._local_alive(me)
    assert not state._local_alive({**me, "pid_start": "0"})
    assert state._local_alive({**me, "host": "elsewhere", "pid": 1})


def test_auto_executor_falls_back_to_local(monkeypatch):
    from sweeps import executors

    monkeypatch.setattr(executors.shutil, "which", lambda tool: None)
    assert executors.pick_executor("auto") == ("local", "no SLURM here (sbatch is not on PATH)")
    assert executors.pick_executor("debug") == ("debug", "asked for")


def test_a_run_stopped_by_a_signal_is_stale_not_failed(tmp_path):
    """A training process killed (OOM killer, SIGKILL, SIGTERM) with status "running" is
    resumable: the launcher reports it stopped (stale), not failed."""
    from algos.results import RunDir
    from sweeps.executors import _result

    RunDir(tmp_path).write_status("running", 256)
    assert _result(tmp_path, -9) == ("stale", 256, "stopped by SIGKILL at step 256 (its last "
                                                   "checkpoint); the next launch resumes it")
    assert _result(tmp_path, 128 + 15)[:2] == ("stale", 256)  # sweeps.job's SIGTERM exit
    assert _result(tmp_path, 1) == ("failed", 256, "exit status 1")
    RunDir(tmp_path).write_status("failed", 256, "RuntimeError: boom")
    assert _result(tmp_path, -9) == ("failed", 256, "RuntimeError: boom")
