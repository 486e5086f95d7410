"""Convert released PV3D ``.ckpt`` and EG3D-layout ``.pkl`` checkpoints to ``save_pretrained`` folders.

Nothing in a user file is executed:

- ``.ckpt`` (torch.save zip): ``torch.load(weights_only=True)``, torch's own restricted unpickler.
- ``.pkl`` (EG3D/StyleGAN pickles of ``persistence``-wrapped modules): ``visioncore.safe_pickle`` with an allow-list
  of tensor/storage rebuilders, OrderedDict and numpy arrays/dtypes. The persistence reconstructor and
  ``copyreg._reconstructor`` (plain torch modules such as ``Sequential``) are replaced by stand-ins that return the
  recorded state (parameters, buffers, sub-modules) without importing or running the module source it carries.

Keys are mapped to ours: ``backbone.mapping.`` -> ``mapping.``, ``backbone.synthesis.`` -> ``synthesis.``,
``motion_time_fuser.`` -> ``motion.``; discriminator keys are kept. The generator comes from ``G_ema`` (else ``G``),
the image D from ``D``, the video D from a group whose name contains ``vid``.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from pv3d.config import Config
from visioncore.hub import CheckpointError
from visioncore.safe_pickle import NUMPY_GLOBALS, TORCH_TENSOR_GLOBALS, restricted_load

__all__ = ["PERSISTENCE_MODULES", "convert_checkpoint", "load_state_groups", "map_generator_keys"]

PERSISTENCE_MODULES = (
    "torch_utils.persistence",
    "lib.models.videg3d.torch_utils.persistence",
    "lib.models.eg3d.torch_utils.persistence",
)
_RENAMES = (
    ("backbone.mapping.", "mapping."),
    ("backbone.synthesis.", "synthesis."),
    ("motion_time_fuser.", "motion."),
)
_G_ROOTS = ("backbone.", "mapping.", "synthesis.", "decoder.", "superresolution.", "to_img_raw.")


class _Recorded:
    """What a pickled module became: its class name and recorded ``__dict__`` (never its code)."""

    def __init__(self, class_name: str = "?", state: Any = None):
        self.class_name, self.state = class_name, state

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _persistent(meta: dict) -> _Recorded:
    if not isinstance(meta, dict) or "state" not in meta:
        raise CheckpointError("persistence record without a state")
    return _Recorded(str(meta.get("class_name", "?")), meta["state"])


def _reconstructor(cls: Any, base: Any, state: Any = None) -> _Recorded:
    return _Recorded(getattr(cls, "__name__", "module"))


def _module_class(name: str) -> type:
    return type(name, (), {"__name__": name})


def _storage_from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _overrides() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        (m, "_reconstruct_persistent_obj"): _persistent for m in PERSISTENCE_MODULES
    }
    table[("copyreg", "_reconstructor")] = _reconstructor
    table[("builtins", "object")] = object
    table[("torch.storage", "_load_from_bytes")] = _storage_from_bytes
    table[("dnnlib.util", "EasyDict")] = dict
    table[("lib.models.videg3d.dnnlib.util", "EasyDict")] = dict
    for module, name in (
        ("torch.nn.modules.container", "Sequential"),
        ("torch.nn.modules.container", "ModuleList"),
        ("torch.nn.modules.activation", "Softplus"),
        ("torch.nn.modules.activation", "ReLU"),
        ("torch.nn.modules.activation", "LeakyReLU"),
    ):
        table[(module, name)] = _module_class(name)
    return table


def _flatten_module(obj: _Recorded, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = obj.state if isinstance(obj.state, dict) else {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value.detach().clone()
    for name, sub in (state.get("_modules") or {}).items():
        if isinstance(sub, _Recorded):
            _flatten_module(sub, f"{prefix}{name}.", out)


def _tensors(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Every tensor under ``obj`` (nested dicts / recorded modules), keyed by its dotted path."""
    if isinstance(obj, _Recorded):
        _flatten_module(obj, prefix, out)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _tensors(value, f"{prefix}{key}.", out)
    elif isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj


def load_state_groups(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """{prefix: state dict} for every network found in a ``.ckpt`` or ``.pkl`` file, without running its code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".pkl":
        raw = restricted_load(path, allowed=TORCH_TENSOR_GLOBALS | NUMPY_GLOBALS, overrides=_overrides())
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch's UnpicklingError names the refused global
            raise CheckpointError(
                f"{path}: cannot read as a weights-only checkpoint: {str(err).splitlines()[0]}"
            ) from None
    flat: dict[str, torch.Tensor] = OrderedDict()
    _tensors(raw, "", flat)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        parts = key.split(".")
        # the group is the path before the first generator/discriminator root name
        cut = next(
            (
                i
                for i in range(len(parts))
                if ".".join(parts[i:]).startswith(_G_ROOTS)
                or parts[i].startswith("b")
                and parts[i][1:].isdigit()
            ),
            len(parts) - 1,
        )
        groups.setdefault(".".join(parts[:cut]), {})[".".join(parts[cut:])] = value
    return groups


def map_generator_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official generator keys -> ours."""
    out = {}
    for key, value in state.items():
        for old, new in _RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def _pick(
    groups: dict[str, dict[str, torch.Tensor]], wanted: str
) -> tuple[str, dict[str, torch.Tensor]] | None:
    def is_g(state):
        return any(k.startswith(("backbone.", "synthesis.", "decoder.")) for k in state)

    gens = {k: v for k, v in groups.items() if is_g(v)}
    discs = {k: v for k, v in groups.items() if not is_g(v) and any(k2.startswith("b4.") for k2 in v)}
    if wanted == "generator":
        for name in sorted(gens, key=lambda n: ("G_ema" not in n, n)):
            return name, gens[name]
        return None
    video = [n for n in discs if "vid" in n.lower()]
    image = [n for n in discs if "vid" not in n.lower()]
    names = video if wanted == "video_d" else image
    return (names[0], discs[names[0]]) if names else None


def _load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, list[str]]:
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise CheckpointError(
            f"{source}: {len(wrong)} tensor(s) do not fit the chosen config, e.g. {wrong[0]} "
            f"{tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)} (pick the matching --config)"
        )
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    learnable = [k for k in missing if not k.endswith(("resample_filter", "noise_const"))]
    if learnable:
        raise CheckpointError(
            f"{source}: {len(learnable)} weight(s) of ours are not in the checkpoint, e.g. {learnable[0]}"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return {"missing_buffers": missing, "unexpected": unexpected}


def convert_checkpoint(path: str | Path, out: str | Path, cfg: Config) -> dict[str, Any]:
    """Write ``out/generator`` (and ``out/image_d``, ``out/video_d`` when present) as save_pretrained folders.

    Everything is written to a temporary folder first and renamed at the end: nothing half-written.
    """
    from pv3d.models import ImageDiscriminator, TriPlaneGenerator, VideoDiscriminator

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} exists and is not empty")
    groups = load_state_groups(path)
    picked = _pick(groups, "generator")
    if picked is None:
        raise CheckpointError(f"{path}: no generator weights found (groups: {', '.join(groups) or 'none'})")
    report: dict[str, Any] = {"source": str(path), "networks": {}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        g = TriPlaneGenerator(cfg.generator)
        info = _load_into(g, map_generator_keys(picked[1]), f"{path} [{picked[0]}]")
        g.save_pretrained(tmp / "generator")
        report["networks"]["generator"] = {"group": picked[0], **info}
        for name, cls, dcfg in (
            ("image_d", ImageDiscriminator, cfg.image_d),
            ("video_d", VideoDiscriminator, cfg.video_d),
        ):
            found = _pick(groups, name)
            if found is not None:
                d = cls(dcfg)
                info = _load_into(d, found[1], f"{path} [{found[0]}]")
                d.save_pretrained(tmp / name)
                report["networks"][name] = {"group": found[0], **info}
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
