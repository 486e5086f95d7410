"""Issue 23: inversion never clips, SD 2.x attention upcast on every path, no silently ignored UNet config key."""

import json
import shutil

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from torch import nn
from tune_a_video.models import CheckpointLayoutError, InflatedUNet3DConditionModel
from tune_a_video.models.attention import PlainAttnProcessor, SparseCausalAttnProcessor
from tune_a_video.train import load_components, make_pipeline


def test_inversion_ignores_clip_sample(tiny_sd):
    torch.manual_seed(0)
    pipe = make_pipeline(load_components(tiny_sd))
    latents = (
        torch.randn(1, 4, 2, 8, 8) * 3
    )  # far outside [-1, 1], so clipping x0_hat would change the result
    runs = {}
    for clip in (True, False):
        pipe.scheduler = DDIMScheduler.from_config({**pipe.scheduler.config, "clip_sample": clip})
        runs[clip] = pipe.invert(latents, num_inference_steps=4)
    assert torch.equal(runs[True], runs[False])
    # what a clipping inversion (the scheduler's config taken as is) would have produced: a real difference
    clipping = DDIMInverseScheduler.from_config({**pipe.scheduler.config, "clip_sample": True})
    clipping.set_timesteps(4)
    x, context = latents, pipe.encode_prompt([""])
    with torch.no_grad():
        for t in clipping.timesteps:
            x = clipping.step(pipe.unet(x, t, context).sample, t, x).prev_sample
    assert (x - runs[False]).abs().max() > 1e-3


def _sd2_unet_2d() -> UNet2DConditionModel:
    """A tiny SD 2.x-style UNet: linear projections, upcast attention, per-block head counts."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True, upcast_attention=True,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()  # fmt: skip


def test_sd2_unet_inflation_keeps_2d_outputs_frame_by_frame(tmp_path):
    unet_2d = _sd2_unet_2d()
    unet_2d.save_pretrained(tmp_path / "unet")
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(tmp_path).eval()
    assert unet.config.use_linear_projection and unet.config.upcast_attention
    assert unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == 2
    for name, module in unet.named_modules():
        if name.endswith("attn_temp"):
            nn.init.zeros_(
                module.to_out[0].bias
            )  # with the zero weight of upstream's init: T-Attn is identity
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 7, 32)
    with torch.no_grad():
        expected = unet_2d(x, 321, ctx).sample
        out = unet(x[:, :, None].repeat(1, 1, 3, 1, 1), 321, ctx).sample
    assert (out - expected[:, :, None]).abs().max().item() < 1e-5


def _large_qk_layer(processor, upcast: bool, cross: bool = False) -> Attention:
    torch.manual_seed(0)
    layer = Attention(
        query_dim=64, cross_attention_dim=64 if cross else None, heads=1, dim_head=64, upcast_attention=upcast,
        processor=processor,
    ).eval()  # fmt: skip
    with torch.no_grad():  # q.k scores of about 1e5: beyond float16's 65504
        layer.to_q.weight.mul_(100)
        layer.to_k.weight.mul_(100)
    return layer


@pytest.mark.parametrize("kind", ["spatial", "cross", "temporal"])
@pytest.mark.parametrize("use_sdpa", [True, False])
def test_upcast_attention_stays_finite_in_float16(kind, use_sdpa):
    torch.manual_seed(1)
    x = torch.randn(4, 10, 64) * 3
    processor = SparseCausalAttnProcessor(use_sdpa) if kind == "spatial" else PlainAttnProcessor(use_sdpa)
    kwargs = {"video_length": 2} if kind == "spatial" else {}
    context = torch.randn(4, 5, 64) * 3 if kind == "cross" else None

    def run(layer: Attention, dtype: torch.dtype) -> torch.Tensor:
        layer = layer.to(dtype)
        c = None if context is None else context.to(dtype)
        with torch.no_grad():
            return layer(x.to(dtype), c, **kwargs).float()

    upcast = _large_qk_layer(processor, upcast=True, cross=kind == "cross")
    reference = run(upcast, torch.float32)
    half = run(upcast, torch.float16)
    assert half.isfinite().all()
    torch.testing.assert_close(half, reference, atol=0.05 * reference.abs().max().item(), rtol=0)
    # the official computation without upcast (q.k in float16) overflows on the same layer
    plain = _large_qk_layer(SparseCausalAttnProcessor(False) if kind == "spatial" else PlainAttnProcessor(False),
                            upcast=False, cross=kind == "cross")  # fmt: skip
    assert not run(plain, torch.float16).isfinite().all()


def _unet_folder(tmp_path, unet_2d, **extra) -> tuple:
    unet_2d.save_pretrained(tmp_path / "unet")
    config_file = tmp_path / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config.update(extra)
    config_file.write_text(json.dumps(config))
    return tmp_path, config_file


@pytest.mark.parametrize(
    "key, value",
    [
        ("resnet_time_scale_shift", "scale_shift"), ("center_input_sample", True), ("mid_block_scale_factor", 2.0),
        ("class_embed_type", "timestep"), ("only_cross_attention", [True, False]),
        ("transformer_layers_per_block", [1, 2]), ("attention_type", "gated"), ("conv_in_kernel", 5),
        ("addition_embed_type", "text"), ("num_class_embeds", 10), ("made_up_key", 3),
    ],
)  # fmt: skip
def test_unimplemented_config_value_is_refused(unet_2d, tmp_path, key, value):
    folder, config_file = _unet_folder(tmp_path, unet_2d, **{key: value})
    with pytest.raises(CheckpointLayoutError) as err:
        InflatedUNet3DConditionModel.from_pretrained_2d(folder)
    message = str(err.value)
    assert key in message and repr(value) in message and str(config_file) in message
    assert "\n" not in message


def test_default_values_and_bookkeeping_keys_load(unet_2d, tmp_path):
    folder, _ = _unet_folder(
        tmp_path, unet_2d, _diffusers_version="0.99.0", _class_name="UNet2DConditionModel",
        center_input_sample=False, mid_block_scale_factor=1, resnet_time_scale_shift="default",
        only_cross_attention=[False, False], transformer_layers_per_block=[1, 1], attention_type="default",
        conv_in_kernel=3, class_embed_type=None, dual_cross_attention=False, num_class_embeds=None,
    )  # fmt: skip
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(folder)
    assert unet.config.block_out_channels == (32, 64) or list(unet.config.block_out_channels) == [32, 64]


def test_cli_refuses_an_unimplemented_key_in_one_line(tiny_sd, source_video_file, tmp_path, capsys):
    from tune_a_video.cli import main

    broken = tmp_path / "sd"
    shutil.copytree(tiny_sd, broken)
    config_file = broken / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config["resnet_time_scale_shift"] = "scale_shift"
    config_file.write_text(json.dumps(config))
    code = main(["train", "--config", "tiny", "--pretrained", str(broken), "--out", str(tmp_path / "o"),
                 "--set", f"train_data.video_path={source_video_file}"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "resnet_time_scale_shift" in err[0] and "scale_shift" in err[0] and str(config_file) in err[0]
    assert not (tmp_path / "o").exists()  # refused before anything was written
