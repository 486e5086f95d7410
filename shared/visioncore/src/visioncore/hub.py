"""Local-only ``save_pretrained`` / ``from_pretrained`` for plain ``nn.Module``s.

``PretrainedMixin`` is huggingface_hub's ``PyTorchModelHubMixin`` restricted to local folders::

    class Net(nn.Module, PretrainedMixin):
        def __init__(self, width: int = 64, depth: int = 2, act: str = "gelu"):
            ...

    Net(width=32).save_pretrained(out_dir)  # config.json + model.safetensors (+ README.md model card)
    net = Net.from_pretrained(out_dir)      # rebuilt from config.json, weights checked and loaded, eval mode

The ``__init__`` arguments are recorded in ``config.json`` when they are JSON types (int, float, str, bool, None, list,
dict); other arguments (modules, tensors, callables) are silently left out by huggingface_hub and must have defaults
or be passed again to ``from_pretrained(dir, arg=...)``. A single dataclass argument (``__init__(self, config: NetConfig)``)
works too: it is saved with ``dataclasses.asdict`` and rebuilt from the annotation, top level only (a nested dataclass
field comes back as a dict).

``from_pretrained`` never looks anything up on the Hub: a path that is not an existing folder holding both
``config.json`` and ``model.safetensors`` raises ``CheckpointError`` naming the folder, as do a ``config.json`` key that
``__init__`` does not accept (a renamed argument would otherwise fall back to its default silently) and weights that
do not fit the rebuilt model (e.g. a config edited to another width). This module also holds ``CheckpointError``, ``LoadReport``
and the checked state-dict loading shared with ``visioncore.backbones.load_weights``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Self

import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import load_file
from torch import nn

__all__ = ["CheckpointError", "LoadReport", "PretrainedMixin", "read_state_dict"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_MAX_LISTED = 10


class CheckpointError(ValueError):
    """A checkpoint file or folder is missing, unreadable, or does not fit the model; the message names it."""


class LoadReport(NamedTuple):
    """Keys of the model absent from the checkpoint, and checkpoint keys the model does not have (both sorted)."""

    missing: list[str]
    unexpected: list[str]


_CONTAINER_KEYS = ("model", "state_dict", "teacher")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a local weights file: ``.safetensors``, or anything else through ``torch.load(weights_only=True)``.

    Unwraps ``{"model" | "state_dict" | "teacher": ...}`` containers (BLIP, DeiT/MAE, Lightning, DINO) and keeps the
    tensor entries; keys are returned as stored. ``FileNotFoundError`` or ``CheckpointError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        obj: Any = (
            load_file(path, device="cpu")
            if path.suffix == ".safetensors"
            else torch.load(path, weights_only=True, map_location="cpu")
        )
    except (
        Exception
    ) as err:  # pickle, zip, safetensors and weights_only errors all mean "cannot use this file"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint (weights_only=True): {first}") from None
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: no tensors found (top-level keys: {_listing([str(k) for k in obj])})")
    return tensors


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown}, ... and {more} more" if more > 0 else shown


def _aliases(model_state: Mapping[str, torch.Tensor]) -> dict[str, set[str]]:
    """Names sharing storage (tied weights): safetensors stores only one of them."""
    by_storage: dict[tuple[torch.device, int], set[str]] = {}
    for name, tensor in model_state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        by_storage.setdefault((tensor.device, tensor.untyped_storage().data_ptr()), set()).add(name)
    return {name: group - {name} for group in by_storage.values() if len(group) > 1 for name in group}


def _load_checked(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str | os.PathLike, strict: bool
) -> LoadReport:
    """Load ``state_dict`` into ``model`` after checking it, raising ``CheckpointError`` naming ``source``.

    Shape mismatches always raise; missing/unexpected keys raise when ``strict`` and are returned otherwise. Nothing is
    copied into the model when an error is raised.
    """
    model_state = model.state_dict()
    mismatched = [
        f"{key} (checkpoint {tuple(value.shape)} vs model {tuple(model_state[key].shape)})"
        for key, value in state_dict.items()
        if key in model_state and tuple(value.shape) != tuple(model_state[key].shape)
    ]
    if mismatched:
        raise CheckpointError(
            f"{source}: {len(mismatched)} tensor(s) have the wrong shape for {type(model).__name__}: "
            f"{_listing(mismatched)}"
        )
    aliases = _aliases(model_state)
    missing = sorted(
        key
        for key in model_state
        if key not in state_dict
        and not key.endswith("num_batches_tracked")  # BatchNorm fills it in itself
        and not (aliases.get(key, set()) & state_dict.keys())
    )
    unexpected = sorted(key for key in state_dict if key not in model_state)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        raise CheckpointError(
            f"{source}: checkpoint does not match {type(model).__name__} ({'; '.join(parts)}); "
            "pass strict=False to load the matching keys only"
        )
    model.load_state_dict(dict(state_dict), strict=False)
    return LoadReport(missing, unexpected)


class PretrainedMixin(PyTorchModelHubMixin):
    """``PyTorchModelHubMixin`` for local folders only: ``save_pretrained(dir)`` and ``Cls.from_pretrained(dir)``.

    Subclass as ``class Net(nn.Module, PretrainedMixin)``; see the module docstring for the config rules.
    """

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """Write ``config.json`` (the JSON-able ``__init__`` arguments) and ``model.safetensors`` into the folder.

        Raises ``TypeError`` if a required ``__init__`` argument is not JSON-able (the folder could not be reloaded).
        """
        if kwargs.get("push_to_hub"):
            raise ValueError("PretrainedMixin saves to local folders only; push_to_hub is not supported")
        config = kwargs.get("config")
        if config is None:
            config = self._hub_mixin_config
        if config is not None and not isinstance(config, dict):  # a dataclass instance
            config = {"config": config}
        config = config or {}
        if "config" not in config:  # a dataclass `config` argument stands for the whole configuration
            lost = [
                name
                for name, param in list(self._hub_mixin_init_parameters.items())[1:]
                if param.default is param.empty
                and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
                and name not in config
            ]
            if lost:
                raise TypeError(
                    f"{type(self).__name__}.save_pretrained: required __init__ argument(s) {', '.join(lost)} are "
                    "not JSON-serialisable, so config.json could not rebuild the model; give them defaults or "
                    "JSON types (int/float/str/bool/list/dict)"
                )
        save_directory = Path(save_directory)
        super().save_pretrained(save_directory, **kwargs)
        config_path = save_directory / CONFIG_NAME
        if not config_path.exists():  # a model without __init__ arguments: keep the folder layout uniform
            config_path.write_text("{}\n")

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        directory: str | Path,
        *,
        strict: bool = True,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> Self:
        """Rebuild the model from ``directory/config.json`` and load ``directory/model.safetensors``.

        ``model_kwargs`` override config values. The model is returned in eval mode (as huggingface_hub does), on
        ``map_location``. With ``strict=False`` missing/unexpected keys are tolerated (shape mismatches never are).
        """
        folder = Path(directory)
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: pretrained folder not found (only local folders are supported)")
        absent = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
        if absent:
            raise CheckpointError(
                f"{folder}: not a saved {cls.__name__} folder, {' and '.join(absent)} missing"
            )
        try:
            config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{folder}: unreadable {CONFIG_NAME}: {err}") from err
        if not isinstance(config, dict):
            raise CheckpointError(
                f"{folder}: {CONFIG_NAME} must hold a JSON object, got {type(config).__name__}"
            )
        params = cls._hub_mixin_init_parameters
        takes_any = "config" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        unknown = sorted(set(config) - set(params)) if not takes_any else []
        if unknown:  # a renamed or misspelt argument would otherwise fall back to its default silently
            raise CheckpointError(
                f"{folder}: {CONFIG_NAME} has key(s) {', '.join(unknown)} that {cls.__name__}.__init__ does not accept"
            )
        return super().from_pretrained(
            str(folder), local_files_only=True, strict=strict, map_location=map_location, **model_kwargs
        )

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        revision: Any = None,
        cache_dir: Any = None,
        force_download: bool = False,
        local_files_only: bool = True,
        token: Any = None,
        **model_kwargs: Any,
    ) -> Self:
        folder = Path(model_id)
        if not folder.is_dir():  # reached only through a direct call; never fall back to the Hub
            raise CheckpointError(f"{folder}: pretrained folder not found (only local folders are supported)")
        try:
            model = cls(**model_kwargs)
        except TypeError as err:
            raise CheckpointError(f"{folder}: cannot build {cls.__name__} from {CONFIG_NAME}: {err}") from err
        try:
            state_dict = load_file(folder / WEIGHTS_NAME, device="cpu")
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise CheckpointError(f"{folder}: unreadable {WEIGHTS_NAME}: {err}") from err
        _load_checked(model, state_dict, source=folder, strict=strict)  # type: ignore[arg-type]
        model.to(map_location)  # type: ignore[attr-defined]
        model.eval()  # type: ignore[attr-defined]
        return model
