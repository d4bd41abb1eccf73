"""Job configs: one YAML file per job, plus ``key.sub=value`` overrides, into typed dataclasses.

Validation happens before any work starts; errors name the field and what it allows.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from emoray import storage

T = TypeVar("T")


class ConfigError(ValueError):
    """A config field is missing, unknown, or has a value it does not allow."""


def load_yaml(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """Read a YAML config (none: start empty) and apply ``a.b=value`` overrides (values parsed
    as YAML)."""
    try:
        data = (yaml.safe_load(Path(path).read_text()) or {}) if path else {}
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a mapping")
        node[leaf] = yaml.safe_load(value)
    return data


def build(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking names and types (nested dataclasses too)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown field(s) {unknown}; "
                          f"allowed: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: required field is missing")
            continue
        kwargs[name] = _coerce(hints[name], data[name], path)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check:
        try:
            check()
        except ConfigError as e:  # name the field from the top: "audio.epochs", not "epochs"
            if where and not str(e).startswith(where):
                raise ConfigError(f"{where}.{e}") from None
            raise
    return obj


def check_uri(field: str, uri: str) -> None:
    """A location field: a local path or ``s3://bucket/prefix``, without credentials or ``..``
    in S3 keys (``storage.check_uri``)."""
    try:
        storage.check_uri(uri)
    except ValueError as e:
        raise ConfigError(f"{field}: {e}") from None


def check_name(field: str, name: str) -> None:
    """A name that becomes one path segment under an output: no ``/``, not ``.`` or ``..``."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"{field}: {name!r} must be a single folder name (no '/', not '..')")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, path)
            except ConfigError:
                continue
        allowed = " or ".join(_describe(a) for a in args)
        raise ConfigError(f"{path}: expected {allowed}, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        out = [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or
                                          (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
    return value


def _describe(tp: Any) -> str:
    """What a type allows, for messages: ``bool``, ``one of ['auto']``, ``null``..."""
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return f"one of {list(typing.get_args(tp))}"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))
