import json

import pytest
import torch
from diffusers.models.attention_processor import Attention
from torch import nn
from tune_a_video.models import (
    CheckpointLayoutError,
    InflatedUNet3DConditionModel,
    ResnetBlock3D,
    SparseCausalAttnProcessor,
    freeze_for_tuning,
    set_attention_backend,
)


def _inflate(unet_2d, tmp_path, safe: bool = True) -> InflatedUNet3DConditionModel:
    unet_2d.save_pretrained(tmp_path / "unet", safe_serialization=safe)
    return InflatedUNet3DConditionModel.from_pretrained_2d(tmp_path).eval()


class _PerturbFrame(nn.Module):
    """Adds a perturbation to the projection output of one frame only (keys/values of frame j)."""

    def __init__(self, linear: nn.Linear, frame: int, video_length: int) -> None:
        super().__init__()
        self.linear, self.frame, self.video_length = linear, frame, video_length

    def forward(self, x):
        y = self.linear(x)
        y = y.unflatten(0, (-1, self.video_length)).clone()
        y[:, self.frame] += 1.0
        return y.flatten(0, 1)


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_sparse_causal_pattern(use_sdpa):
    torch.manual_seed(0)
    f, batch = 5, 2  # batch 2 = a CFG-doubled batch of one video
    attn = Attention(query_dim=16, heads=2, dim_head=8, processor=SparseCausalAttnProcessor(use_sdpa)).eval()
    x = torch.randn(batch * f, 6, 16)
    base = attn(x, video_length=f).unflatten(0, (batch, f))
    to_k, to_v = attn.to_k, attn.to_v
    for j in range(f):
        attn.to_k, attn.to_v = _PerturbFrame(to_k, j, f), _PerturbFrame(to_v, j, f)
        out = attn(x, video_length=f).unflatten(0, (batch, f))
        attn.to_k, attn.to_v = to_k, to_v
        for i in range(f):
            changed = (out[:, i] - base[:, i]).abs().max().item() > 1e-4
            assert changed == (j in {0, max(i - 1, 0)}), (i, j)


def test_sdpa_and_plain_attention_agree(unet_2d, tmp_path):
    unet = _inflate(unet_2d, tmp_path)
    x, ctx = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 5, 32)
    with torch.no_grad():
        a = unet(x, 500, ctx).sample
        set_attention_backend(unet, use_sdpa=False)
        b = unet(x, 500, ctx).sample
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_inflation_equals_2d_on_identical_frames(unet_2d, tmp_path):
    unet = _inflate(unet_2d, tmp_path)
    for name, module in unet.named_modules():
        if name.endswith("attn_temp"):
            nn.init.zeros_(
                module.to_out[0].bias
            )  # weight already zero at init (upstream); bias too => identity
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 7, 32)
    video = x[:, :, None].repeat(1, 1, 4, 1, 1)
    with torch.no_grad():
        expected = unet_2d(x, 321, ctx).sample
        out = unet(video, 321, ctx).sample
        assert (out - expected[:, :, None]).abs().max().item() < 1e-5
        # Frames are coupled: changing frame 1 changes the output of frame 3 (SC-attn keys, T-Attn, GroupNorm).
        video[:, :, 1] += 1.0
        out2 = unet(video, 321, ctx).sample
    assert (out2[:, :, 3] - out[:, :, 3]).abs().max().item() > 1e-4


def test_temporal_attention_is_not_identity_at_init_by_default(unet_2d, tmp_path):
    unet = _inflate(unet_2d, tmp_path)
    temps = [m for n, m in unet.named_modules() if n.endswith("attn_temp")]
    assert temps and all(m.to_out[0].weight.abs().sum() == 0 for m in temps)
    assert all(m.to_out[0].bias.abs().sum() > 0 for m in temps)  # upstream zeroes the weight only


def test_trainable_parameter_set(unet_2d, tmp_path):
    unet = _inflate(unet_2d, tmp_path)
    names = freeze_for_tuning(unet)
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert trainable == set(names)
    assert all(".attn1.to_q." in n or ".attn2.to_q." in n or ".attn_temp." in n for n in trainable)
    blocks = sum(1 for n, _ in unet.named_modules() if n.endswith("transformer_blocks.0"))
    # per block: attn1.to_q.weight, attn2.to_q.weight, attn_temp to_q/to_k/to_v weights + to_out weight and bias
    assert len(trainable) == blocks * 7
    assert not any("norm_temp" in n or "to_k" in n and "attn_temp" not in n for n in trainable)


def test_resnet_groupnorm_pools_statistics_over_frames():
    torch.manual_seed(0)
    block = ResnetBlock3D(32, 32, 16, groups=8).eval()
    x = torch.randn(1, 32, 3, 4, 4)
    x[:, :, 2] *= 5.0
    normed = block.norm1(x)
    groups = x.view(1, 8, -1)  # statistics over (channels of a group, frames, h, w)
    expected = (groups - groups.mean(-1, keepdim=True)) / torch.sqrt(
        groups.var(-1, unbiased=False, keepdim=True) + 1e-5
    )
    torch.testing.assert_close(normed, expected.view_as(x), atol=1e-5, rtol=1e-5)
    # Hence frame 0's output depends on frame 2 although the convolutions are per frame.
    temb = torch.randn(1, 16)
    with torch.no_grad():
        y = block(x, temb)
        x2 = x.clone()
        x2[:, :, 2] *= 2.0
        y2 = block(x2, temb)
    assert (y2[:, :, 0] - y[:, :, 0]).abs().max().item() > 1e-4


def test_weights_from_safetensors_and_bin_agree(unet_2d, tmp_path):
    a = _inflate(unet_2d, tmp_path / "st", safe=True)
    assert (tmp_path / "st" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    b = _inflate(unet_2d, tmp_path / "bin", safe=False)
    assert (tmp_path / "bin" / "unet" / "diffusion_pytorch_model.bin").is_file()
    sd_a, sd_b, sd_2d = a.state_dict(), b.state_dict(), unet_2d.state_dict()
    for k, v in sd_2d.items():
        torch.testing.assert_close(sd_a[k], v)
        torch.testing.assert_close(sd_b[k], v)


def test_loads_official_tune_a_video_checkpoint(unet_2d, tmp_path):
    source = _inflate(unet_2d, tmp_path / "sd")
    for name, p in source.named_parameters():
        if "_temp." in name:
            p.data.normal_()
    official = tmp_path / "official" / "unet"
    official.mkdir(parents=True)
    config = dict(unet_2d.config)
    config.update(
        _class_name="UNet3DConditionModel", _diffusers_version="0.11.1",
        down_block_types=["CrossAttnDownBlock3D", "DownBlock3D"], up_block_types=["UpBlock3D", "CrossAttnUpBlock3D"],
        mid_block_type="UNetMidBlock3DCrossAttn",
    )  # fmt: skip
    (official / "config.json").write_text(json.dumps(config))
    torch.save(source.state_dict(), official / "diffusion_pytorch_model.bin")
    loaded = InflatedUNet3DConditionModel.from_pretrained_2d(official.parent)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_save_pretrained_round_trip(unet_2d, tmp_path):
    unet = _inflate(unet_2d, tmp_path)
    unet.save_pretrained(tmp_path / "saved")
    again = InflatedUNet3DConditionModel.from_pretrained(tmp_path / "saved").eval()
    x, ctx = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 10, ctx).sample, again(x, 10, ctx).sample)


def test_bad_pretrained_folders(unet_2d, tmp_path):
    with pytest.raises(FileNotFoundError, match="unet"):
        InflatedUNet3DConditionModel.from_pretrained_2d(tmp_path / "nothing")
    unet_2d.save_pretrained(tmp_path / "unet")
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    config["block_out_channels"] = [32, 32]
    (tmp_path / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointLayoutError, match="do not match"):
        InflatedUNet3DConditionModel.from_pretrained_2d(tmp_path)


def test_gradient_checkpointing_matches(unet_2d, tmp_path):
    unet = _inflate(unet_2d, tmp_path).train()
    freeze_for_tuning(unet)
    x, ctx = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 5, 32)

    def grads():
        unet.zero_grad()
        unet(x, 10, ctx).sample.square().mean().backward()
        return {n: p.grad.clone() for n, p in unet.named_parameters() if p.requires_grad}

    plain = grads()
    unet.enable_gradient_checkpointing()
    assert all(b.gradient_checkpointing for b in unet.down_blocks)
    checkpointed = grads()
    for k in plain:
        torch.testing.assert_close(plain[k], checkpointed[k], atol=1e-6, rtol=1e-5)


def test_bench_activation_memory_direction():
    from tune_a_video.bench import TINY, time_tuning_step

    torch.manual_seed(0)
    unet = InflatedUNet3DConditionModel(**TINY)
    freeze_for_tuning(unet)
    sdpa = time_tuning_step(unet, 4, 8, 0, use_sdpa=True, checkpointing=False)
    plain = time_tuning_step(unet, 4, 8, 0, use_sdpa=False, checkpointing=False)
    ckpt = time_tuning_step(unet, 4, 8, 0, use_sdpa=True, checkpointing=True)
    assert ckpt["saved_activations_mb"] < 0.5 * sdpa["saved_activations_mb"]
    assert plain["saved_activations_mb"] > sdpa["saved_activations_mb"]  # plain keeps the attention matrices
