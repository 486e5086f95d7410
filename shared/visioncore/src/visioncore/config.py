"""Structured configs: dataclass schemas filled from YAML files and dotted command-line overrides (OmegaConf).

A package ships its configs as ``src/<package>/configs/<name>.yaml``; users pick one by name (``--config voc``) or by
path (``--config my.yaml``) and override single values (``--set train.lr=1e-4``). The dataclass is the schema: an
unknown key or a value of the wrong type is a one-line ``ConfigError`` naming the key.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "add_config_args",
    "config_from_args",
    "config_names",
    "in_range",
    "load_config",
    "one_of",
    "positive",
    "positive_fields",
    "save_config",
    "to_dict",
]


class ConfigError(ValueError):
    """A config that cannot be used: unknown name, unknown key, wrong type, bad YAML."""


def config_names(package: str) -> list[str]:
    """Names of the configs shipped inside ``package`` (``<package>/configs/*.yaml``)."""
    folder = resources.files(package) / "configs"
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _resolve(name_or_path: str | Path, package: str | None) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    if package is None:
        raise ConfigError(f"config {name_or_path!r} is not a file and no package was given to look it up in")
    candidate = resources.files(package) / "configs" / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = ", ".join(config_names(package)) or "none"
        raise ConfigError(f"unknown config {name_or_path!r} for {package} (known: {known})")
    return Path(str(candidate))


def _describe(err: OmegaConfBaseException, source: str) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    # OmegaConf messages span several lines (with "full_key:", "object_type=" details); keep the first one.
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{source}: key {key!r}: {first}" if key else f"{source}: {first}"


def load_config(
    schema: type[T],
    name_or_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    package: str | None = None,
) -> T:
    """Build a ``schema`` instance from its defaults, then a YAML config, then ``key.sub=value`` overrides."""
    merged: DictConfig = OmegaConf.structured(schema)
    if name_or_path is not None:
        path = _resolve(name_or_path, package)
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except OmegaConfBaseException as err:
            raise ConfigError(_describe(err, str(path))) from None
        except Exception as err:  # YAML syntax errors come from the yaml parser
            raise ConfigError(f"{path}: cannot parse YAML: {str(err).splitlines()[0]}") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise ConfigError(_describe(err, f"override {item!r}")) from None
    try:
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        # a ConfigError raised by a schema's __post_init__ arrives wrapped; show its own message
        cause = err.__cause__ or err.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(_describe(err, "config")) from None


def add_config_args(parser: argparse.ArgumentParser, default: str | None = "tiny") -> None:
    """``--config NAME|PATH`` (a shipped config's name or a YAML file) and repeated ``--set key.sub=value``."""
    parser.add_argument(
        "--config", default=default, help=f"shipped config name or YAML path (default: {default})"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.lr=1e-4 (repeatable)",
    )


def config_from_args(schema: type[T], args: argparse.Namespace, *, package: str) -> T:
    """The config a CLI verb asked for with ``add_config_args``'s flags."""
    return load_config(schema, args.config, args.overrides, package=package)


def positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Refuse a count or size that must be > 0 (>= 0 with ``allow_zero``): call from a schema's ``__post_init__``."""
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def positive_fields(section: str, obj: Any, *fields: str, allow_zero: bool = False) -> None:
    """``positive`` for several fields of one schema, named ``section.field`` in the error (``field`` at top level)."""
    for field in fields:
        positive(f"{section}.{field}" if section else field, getattr(obj, field), allow_zero=allow_zero)


def one_of(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Refuse a value outside a fixed set of choices (a mode, a backbone name): call from ``__post_init__``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def in_range(name: str, value: float, low: float, high: float) -> None:
    """Refuse a ratio or probability outside ``[low, high]``: call from a schema's ``__post_init__``."""
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a dataclass config (for logging and config.json)."""
    if dataclasses.is_dataclass(cfg):
        return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a config as YAML (the exact settings of a run, saved next to its outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg))))
    return path
