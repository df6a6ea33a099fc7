"""Config dataclasses: typed overrides, per-suite defaults, and errors that name the key.

Every algorithm's config is a dataclass whose fields carry a one-line doc (the string
literal right under the field, read by `field_docs`) and whose defaults cite their
source. A config class may carry `SUITE_DEFAULTS: dict[suite, dict[field, value]]`:
defaults that differ per suite (each entry cites its source in a comment).

`RunConfig` holds what is not the algorithm's: envs, evaluation, checkpoints, device.
A key in an algorithm's SUITE_DEFAULTS that names a RunConfig field (e.g. `num_envs`)
sets the run's default for that algorithm and suite.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml


class ConfigError(ValueError):
    """Bad configuration: `path` names the key (e.g. `runs.vmpo.topk_fraction`)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def under(self, prefix: str) -> "ConfigError":
        """The same error with `prefix.` in front of its key path."""
        return ConfigError(f"{prefix}.{self.path}" if self.path else prefix, self.message)


@dataclass
class RunConfig:
    """Settings of a training run that are not the algorithm's."""

    num_envs: int = 1
    """Parallel environments in the training vector env (per-suite defaults come from the algorithm)."""
    eval_every: int = 10_000
    """Evaluate every this many agent steps; 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Episodes of the deterministic policy per evaluation, on separate eval envs."""
    checkpoint_every: int = 50_000
    """Write checkpoint.pt every this many agent steps (and at the end); 0: only at the end."""
    device: str = "auto"
    """torch device: "auto" takes CUDA when present, else the CPU; or "cpu", "cuda", "cuda:1"."""
    torch_threads: int = 1
    """torch intra-op threads; one is fastest for small MLPs and lets runs share cores."""
    vectorization: str = "auto"
    """Vector env: "auto" (ale-py's for Atari, sync otherwise), "sync" or "async"."""


def doc_of(cls: type) -> dict[str, str]:
    """Field docs: the string literal that follows each annotated field in the class body
    (inherited fields included, a subclass's doc winning)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        docs.update(_own_docs(klass))
    return docs


def _own_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    names = {bool: "a bool", int: "an int", float: "a float", str: "a string"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (tuple, list):
        return "a list"
    return getattr(tp, "__name__", str(tp))


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def coerce(tp: Any, value: Any, path: str, from_string: bool = False) -> Any:
    """Check `value` against the annotation `tp`; a string from the command line is first
    read as YAML (so "3e-4", "true", "null" work). Raises ConfigError naming `path`."""
    if from_string and isinstance(value, str) and tp is not str:
        try:
            value = yaml.safe_load(value) if value != "" else value
        except yaml.YAMLError:
            pass
    if tp in (int, float) and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        # PyYAML (YAML 1.1) reads "3e-4" and "1e6" as strings; researchers write them so
        value = float(value)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(arg, value, path)
            except ConfigError:
                continue
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            (inner, *_rest) = typing.get_args(tp) or (Any,)
            items = [coerce(inner, v, f"{path}[{i}]") if inner is not Any else v
                     for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # 1e6 in YAML is a float; a whole one is a fine step count
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            raise ConfigError(path, f"expected a finite float, got {value!r}")
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    got = f'"{value}"' if isinstance(value, str) else repr(value)
    raise ConfigError(path, f"expected {_type_name(tp)}, got {got}")


def unknown_key(path: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(
        f"{path}.{key}" if path else key,
        f"unknown key{hint}; valid keys: {', '.join(sorted(valid))}",
    )


def build(cls: type, overrides: dict[str, Any], path: str = "", from_string: bool = False,
          base: dict[str, Any] | None = None) -> Any:
    """`cls(**base, **overrides)` with every key and type checked; errors name `path.key`."""
    types_ = field_types(cls)
    values = dict(base or {})
    for key, value in overrides.items():
        if key not in types_:
            raise unknown_key(path, key, list(types_))
        values[key] = coerce(types_[key], value, f"{path}.{key}" if path else key, from_string)
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ConfigError as e:
            raise e.under(path) if path else e
    return obj


def as_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


# -- describing a config: `--help` and `--print-config` ------------------------------


def type_label(tp: Any) -> str:
    """A short name of an annotation: `float`, `int | None`, `"nstep" | "gae"`, `list of int`."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) if not isinstance(a, str) else f'"{a}"' for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_label(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if origin in (tuple, list):
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {type_label(inner[0])}" if inner else "list"
    return getattr(tp, "__name__", str(tp))


def _value_text(value: Any) -> str:
    """A value as it is written after `--set key=` (YAML: true, null, [64, 64], 0.0003)."""
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


@dataclass
class FieldHelp:
    """One config field as `--help` shows it. `overrides`: (suite or env id, value) from
    the algorithm's SUITE_DEFAULTS, in the table's order."""

    name: str
    type: str
    default: str
    doc: str
    overrides: list[tuple[str, str]]


def describe_fields(cls: type, suite_defaults: dict[str, dict] | None = None) -> list[FieldHelp]:
    """Every field of the dataclass `cls` with its type, default, one-line doc (`doc_of`)
    and the SUITE_DEFAULTS entries (`suite_defaults`, default: cls's own) that set it."""
    table = getattr(cls, "SUITE_DEFAULTS", {}) if suite_defaults is None else suite_defaults
    docs, hints = doc_of(cls), field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        out.append(FieldHelp(f.name, type_label(hints[f.name]), _value_text(default),
                             docs.get(f.name, ""),
                             [(k, _value_text(v[f.name])) for k, v in table.items() if f.name in v]))
    return out


def format_fields(title: str, fields_: list[FieldHelp], width: int = 100) -> str:
    """`--help`'s listing of `fields_`: per field a line `name (type) = default`, the suite
    overrides on the next (`mujoco: 8; atari: 8`), then the doc, wrapped."""
    lines = [title]
    for f in fields_:
        lines.append(f"  {f.name} ({f.type}) = {f.default}")
        if f.overrides:
            lines.extend(textwrap.wrap("; ".join(f"{k}: {v}" for k, v in f.overrides), width,
                                       initial_indent="      suite defaults: ",
                                       subsequent_indent="        ", break_on_hyphens=False,
                                       break_long_words=False))
        if f.doc:
            # no breaks inside words: "multi-task", "Pendulum-v1" and 1e-3 stay whole
            lines.extend(textwrap.wrap(f.doc, width, initial_indent="      ",
                                       subsequent_indent="      ", break_on_hyphens=False,
                                       break_long_words=False))
    return "\n".join(lines)


def to_yaml(obj: Any) -> str:
    """Block-style YAML of a mapping in its own key order (lists of numbers inline), which
    `yaml.safe_load` and the sweep spec read back as the same values."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _list(dumper, data):
        flow = all(not isinstance(x, (dict, list, tuple)) for x in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(list, _list)
    _Dumper.add_representer(tuple, _list)
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10**6)
