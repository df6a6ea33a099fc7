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
