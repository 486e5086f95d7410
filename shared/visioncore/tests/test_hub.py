import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from visioncore.backbones import vit_tiny
from visioncore.hub import CheckpointError, PretrainedMixin


class TinyNet(nn.Module, PretrainedMixin):
    def __init__(self, width: int = 8, depth: int = 2, act: str = "gelu", scales: list | None = None):
        super().__init__()
        self.width, self.act, self.scales = width, act, scales
        self.layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x):
        return self.layers(x)


class TiedNet(nn.Module, PretrainedMixin):
    def __init__(self, vocab: int = 11, dim: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight


class VitEncoder(nn.Module, PretrainedMixin):
    def __init__(self, img_size: int = 32, patch_size: int = 8, embed_dim: int = 32, depth: int = 1):
        super().__init__()
        self.backbone = vit_tiny(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=2
        )

    def forward(self, images):
        return self.backbone.forward_tokens(images, final_norm=True)


@dataclass
class NetConfig:
    width: int = 4
    out: int = 3


class ConfigNet(nn.Module, PretrainedMixin):
    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.width, config.out)


def test_round_trip_rebuilds_config_and_weights(tmp_path):
    torch.manual_seed(0)
    net = TinyNet(width=6, depth=3, scales=[1, 2])
    net.save_pretrained(tmp_path / "net")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "net").iterdir()}
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    assert config == {"width": 6, "depth": 3, "act": "gelu", "scales": [1, 2]}
    loaded = TinyNet.from_pretrained(tmp_path / "net")
    assert (loaded.width, len(loaded.layers), loaded.scales) == (6, 3, [1, 2])
    assert not loaded.training
    x = torch.randn(5, 6)
    torch.testing.assert_close(loaded(x), net(x))
    # kwargs override the saved config (here: a value that does not change the weights)
    assert TinyNet.from_pretrained(str(tmp_path / "net"), act="relu").act == "relu"


def test_round_trip_vit_encoder_equal_outputs(tmp_path):
    torch.manual_seed(0)
    enc = VitEncoder(embed_dim=32).eval()
    enc.save_pretrained(tmp_path / "enc")
    loaded = VitEncoder.from_pretrained(tmp_path / "enc")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc(x))


def test_tied_weights_and_no_arg_models(tmp_path):
    net = TiedNet(vocab=7)
    net.save_pretrained(tmp_path / "tied")
    loaded = TiedNet.from_pretrained(tmp_path / "tied")
    assert loaded.out.weight is loaded.embed.weight
    torch.testing.assert_close(loaded.embed.weight, net.embed.weight)

    class Bare(nn.Module, PretrainedMixin):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3))

    bare = Bare()
    bare.save_pretrained(tmp_path / "bare")
    assert json.loads((tmp_path / "bare" / "config.json").read_text()) == {}
    torch.testing.assert_close(Bare.from_pretrained(tmp_path / "bare").w, bare.w)


def test_dataclass_config(tmp_path):
    net = ConfigNet(NetConfig(width=5, out=2))
    net.save_pretrained(tmp_path / "cfg")
    loaded = ConfigNet.from_pretrained(tmp_path / "cfg")
    assert loaded.config == NetConfig(width=5, out=2)
    torch.testing.assert_close(loaded.proj.weight, net.proj.weight)


def test_missing_folder_raises_naming_it(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(CheckpointError, match="no_such_model"):
        TinyNet.from_pretrained(missing)
    # a Hub-style id is never looked up
    with pytest.raises(CheckpointError, match="some-user/some-model"):
        TinyNet.from_pretrained("some-user/some-model")  # hub-ok: checks that hub ids are refused


def test_incomplete_or_broken_folder(tmp_path):
    TinyNet().save_pretrained(tmp_path / "net")
    (tmp_path / "net" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"net.*model\.safetensors missing"):
        TinyNet.from_pretrained(tmp_path / "net")
    TinyNet().save_pretrained(tmp_path / "net2")
    (tmp_path / "net2" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="net2.*config.json"):
        TinyNet.from_pretrained(tmp_path / "net2")
    (tmp_path / "net2" / "config.json").write_text('{"widht": 3, "depth": 2}')  # would silently use width=8
    with pytest.raises(CheckpointError, match="net2.*widht"):
        TinyNet.from_pretrained(tmp_path / "net2")


def test_mismatched_config_raises_naming_folder_and_keys(tmp_path):
    folder = tmp_path / "edited"
    TinyNet(width=6, depth=2).save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"width": 12, "depth": 2}))
    with pytest.raises(CheckpointError, match="edited") as info:
        TinyNet.from_pretrained(folder)
    assert "layers.0.weight (checkpoint (6, 6) vs model (12, 12))" in str(info.value)

    (folder / "config.json").write_text(json.dumps({"width": 6, "depth": 3}))
    with pytest.raises(CheckpointError, match="missing key") as info:
        TinyNet.from_pretrained(folder)
    assert "layers.2.weight" in str(info.value) and "edited" in str(info.value)
    assert len(TinyNet.from_pretrained(folder, strict=False).layers) == 3


def test_unsaveable_required_argument(tmp_path):
    class NeedsModule(nn.Module, PretrainedMixin):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

    with pytest.raises(TypeError, match="inner"):
        NeedsModule(nn.Linear(2, 2)).save_pretrained(tmp_path / "unused")
    assert not (tmp_path / "unused").exists()


def test_read_state_dict_unwraps_containers_and_names_bad_files(tmp_path):
    from safetensors.torch import save_file

    from visioncore.hub import read_state_dict

    weights = {"a.weight": torch.arange(6.0).view(2, 3), "b.bias": torch.ones(2)}
    torch.save({"model": {"state_dict": weights}, "epoch": 3}, tmp_path / "nested.pth")
    save_file(weights, str(tmp_path / "flat.safetensors"))
    for name in ("nested.pth", "flat.safetensors"):
        state = read_state_dict(tmp_path / name)
        assert set(state) == set(weights) and all(torch.equal(state[k], weights[k]) for k in weights)

    torch.save({"epoch": 3, "args": "x"}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match=r"meta\.pth: no tensors found \(top-level keys: epoch, args\)"):
        read_state_dict(tmp_path / "meta.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth: cannot read checkpoint \(weights_only=True\)"):
        read_state_dict(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match=r"missing\.pth: weights file not found"):
        read_state_dict(tmp_path / "missing.pth")
