"""Converter on fixtures written here: a torch.save .ckpt and an EG3D-layout persistence .pkl, and a hostile pickle."""

import pickle
import sys
import types
from collections import OrderedDict

import pytest
import torch
from pv3d.cameras import pose_vector
from pv3d.config import get_config
from pv3d.convert import convert_checkpoint
from pv3d.models import ImageDiscriminator, TriPlaneGenerator, build_discriminators, build_generator

from visioncore.safe_pickle import UnsafePickleError


def official_keys(state):
    out = {}
    for key, value in state.items():
        if key.startswith(("mapping.", "synthesis.")):
            key = "backbone." + key
        out[key.replace(".motion.", ".motion_time_fuser.")] = value
    return out


def _render(g):
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(0))
    j = torch.rand(256, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return g(z, z, torch.tensor([[0.0, 1.0]]), pose_vector(0.1), noise_mode="const", jitter=j)["image"]


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(3)
    return build_generator("tiny").eval(), *build_discriminators("tiny")


def test_ckpt_round_trip(tmp_path, nets):
    g, d_img, d_vid = nets
    model = {f"G_ema.{k}": v for k, v in official_keys(g.state_dict()).items()}
    model.update({f"D.{k}": v for k, v in d_img.state_dict().items()})
    model.update({f"D_video.{k}": v for k, v in d_vid.state_dict().items()})
    torch.save({"model": model, "config": {"note": "plain"}}, tmp_path / "pv3d.ckpt")
    report = convert_checkpoint(tmp_path / "pv3d.ckpt", tmp_path / "out", get_config("tiny"))
    assert report["networks"]["generator"]["group"] == "model.G_ema"
    assert report["networks"]["video_d"]["group"] == "model.D_video"
    loaded = TriPlaneGenerator.from_pretrained(tmp_path / "out" / "generator")
    assert torch.equal(_render(loaded), _render(g))
    d = ImageDiscriminator.from_pretrained(tmp_path / "out" / "image_d")
    assert torch.equal(d.b4.out.weight, d_img.b4.out.weight)


class _Persistent:
    """Pickles like an EG3D persistent_class instance: _reconstruct_persistent_obj(meta)."""

    def __init__(self, class_name, state):
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": "raise SystemExit('module source was run')",
            "class_name": class_name,
            "state": state,
        }

    def __reduce__(self):
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,)


def _tree(state):
    root = {"_parameters": OrderedDict(), "_buffers": OrderedDict(), "_modules": OrderedDict()}
    for key, value in state.items():
        node = root
        *path, leaf = key.split(".")
        for part in path:
            if part not in node["_modules"]:
                node["_modules"][part] = {
                    "_parameters": OrderedDict(),
                    "_buffers": OrderedDict(),
                    "_modules": OrderedDict(),
                }
            node = node["_modules"][part]
        group = (
            "_parameters"
            if value.dtype.is_floating_point and not leaf.endswith(("filter", "noise_const", "w_avg"))
            else "_buffers"
        )
        node[group][leaf] = torch.nn.Parameter(value.clone()) if group == "_parameters" else value.clone()
    return root


def _wrap(node, name):
    mods = OrderedDict((k, _wrap(v, k)) for k, v in node["_modules"].items())
    return _Persistent(
        name,
        {
            "_parameters": node["_parameters"],
            "_buffers": node["_buffers"],
            "_modules": mods,
            "training": False,
        },
    )


@pytest.fixture
def fake_persistence(monkeypatch):
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("the writer-side reconstructor is never called when pickling")

    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)


def test_eg3d_pickle_is_read_without_running_its_code(tmp_path, nets, fake_persistence):
    g, d_img, _ = nets
    payload = {
        "G_ema": _wrap(_tree(official_keys(g.state_dict())), "TriPlaneGenerator"),
        "D": _wrap(_tree(d_img.state_dict()), "DualDiscriminator"),
        "augment_pipe": None,
    }
    (tmp_path / "network.pkl").write_bytes(pickle.dumps(payload, protocol=2))
    report = convert_checkpoint(tmp_path / "network.pkl", tmp_path / "out", get_config("tiny"))
    assert set(report["networks"]) == {"generator", "image_d"}
    loaded = TriPlaneGenerator.from_pretrained(tmp_path / "out" / "generator")
    assert torch.equal(_render(loaded), _render(g))


class _Evil:
    def __reduce__(self):
        import os

        return os.system, ("touch PWNED",)


def test_hostile_pickle_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G_ema": _Evil()}))
    with pytest.raises(UnsafePickleError, match="evil.pkl.*(posix|os).system"):
        convert_checkpoint(tmp_path / "evil.pkl", tmp_path / "out", get_config("tiny"))
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()


def test_wrong_config_and_missing_file(tmp_path, nets):
    g, _, _ = nets
    torch.save({"G_ema." + k: v for k, v in official_keys(g.state_dict()).items()}, tmp_path / "g.ckpt")
    with pytest.raises(ValueError, match="do not fit the chosen config"):
        convert_checkpoint(tmp_path / "g.ckpt", tmp_path / "out", get_config("tiny", ["generator.w_dim=8"]))
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="nothere.ckpt"):
        convert_checkpoint(tmp_path / "nothere.ckpt", tmp_path / "out2", get_config("tiny"))
