"""Reading run directories: the fast eval reader, configs, manifests, sweep discovery."""

import json

import numpy as np
import pytest

from algos.results import EVAL_RETURN, RunDir, parse_metrics
from analysis.load import UsageError, find_sweeps, load, read_eval, read_manifest
from analysis.synthetic import linear_evals, run_config, write_run, write_sweep

TRICKY = (
    "step,metric,value,wall_time\n"
    "0,loss/policy,0.5,0.100\n"
    "10,eval/return,1.5,0.200\n"
    "10,eval/return_std,9.0,0.200\n"          # a longer name that starts the same
    "10,x_eval/return,7.0,0.200\n"            # a name that ends the same
    "20,eval/return,-3e-05,0.300\n"
    "30,eval/return,nan,0.400\n"
    "oops,eval/return,2.0,0.500\n"            # not an integer step (parse_metrics raises)
    "40,eval/return,2.0,0.5,extra\n"          # five fields
    "50,eval/return,4.25,0.600\n"
    "60,eval/return,99"                        # partial last line (killed mid-write)
)


def _reference(text):
    rows = []
    for line in text.split("\n"):
        try:
            rows += parse_metrics(line + "\n")
        except ValueError:
            pass  # parse_metrics raises on a bad step; read_eval skips the row
    return [(s, v) for s, m, v, _ in rows if m == EVAL_RETURN]


def test_read_eval_matches_parse_metrics(tmp_path):
    f = tmp_path / "metrics.csv"
    f.write_text(TRICKY)
    steps, values = read_eval(f)
    want = _reference(TRICKY)
    assert steps == [s for s, _ in want] == [10, 20, 30, 50]
    np.testing.assert_array_equal(values, [v for _, v in want])
    assert values[0] == 1.5 and values[1] == -3e-05 and np.isnan(values[2])
    assert read_eval(tmp_path / "absent.csv") == ([], [])


def test_synthetic_run_reads_back_with_algos_results(tmp_path):
    cfg = run_config(sweep="s", algo="vmpo", variant="vmpo-no-topk", suite="atari",
                     env="ALE/Pong-v5", seed=3, steps=1000, frameskip=4)
    evals = linear_evals(12.5, 1000, 4, start=-21.0)
    rd = RunDir(write_run(tmp_path / "s", cfg, evals, train_logs_per_eval=2,
                          partial_tail=True))
    assert rd.read_config() == cfg
    assert rd.read_status() == {"state": "done", "step": 1000, "error": None}
    rows = rd.read_metrics()
    assert [(s, v) for s, m, v, _ in rows if m == EVAL_RETURN] == evals
    assert len(rows) == 4 * (2 * 10 + 3)  # 2 log steps of 10 metrics + 3 eval rows, x4
    assert read_eval(rd.metrics_path) == ([s for s, _ in evals], [v for _, v in evals])


def test_load_table(tmp_path):
    write_sweep(tmp_path, "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={"ALE/Pong-v5": "atari"}, seeds=[1, 0], n_evals=5, steps=500,
                final=lambda v, e, s: 10.0 * s + (1 if v == "ppo" else 2),
                frameskip={"ALE/Pong-v5": 4}, states={("ppo", "ALE/Pong-v5", 1): "partial"})
    runs = load([tmp_path])
    t = runs.table
    assert list(t["variant"]) == ["ppo", "ppo", "vmpo", "vmpo"]
    assert list(t["seed"]) == [0, 1, 0, 1]
    assert list(t["score"]) == [1.0, 11.0, 2.0, 12.0]
    assert list(t["score_step"]) == [500] * 4
    assert list(t["frameskip"]) == [4] * 4
    assert list(t["state"]) == ["done"] * 4
    steps, values = runs.curve(1)
    np.testing.assert_array_equal(steps, [100, 200, 300, 400, 500])
    np.testing.assert_allclose(values, [2.2, 4.4, 6.6, 8.8, 11.0])
    assert runs.table["commit"].iloc[0] == "0" * 40
    assert json.loads(runs.table["versions"].iloc[0])["torch"] == "2.13.0"


def test_find_sweeps(tmp_path):
    for name in ("b", "a"):
        write_sweep(tmp_path / "res", name, variants={"vmpo": "vmpo"},
                    envs={"ALE/Pong-v5": "atari"}, seeds=[0], final=lambda *a: 1.0)
    assert [p.name for p in find_sweeps([tmp_path / "res"])] == ["a", "b"]
    assert [p.name for p in find_sweeps([tmp_path / "res" / "b"])] == ["b"]
    with pytest.raises(UsageError, match="not a directory"):
        find_sweeps([tmp_path / "nope"])
    run = next((tmp_path / "res" / "a").iterdir())
    with pytest.raises(UsageError, match="is a run directory"):
        find_sweeps([run])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no sweeps under"):
        find_sweeps([tmp_path / "empty"])


@pytest.mark.parametrize("field,value,match", [
    ("seed", "3", "field 'seed' must be an integer"),
    ("variant", "", "field 'variant' must be a non-empty string"),
    ("env", None, "field 'env' must be a non-empty string"),
    ("frameskip", 0, "field 'frameskip' must be a positive integer"),
])
def test_bad_config_names_file_and_field(tmp_path, field, value, match):
    sd = write_sweep(tmp_path, "sw", variants={"vmpo": "vmpo"}, envs={"ALE/Pong-v5": "atari"},
                     seeds=[0], final=lambda *a: 1.0)
    f = next(sd.iterdir()) / "config.json"
    cfg = json.loads(f.read_text())
    cfg[field] = value
    f.write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match=match) as e:
        load([sd])
    assert str(f) in str(e.value)


def test_missing_config_field(tmp_path):
    sd = write_sweep(tmp_path, "sw", variants={"vmpo": "vmpo"}, envs={"ALE/Pong-v5": "atari"},
                     seeds=[0], final=lambda *a: 1.0)
    f = next(sd.iterdir()) / "config.json"
    cfg = json.loads(f.read_text())
    del cfg["algo"]
    f.write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="missing field 'algo'"):
        load([sd])


@pytest.mark.parametrize("form", ["csv", "json", "json-list", "json-dict", "sweeps"])
def test_manifest_forms(tmp_path, form):
    sd = write_sweep(tmp_path, "sw", variants={"vmpo": "vmpo"}, envs={"ALE/Pong-v5": "atari"},
                     seeds=[0, 1], final=lambda *a: 1.0, manifest="csv" if form == "csv" else "json")
    if form in ("json-list", "json-dict", "sweeps"):
        runs = json.loads((sd / "manifest.json").read_text())["runs"]
        if form == "json-list":
            obj = runs
        elif form == "json-dict":
            obj = {r.pop("run_id"): r for r in runs}
        else:  # as sweeps/state.py writes it
            for r in runs:
                r.update(steps=1000, executor="local", job_id=None, state="new", step=0,
                         error=None)
            obj = {"sweep": "sw", "spec": "spec.yaml", "updated": "2026-11-22T19:00:00",
                   "launches": [{"executor": "local"}], "runs": runs}
        (sd / "manifest.json").write_text(json.dumps(obj))
        (sd / "logs").mkdir()
        (sd / "locks").mkdir()
    man, note = read_manifest(sd)
    assert note is None
    assert list(man["seed"]) == [0, 1]
    assert list(man["variant"]) == ["vmpo", "vmpo"]
    assert all(man["run_id"] != "")
    assert [p.name for p in find_sweeps([tmp_path])] == ["sw"]
    assert len(load([sd]).table) == 2  # logs/ and locks/ are not run directories


def test_unusable_manifest_is_a_note(tmp_path):
    sd = tmp_path / "sw"
    sd.mkdir()
    (sd / "manifest.csv").write_text("name,count\nx,1\n")
    man, note = read_manifest(sd)
    assert man is None and "no column 'variant'" in note
