"""Bad input, table-driven, across the three command lines: `algos.train`,
`sweeps/launch.py` and `analysis/report.py` (each called in-process as `main(argv)`).

Every case must exit with status 2, print a message naming the field or file at fault
and what would be valid (the `needles`), print no traceback, and leave the filesystem
as it was: a snapshot of the whole temp folder (paths, kinds, sizes, modes, mtimes, file
hashes; folders included, so a folder made and removed again counts) is taken before and
after. A damaged run directory in a sweep is not a usage error of the launcher: those
cases (a failed status naming the file) are tested at the end.
"""

from __future__ import annotations

import io
import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from algos import train
from algos.results import RunDir, read_json
from algos.train import RunSpec, run
from analysis import report
from analysis.synthetic import write_sweep
from sweeps import launch
from sweeps.spec import parse_spec

# -- algos.train -------------------------------------------------------------------------

# The table's run: a PPO run stopped (as by SIGTERM: status still "running") right after
# its checkpoint at step 256 of 512, so the command below resumes it.
OVERRIDES = {"num_envs": 2, "rollout_length": 64, "eval_every": 256, "eval_episodes": 1,
             "checkpoint_every": 128}
TRAIN = ["--algo", "ppo", "--env", "CartPole-v1", "--seed", "0", "--steps", "512",
         "--no-progress", *[a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={v}")]]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run directory stopped at its checkpoint at step 256 (status "running")."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    real_save = train._save

    def save_then_stop(rd, learner, step, *a):
        real_save(rd, learner, step, *a)
        if step == 256:
            rd.write_status("running", step)
            raise SystemExit(143)  # what the SIGTERM handler of sweeps.job raises

    mp = pytest.MonkeyPatch()
    mp.setattr(train, "_save", save_then_stop)
    try:
        with pytest.raises(SystemExit):
            run(RunSpec("ppo", "CartPole-v1", 0, 512, dict(OVERRIDES)), out)
    finally:
        mp.undo()
    assert RunDir(out).read_status() == {"state": "running", "step": 256, "error": None,
                                        "resumed_at": []}
    return out


def _copy_run(tmp_path, stopped_run) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(stopped_run, dst)
    return dst


def _damage(name, how):
    def setup(tmp_path, stopped_run, request=None):
        rd = _copy_run(tmp_path, stopped_run)
        how(rd / name)
        return {"out": str(rd), "file": str(rd / name)}
    return setup


def _truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _metrics_cut_before_checkpoint(path: Path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(x for x in lines if x.startswith("step,") or int(x.split(",")[0]) <= 128))


def _other_config(tmp_path, stopped_run, request=None):
    rd = _copy_run(tmp_path, stopped_run)
    cfg = json.loads((rd / "config.json").read_text())
    cfg["config"]["lr"] = 0.5
    (rd / "config.json").write_text(json.dumps(cfg))
    return {"out": str(rd)}


def _a_file(tmp_path, stopped_run, request=None):
    (tmp_path / "notes.txt").write_text("not a folder")
    return {"out": str(tmp_path / "notes.txt"), "under": str(tmp_path / "notes.txt" / "run")}


def _read_only(tmp_path, stopped_run, request):
    ro = request.getfixturevalue("read_only_dir")
    return {"out": str(ro / "run"), "ro": str(ro)}


def _fresh(tmp_path, stopped_run, request=None):
    return {"out": str(tmp_path / "new-run")}


def _with(argv: list[str], **sets) -> list[str]:
    """TRAIN with some options replaced (`--seed`, `--steps`, ...) or --set added."""
    out = list(argv)
    for key, value in sets.items():
        flag = "--" + key.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += ["--set", f"{key}={value}"]
    return out


T = TRAIN
TRAIN_CASES = [
    # id, setup, argv (before --out), needles
    ("unknown-algo", _fresh, _with(T, algo="ppq"), ["algo", "unknown algorithm 'ppq'; valid: ppo, trpo, vmpo, mpo"]),
    ("unknown-env", _fresh, _with(T, env="CartPol-v1"), ["CartPol-v1", "CartPole-v1"]),
    ("unknown-set-key", _fresh, _with(T, learning_rate="1e-3"), ["learning_rate: unknown key", "lr"]),
    ("wrong-type", _fresh, _with(T, lr="fast"), ['lr: expected a float, got "fast"']),
    ("wrong-type-int", _fresh, _with(T, eval_every="1.5"), ["eval_every: expected an int, got 1.5"]),
    ("set-without-value", _fresh, T + ["--set", "lr"], ["--set: expected key=value, got 'lr'"]),
    ("unknown-literal", _fresh, _with(T, algo="vmpo") + ["--set", "advantage=td"],
     ["advantage: expected one of 'nstep', 'gae'"]),
    ("zero-budget", _fresh, _with(T, steps="0"), ["steps: expected a positive int, got 0"]),
    ("negative-budget", _fresh, _with(T, steps="-512"), ["steps: expected a positive int, got -512"]),
    ("not-an-int-budget", _fresh, _with(T, steps="1e9x"), ["--steps", "invalid int value: '1e9x'"]),
    ("negative-seed", _fresh, _with(T, seed="-1"), ["seed: expected an int from 0 to 2**32 - 1, got -1"]),
    ("seed-too-large", _fresh, _with(T, seed=str(2**32)), ["seed: expected an int from 0 to 2**32 - 1"]),
    ("zero-envs", _fresh, _with(T, num_envs="0"), ["num_envs: expected a positive int, got 0"]),
    ("zero-eval-episodes", _fresh, _with(T, eval_episodes="0"), ["eval_episodes: expected a positive int"]),
    ("negative-checkpoint-every", _fresh, _with(T, checkpoint_every="-1"),
     ["checkpoint_every: expected an int >= 0 (0: only at the end), got -1"]),
    ("unknown-vectorization", _fresh, _with(T, vectorization="fast"),
     ["vectorization: expected one of auto, sync, async", "'fast'"]),
    ("unknown-device", _fresh, _with(T, device="gpu"), ['device: expected "auto", "cpu", "cuda"', "'gpu'"]),
    ("zero-threads", _fresh, _with(T, torch_threads="0"), ["torch_threads: expected a positive int, got 0"]),
    ("non-finite", _fresh, _with(T, lr=".inf"), ["lr: expected a finite float"]),
    ("out-is-a-file", _a_file, T, ["out: {out} is a file, not a folder", "expected a folder"]),
    ("out-under-a-file", _a_file, T + ["--out", "{under}"], ["{out} is a file, so {under} cannot be a folder"]),
    ("out-read-only", _read_only, T, ["out: {ro} is on a read-only file system"]),
    ("another-config", _other_config, T, ["{out} holds a run of another config (differs in config.lr)"]),
    ("checkpoint-truncated", _damage("checkpoint.pt", _truncate), T,
     ["{file}: cannot be loaded", "expected a checkpoint algos.train wrote (version 1)"]),
    ("checkpoint-not-torch", _damage("checkpoint.pt", lambda p: p.write_bytes(b"PK\x03\x04 garbage")), T,
     ["{file}: cannot be loaded", "delete checkpoint.pt and metrics.csv"]),
    ("checkpoint-foreign", _damage("checkpoint.pt", lambda p: torch.save({"weights": [1]}, p)), T,
     ["{file}: is not a version-1 checkpoint (got None)"]),
    ("metrics-bad-row", _damage("metrics.csv", lambda p: p.write_text(
        p.read_text().replace("256,eval/return,", "256,eval/return,oops", 1))), T,
     ["{file}: line ", "is not a valid row", "expected the header step,metric,value,wall_time"]),
    ("metrics-steps-go-back", _damage("metrics.csv", lambda p: p.write_text(
        p.read_text() + "64,loss/total,1.0,0.5\n")), T, ["{file}: line ", "steps never decreasing"]),
    ("metrics-cut-short", _damage("metrics.csv", _metrics_cut_before_checkpoint), T,
     ["{file}: has no row at step 256, the checkpoint's step (its last row is at step 128)"]),
    ("metrics-not-text", _damage("metrics.csv", lambda p: p.write_bytes(b"\xff\xfe\x00garbage\n")), T,
     ["{file}: is not UTF-8 text"]),
    ("status-not-json", _damage("status.json", lambda p: p.write_text('{"state": "runn')), T,
     ["{file}: is not valid JSON", 'expected {"state": "running"|"done"|"failed"']),
    ("status-bad-state", _damage("status.json", lambda p: p.write_text('{"state": "finished", "step": 3}')), T,
     ["{file}: state 'finished' is not one of running, done, failed"]),
    ("status-bad-step", _damage("status.json", lambda p: p.write_text('{"state": "running", "step": -4}')), T,
     ["{file}: step -4 is not an int >= 0"]),
    ("status-bad-resumes", _damage("status.json", lambda p: p.write_text(
        '{"state": "running", "step": 256, "error": null, "resumed_at": [128, "256"]}')), T,
     ["{file}: resumed_at [128, '256'] is not a list of ints > 0", '"resumed_at" (optional)']),
    ("config-not-json", _damage("config.json", lambda p: p.write_text("{")), T,
     ["{file}: is not valid JSON", "expected the JSON object algos.train writes"]),
    ("config-not-an-object", _damage("config.json", lambda p: p.write_text("[1, 2]")), T,
     ["{file}: holds list, not an object"]),
]


# -- sweeps/launch.py -----------------------------------------------------------------------

SPEC = """\
name: v
seeds: 2
envs: [CartPole-v1]
budgets:
  classic: {steps: 1000, eval_every: 0, eval_episodes: 1}
runs:
  ppo: {}
"""


def _spec(change: dict | None = None, text: str | None = None):
    def setup(tmp_path, stopped_run, request=None):
        if text is not None:
            body = text.encode() if isinstance(text, str) else text
        else:
            doc = yaml.safe_load(SPEC)
            for path, value in (change or {}).items():
                *parents, last = path.split(".")
                d = doc
                for p in parents:
                    d = d[p]
                d[last] = value
            body = yaml.safe_dump(doc).encode()
        (tmp_path / "spec.yaml").write_bytes(body)
        (tmp_path / "notes.txt").write_text("a file")
        return {}
    return setup


def _damaged_manifest(tmp_path, stopped_run, request=None):
    _spec()(tmp_path, stopped_run)
    (tmp_path / "results" / "v").mkdir(parents=True)
    (tmp_path / "results" / "v" / "manifest.json").write_text('{"sweep": "v", "runs": [')
    return {"file": str((tmp_path / "results" / "v" / "manifest.json").absolute())}


def _spec_ro(tmp_path, stopped_run, request):
    _spec()(tmp_path, stopped_run)
    return {"ro": str(request.getfixturevalue("read_only_dir"))}


LAUNCH_CASES = [
    ("malformed-yaml", _spec(text="name: v\nseeds: [0, 1\n"), [], ["spec.yaml: invalid YAML at line", "nothing launched"]),
    ("duplicate-key", _spec(text=SPEC + "seeds: 3\n"), [], ["duplicate key 'seeds'", "line 8"]),
    ("not-utf8", _spec(text=b"name: v\xff\xfe\n"), [], ["spec.yaml: not UTF-8 text", "expected a YAML spec"]),
    ("not-a-mapping", _spec(text="- ppo\n- vmpo\n"), [], ["expected a mapping of name, description, seeds"]),
    ("wrong-type-seeds", _spec({"seeds": "three"}), [], ['seeds: expected a count or a list of seeds, got "three"']),
    ("wrong-type-override", _spec({"runs.ppo": {"lr": "fast"}}), [], ['runs.ppo.lr: expected a float, got "fast"']),
    ("unknown-top-key", _spec({"budget": 1}), [], ["budget: unknown key (did you mean budgets?)"]),
    ("unknown-budget-key", _spec({"budgets.classic.step": 10}), [],
     ["budgets.classic.step: unknown key (did you mean steps?)"]),
    ("unknown-algo", _spec({"runs": {"fast": {"algo": "ppq"}}}), [],
     ['runs.fast.algo: unknown algorithm "ppq"; valid: ppo, trpo, vmpo, mpo']),
    ("unknown-value", _spec({"runs.ppo": {"vectorization": "fast"}}), [],
     ["runs.ppo.vectorization: expected one of auto, sync, async"]),
    ("zero-budget", _spec({"budgets.classic.steps": 0}), [],
     ["budgets.classic.steps: expected a positive int (agent env steps), got 0"]),
    ("negative-budget", _spec({"budgets.classic.steps": -1000}), [],
     ["budgets.classic.steps: expected a positive int (agent env steps), got -1000"]),
    ("negative-seed", _spec({"seeds": [0, -1]}), [], ["seeds[1]: expected a seed (an int >= 0), got -1"]),
    ("seed-too-large", _spec({"seeds": [2**32]}), [], ["seeds: expected an int from 0 to 2**32 - 1, got 4294967296"]),
    ("zero-seeds", _spec({"seeds": 0}), [], ["seeds: empty grid: expected a positive count"]),
    ("unknown-env", _spec({"envs": ["CartPol-v1"]}), [], ["envs[0]: ", "CartPole-v1"]),
    ("unknown-suite", _spec({"envs": ["clasic"]}), [], ["envs[0]: ", "classic"]),
    ("unknown-budget-suite", _spec({"budgets": {"clasic": {"steps": 10}}}), [],
     ["budgets.clasic: unknown suite or env; valid: a suite family (atari, classic, minatar, mujoco, gym"]),
    ("zero-parallelism", _spec({"local": {"parallelism": 0}}), [],
     ['local.parallelism: expected a positive int or "auto", got 0']),
    ("bad-slurm-time", _spec({"slurm": {"time": -5}}), [], ["slurm.time: expected minutes (an int)"]),
    ("results-is-a-file", _spec(), ["--results", "notes.txt"],
     ["--results notes.txt: ", "notes.txt is a file, so ", "expected a folder"]),
    ("results-is-a-file-dry-run", _spec(), ["--results", "notes.txt", "--dry-run"], ["notes.txt is a file"]),
    ("results-is-a-file-status", _spec(), ["--results", "notes.txt", "--status"], ["notes.txt is a file"]),
    ("results-read-only", _spec_ro, ["--results", "{ro}/results"], ["{ro} is on a read-only file system"]),
    ("manifest-damaged", _damaged_manifest, [], ["{file}: is not valid JSON", "restore it, or delete it",
                                                  "nothing launched"]),
    ("manifest-damaged-status", _damaged_manifest, ["--status"], ["{file}: is not valid JSON"]),
]


# -- analysis/report.py ----------------------------------------------------------------------

PONG = "ALE/Pong-v5"


def _sweep(damage=None, **kw):
    def setup(tmp_path, stopped_run, request=None):
        sd = write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                         envs={PONG: "atari"}, seeds=[0, 1], final=lambda v, e, s: 1.0 + s,
                         n_evals=3, steps=300, **kw)
        (tmp_path / "notes.txt").write_text("a file")
        run = sorted(p for p in sd.iterdir() if p.is_dir())[0]
        ctx = {"res": str(tmp_path / "res"), "run": str(run)}
        if damage:
            ctx.update(damage(run) or {})
        return ctx
    return setup


def _edit(name, fn):
    def damage(run):
        p = run / name
        p.write_text(fn(p.read_text()))
        return {"file": str(p)}
    return damage


def _empty(tmp_path, stopped_run, request=None):
    (tmp_path / "res").mkdir()
    return {"res": str(tmp_path / "res")}


def _only_manifest(tmp_path, stopped_run, request=None):
    (tmp_path / "res" / "sw").mkdir(parents=True)
    (tmp_path / "res" / "sw" / "manifest.csv").write_text("variant,env,seed\nvmpo,CartPole-v1,0\n")
    return {"res": str(tmp_path / "res")}


def _report_ro(tmp_path, stopped_run, request):
    ctx = _sweep()(tmp_path, stopped_run)
    return {**ctx, "ro": str(request.getfixturevalue("read_only_dir"))}


def _config_field(field, value):
    def damage(run):
        cfg = json.loads((run / "config.json").read_text())
        cfg[field] = value
        (run / "config.json").write_text(json.dumps(cfg))
        return {"file": str(run / "config.json")}
    return damage


R = ["{res}", "--out", "rep", "--reps", "20", "--jobs", "1"]
REPORT_CASES = [
    ("empty-results", _empty, R, ["no sweeps under", "a sweep folder holds run directories"]),
    ("no-run-dirs", _only_manifest, R, ["no run directories under"]),
    ("results-is-a-file", _sweep(), ["notes.txt", "--out", "rep"], ["results path 'notes.txt' is not a directory"]),
    ("results-missing", _sweep(), ["nowhere", "--out", "rep"], ["results path 'nowhere' is not a directory"]),
    ("run-dir-for-sweep", _sweep(), ["{run}", "--out", "rep"], ["is a run directory (it holds config.json)",
                                                               "pass its sweep folder"]),
    ("out-is-a-file", _sweep(), ["{res}", "--out", "notes.txt"], ["--out 'notes.txt' is a file; give a folder"]),
    ("out-read-only", _report_ro, ["{res}", "--out", "{ro}/rep"], ["{ro} is on a read-only file system"]),
    ("nan-final-eval", _sweep(_edit("metrics.csv", lambda t: t.replace("300,eval/return,1.0,", "300,eval/return,nan,"))),
     R, ["no_score (last eval/return is nan)", "--allow-incomplete"]),
    ("damaged-eval-row", _sweep(_edit("metrics.csv", lambda t: t.replace("300,eval/return,1.0,", "300,eval/return,1.0x,"))),
     R, ["metrics.csv line 8 is not a valid eval/return row", "expected step,eval/return,value,wall_time"]),
    ("final-eval-missing", _sweep(_edit("metrics.csv", lambda t: "".join(
        x for x in t.splitlines(keepends=True) if not x.startswith("300,")))),
     R, ["its last eval/return is at step 200, before its budget of 300 steps"]),
    ("metrics-not-text", _sweep(lambda run: {"n": str((run / "metrics.csv").write_bytes(b"\xff\xfe\x00"))}),
     R, ["done but metrics.csv has no eval/return row"]),
    ("status-not-json", _sweep(_edit("status.json", lambda t: t[:5])), R, ["unfinished (status.json is not valid JSON)"]),
    ("status-bad-state", _sweep(_edit("status.json", lambda t: t.replace('"done"', '"finished"'))),
     R, ["status.json: state 'finished' is not one of ('running', 'done', 'failed')"]),
    ("config-not-json", _sweep(_edit("config.json", lambda t: t[:10])), R, ["{file}: not valid JSON"]),
    ("config-wrong-type", _sweep(_config_field("steps", "many")), R,
     ["{file}: field 'steps' must be an integer, got 'many'"]),
    ("config-missing-field", _sweep(_config_field("env", None)), R,
     ["{file}: field 'env' must be a non-empty string, got None"]),
    ("zero-curve-points", _sweep(), R + ["--curve-points", "0"], ["--curve-points must be a positive integer"]),
    ("seed-out-of-range", _sweep(), R + ["--seed", str(2**32)], ["--seed must be in [0, 2**32)"]),
    ("unknown-engine", _sweep(), R + ["--engine", "numba"], ["--engine: invalid choice: 'numba'", "'fast', 'rliable'"]),
]

CASES = ([pytest.param("train", *c[1:], id=f"train-{c[0]}") for c in TRAIN_CASES]
         + [pytest.param("launch", *c[1:], id=f"launch-{c[0]}") for c in LAUNCH_CASES]
         + [pytest.param("report", *c[1:], id=f"report-{c[0]}") for c in REPORT_CASES])


def _fill(text: str, ctx: dict[str, str]) -> str:
    for key, value in ctx.items():
        text = text.replace("{" + key + "}", value)
    return text


def _call(tool: str, argv: list[str]) -> int:
    try:
        if tool == "train":
            return train.main(argv)
        if tool == "launch":
            return launch.main(["spec.yaml", "--executor", "local", *argv])
        return report.main(argv)
    except SystemExit as e:  # argparse
        return e.code


@pytest.mark.parametrize("tool,setup,argv,needles", CASES)
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(
        tool, setup, argv, needles, tmp_path, stopped_run, snapshot, monkeypatch, capsys, request):
    ctx = setup(tmp_path, stopped_run, request)
    argv = [_fill(a, ctx) for a in argv]
    if tool == "train" and "--out" not in argv:
        argv += ["--out", ctx["out"]]
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    rc = _call(tool, argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    for needle in needles:
        assert _fill(needle, ctx) in err, f"{_fill(needle, ctx)!r} not in:\n{err}"
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before, "the filesystem changed"


def test_the_table_covers_at_least_30_inputs_across_the_three_tools():
    tools = [p.values[0] for p in CASES]
    assert len(CASES) >= 30 and {"train", "launch", "report"} == set(tools)
    print(f"bad inputs: {len(CASES)} ({tools.count('train')} train, {tools.count('launch')} "
          f"launch, {tools.count('report')} report)")


def test_the_table_run_resumes_when_nothing_is_damaged(tmp_path, stopped_run, capsys):
    """The control: the table's command on an undamaged copy of its run resumes it."""
    rd = _copy_run(tmp_path, stopped_run)
    assert train.main(TRAIN + ["--out", str(rd)]) == 0, capsys.readouterr().err
    assert RunDir(rd).read_status() == {"state": "done", "step": 512, "error": None,
                                       "resumed_at": [256]}
    steps = sorted({s for s, m, _, _ in RunDir(rd).read_metrics(strict=True) if m == "time/sps"})
    assert steps == list(range(128, 513, 128))


# -- a damaged run directory in a sweep: a failed status naming the file -------------------


def _cli(tmp_path, *args):
    out, err = io.StringIO(), io.StringIO()
    rc = launch.main([str(tmp_path / "spec.yaml"), "--results", str(tmp_path / "results"),
                      "--executor", "debug", *args], out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _sweep_with_stopped_run(tmp_path, stopped_run):
    """A one-run sweep whose run directory is a copy of the stopped run."""
    text = textwrap.dedent("""\
        name: d
        seeds: [0]
        envs: [CartPole-v1]
        budgets:
          classic: {steps: 512, eval_every: 256, eval_episodes: 1, checkpoint_every: 128}
        runs:
          ppo: {num_envs: 2, rollout_length: 64}
        """)
    (tmp_path / "spec.yaml").write_text(text)
    spec = parse_spec(text)
    rd = tmp_path / "results" / "d" / spec.runs[0].run_id
    rd.parent.mkdir(parents=True)
    shutil.copytree(stopped_run, rd)
    cfg = read_json(rd / "config.json")
    cfg["sweep"] = "d"
    (rd / "config.json").write_text(json.dumps(cfg))
    return rd


def test_a_damaged_checkpoint_fails_the_run_naming_it_and_is_not_retried(tmp_path, stopped_run):
    rd = _sweep_with_stopped_run(tmp_path, stopped_run)
    _truncate(rd / "checkpoint.pt")
    damaged = (rd / "checkpoint.pt").read_bytes()
    rc, out, err = _cli(tmp_path)
    assert rc == 1 and "relaunching 1 stale run(s)" in out, out + err
    st = RunDir(rd).read_status()
    assert st["state"] == "failed" and st["step"] == 256
    assert st["error"].startswith(f"{rd / 'checkpoint.pt'}: cannot be loaded")
    assert (rd / "checkpoint.pt").read_bytes() == damaged  # not repaired, not deleted
    rc, out, _ = _cli(tmp_path, "--status")
    assert "1 failed" in out and "checkpoint.pt: cannot be loaded" in out
    rc, out, _ = _cli(tmp_path)
    assert rc == 0 and "not relaunching 1 failed run(s)" in out


def test_a_damaged_status_is_shown_failed_not_overwritten_and_resumes_once_removed(tmp_path, stopped_run):
    rd = _sweep_with_stopped_run(tmp_path, stopped_run)
    (rd / "status.json").write_text('{"state": ')
    rc, out, err = _cli(tmp_path, "--status")
    assert rc == 0 and "1 failed" in out, out + err
    assert f"{rd / 'status.json'}: is not valid JSON" in out and "delete status.json to resume" in out
    rc, out, err = _cli(tmp_path, "--retry-failed")
    assert rc == 1 and (rd / "status.json").read_text() == '{"state": '
    (rd / "status.json").unlink()
    from sweeps.job import run_task  # what a relaunch runs (this process owns the debug jobs)

    task = parse_spec((tmp_path / "spec.yaml").read_text()).runs[0].task("d", rd)
    assert run_task(task)["state"] == "done"
    assert RunDir(rd).read_status() == {"state": "done", "step": 512, "error": None,
                                       "resumed_at": [256]}
    steps = [s for s, m, _, _ in RunDir(rd).read_metrics(strict=True) if m == "time/sps"]
    assert steps == [128, 256, 384, 512]  # resumed at 256: nothing lost, nothing twice
