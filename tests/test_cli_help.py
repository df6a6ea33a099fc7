"""`python -m algos.train --help` lists every config field (default, suite defaults, doc);
`--print-config` prints the resolved config as a spec's runs entry, writing nothing."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from algos import train
from algos.config import RunConfig
from algos.train import RunSpec, resolve

ROOT = Path(__file__).resolve().parents[1]


def help_text(*argv) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit) as e:
        train.main([*argv, "--help"])
    assert e.value.code == 0
    return buf.getvalue()


def source_docs(cls) -> dict[str, str]:
    """Field docs straight from the source: the string after each annotated field, over
    the class and its bases (a check independent of algos.config.doc_of)."""
    docs = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):
            continue
        for a, b in zip(body, body[1:]):
            if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                docs[a.target.id] = b.value.value
    return docs


def field_blocks(text: str) -> dict[str, str]:
    """Field name -> its block (the `  name (type) = default` line and the indented lines
    under it), per config section of the help."""
    blocks, name = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (\w+) \(.*\) = .*$", line)
        if m:
            name = m.group(1)
            blocks[name] = line + "\n"
        elif name and line.startswith("      "):
            blocks[name] += line + "\n"
        else:
            name = None
    return blocks


def yaml_text(value) -> str:
    return yaml.safe_dump(list(value) if isinstance(value, tuple) else value,
                          default_flow_style=True).strip().removesuffix("...").strip()


@pytest.mark.parametrize("algo", train.ALGOS)
def test_help_lists_every_field_with_default_suite_defaults_and_doc(algo):
    text = help_text("--algo", algo)
    cls = train.algo_module(algo).Config
    table = getattr(cls, "SUITE_DEFAULTS", {})
    for klass in (cls, RunConfig):
        docs = source_docs(klass)
        algo_part, run_part = text.split(f"({cls.__module__}.Config):")[1].split(
            "(algos.config.RunConfig):")
        section = algo_part if klass is cls else run_part
        blocks = field_blocks(section)
        for f in dataclasses.fields(klass):
            block = blocks[f.name]
            flat = " ".join(block.split())
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert block.splitlines()[0].endswith(f"= {yaml_text(default)}"), block
            assert " ".join(docs[f.name].split()) in flat, (f.name, block)
            for key, values in table.items():  # RunConfig fields too: num_envs per suite
                if f.name in values:
                    assert f"{key}: {yaml_text(values[f.name])}" in flat, (f.name, key, block)
            if not any(f.name in v for v in table.values()):
                assert "suite defaults" not in block
        assert set(blocks) == {f.name for f in dataclasses.fields(klass)}


def test_help_shows_a_suite_default_as_the_resolved_config_has_it():
    block = field_blocks(help_text("--algo", "vmpo"))["epochs"]
    assert "suite defaults: Pendulum-v1: 4" in block
    assert resolve(RunSpec("vmpo", "Pendulum-v1", 0, 10))["config"]["epochs"] == 4


def test_help_without_an_algorithm_names_them_and_says_to_pass_one():
    res = subprocess.run([sys.executable, "-m", "algos.train", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    assert "algorithms: " + ", ".join(train.ALGOS) in res.stdout
    assert "Pass --algo NAME with --help" in res.stdout
    assert "topk_fraction" not in res.stdout


def test_help_with_an_unknown_algorithm_says_which_are_valid():
    assert f"unknown --algo 'sac'; valid: {', '.join(train.ALGOS)}" in help_text("--algo", "sac")


def print_config(*argv) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = train.main([*argv, "--print-config"])
    return code, buf.getvalue()


def test_print_config_is_a_spec_entry_that_gives_the_same_run(tmp_path, snapshot, monkeypatch):
    from sweeps.spec import parse_spec

    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    argv = ["--algo", "vmpo", "--env", "Pendulum-v1", "--seed", "4", "--steps", "30000",
            "--variant", "vmpo-lr", "--set", "lr=3e-3", "--set", "hidden=[32, 32]",
            "--set", "eval_every=5000", "--out", str(tmp_path / "never")]
    code, out = print_config(*argv)
    assert code == 0 and snapshot(tmp_path) == before  # nothing written, --out untouched
    entry = yaml.safe_load(out)["runs"]["vmpo-lr"]
    resolved = resolve(RunSpec("vmpo", "Pendulum-v1", 4, 30000,
                               {"lr": 3e-3, "hidden": [32, 32], "eval_every": 5000}, "vmpo-lr"))
    assert entry == {"algo": "vmpo", "steps": 30000, **resolved["config"]}
    assert entry["lr"] == 3e-3 and entry["epochs"] == 4 and entry["num_envs"] == 8
    assert resolved["run_id"] in out.splitlines()[0]
    # pasted into a spec it is the same run: the same run_id
    spec_text = ("name: pasted\nseeds: [4]\nenvs: [Pendulum-v1]\n"
                 "budgets: {classic: {steps: 1000}}\n" + out)
    (run,) = parse_spec(spec_text).runs
    assert (run.variant, run.steps, run.run_id) == ("vmpo-lr", 30000, resolved["run_id"])


def test_print_config_needs_no_budget_nor_out():
    code, out = print_config("--algo", "ppo", "--env", "HalfCheetah-v5")
    entry = yaml.safe_load(out)["runs"]["ppo"]
    assert code == 0 and "steps" not in entry
    assert entry["lr"] == resolve(RunSpec("ppo", "HalfCheetah-v5", 0, 1))["config"]["lr"]


def test_print_config_reports_a_bad_set_as_a_usage_error(capsys):
    assert train.main(["--algo", "ppo", "--env", "CartPole-v1", "--print-config",
                       "--set", "clip=0.1"]) == 2
    err = capsys.readouterr()
    assert "clip_coef" in err.err and err.out == ""


def test_training_still_requires_steps_and_out(capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--algo", "ppo", "--env", "CartPole-v1"])
    assert e.value.code == 2
    assert "required: --steps, --out" in capsys.readouterr().err
