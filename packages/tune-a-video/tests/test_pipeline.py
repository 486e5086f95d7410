import copy
import json

import numpy as np
import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler
from tune_a_video.losses import denoising_target
from tune_a_video.pipeline import TuneAVideoPipeline
from tune_a_video.train import load_components, make_pipeline


@pytest.fixture(scope="module")
def pipe(tiny_sd):
    torch.manual_seed(0)
    return make_pipeline(load_components(tiny_sd))


def _upstream_next_step(model_output, timestep, sample, scheduler, num_inference_steps):
    """Tune-A-Video's util.next_step, written out (reference for DDIMInverseScheduler)."""
    timestep, next_timestep = (
        min(timestep - scheduler.config.num_train_timesteps // num_inference_steps, 999),
        timestep,
    )
    alpha_t = scheduler.alphas_cumprod[timestep] if timestep >= 0 else scheduler.final_alpha_cumprod
    alpha_next = scheduler.alphas_cumprod[next_timestep]
    x0 = (sample - (1 - alpha_t) ** 0.5 * model_output) / alpha_t**0.5
    return alpha_next**0.5 * x0 + (1 - alpha_next) ** 0.5 * model_output


def test_inverse_scheduler_matches_upstream_formula(pipe):
    sampler = DDIMScheduler.from_config(pipe.scheduler.config)
    sampler.set_timesteps(50)
    inverse = DDIMInverseScheduler.from_config(
        {k: v for k, v in pipe.scheduler.config.items() if k in ("beta_start", "beta_end", "beta_schedule",
         "num_train_timesteps", "steps_offset", "clip_sample", "set_alpha_to_one", "prediction_type")}
    )  # fmt: skip
    inverse.set_timesteps(50)
    upstream_order = list(reversed(sampler.timesteps.tolist()))
    assert inverse.timesteps.tolist() == upstream_order  # 1, 21, ..., 981
    torch.manual_seed(0)
    sample = torch.randn(1, 4, 2, 4, 4)
    for t in upstream_order:
        eps = torch.randn_like(sample)
        expected = _upstream_next_step(eps, t, sample, sampler, 50)
        got = inverse.step(eps, t, sample).prev_sample
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
        sample = got


def test_inversion_round_trip_reconstructs(pipe):
    # A random UNet's epsilon field is far rougher than a trained one's; shrink its output so that, like a trained
    # model, consecutive DDIM steps see nearly the same epsilon (the premise of DDIM inversion).
    pipe = TuneAVideoPipeline(
        None, pipe.text_encoder, pipe.tokenizer, copy.deepcopy(pipe.unet), pipe.scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        pipe.unet.conv_out.weight.mul_(0.05)
        pipe.unet.conv_out.bias.mul_(0.05)
    torch.manual_seed(0)
    clean = torch.randn(1, 4, 3, 8, 8) * 0.5
    inverted = pipe.invert(clean, num_inference_steps=50)
    assert (inverted - clean).abs().mean() > 0.1  # it really moved to noise
    steps = 50
    pipe.scheduler.set_timesteps(steps)
    latents = inverted
    context = pipe.encode_prompt([""])
    for t in pipe.scheduler.timesteps:
        latents = pipe.scheduler.step(pipe.unet(latents, t, context).sample, t, latents).prev_sample
    mse = (latents - clean).pow(2).mean().item()
    assert mse < 0.1 * clean.var().item()


def test_cfg_batch_keeps_videos_independent(pipe):
    def run(prompts):
        return pipe(prompts, video_length=3, height=16, width=16, num_inference_steps=2, guidance_scale=7.5,
                    latents=torch.ones(1, 4, 3, 8, 8).repeat(len(prompts), 1, 1, 1, 1) * 0.3).videos  # fmt: skip

    both = run(["a red square", "a blue circle"])
    alone = run(["a blue circle"])
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-4)
    assert (both[0] - both[1]).abs().max() > 1e-4


def test_output_types_and_range(pipe):
    kwargs = dict(
        video_length=2, height=16, width=16, num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    )
    pt = pipe("a cat", **kwargs).videos
    kwargs["generator"] = torch.Generator().manual_seed(0)
    np_video = pipe("a cat", output_type="np", **kwargs).videos
    kwargs["generator"] = torch.Generator().manual_seed(0)
    pil = pipe("a cat", output_type="pil", **kwargs).videos
    assert pt.shape == (1, 3, 2, 16, 16) and pt.min() >= 0 and pt.max() <= 1
    assert isinstance(np_video, np.ndarray) and np.allclose(np_video, pt.numpy())
    assert len(pil) == 1 and len(pil[0]) == 2 and pil[0][0].size == (16, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        pipe("a cat", video_length=2, height=12, width=16)


def test_pipeline_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["unet"][1] == "InflatedUNet3DConditionModel"
    again = TuneAVideoPipeline.from_pretrained(tmp_path / "pipe")
    again.set_progress_bar_config(disable=True)
    kwargs = dict(video_length=2, height=16, width=16, num_inference_steps=3)
    a = pipe("a dog", generator=torch.Generator().manual_seed(1), **kwargs).videos
    b = again("a dog", generator=torch.Generator().manual_seed(1), **kwargs).videos
    torch.testing.assert_close(a, b)


def test_pixel_space_pipeline_without_vae(pipe, tmp_path):
    from tune_a_video.models import InflatedUNet3DConditionModel
    from tune_a_video.tiny_sd import tiny_unet_2d

    tiny_unet_2d(in_channels=3).save_pretrained(tmp_path / "px" / "unet")
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(tmp_path / "px")
    px = TuneAVideoPipeline(None, pipe.text_encoder, pipe.tokenizer, unet, pipe.scheduler)
    px.set_progress_bar_config(disable=True)
    px.save_pretrained(tmp_path / "px-pipe")
    again = TuneAVideoPipeline.from_pretrained(tmp_path / "px-pipe")
    assert again.vae is None
    video = torch.rand(1, 3, 2, 16, 16) * 2 - 1
    torch.testing.assert_close(px.encode_video(video), video)
    assert px("a dog", video_length=2, height=16, width=16, num_inference_steps=2).videos.shape == (
        1,
        3,
        2,
        16,
        16,
    )


def test_v_prediction_target():
    scheduler = DDPMScheduler(prediction_type="v_prediction")
    x0, eps, t = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 3, 4, 4), torch.tensor([10, 900])
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(denoising_target(scheduler, x0, eps, t), a.sqrt() * eps - (1 - a).sqrt() * x0)
    assert denoising_target(DDPMScheduler(), x0, eps, t) is eps


def test_cli_generate_invert_and_evaluate_in_bf16(pipe, tmp_path, source_video_file, capsys):
    from transformers import CLIPConfig, CLIPModel
    from tune_a_video.cli import main
    from tune_a_video.evaluate import evaluate_video_file

    pipe.save_pretrained(tmp_path / "tuned")
    inv = tmp_path / "inv.pt"
    bf16 = ["--device", "cpu", "--dtype", "bf16"]
    assert main(["invert", "--model", str(tmp_path / "tuned"), "--video", str(source_video_file), "--n-frames", "3",
                 "--height", "16", "--width", "16", "--steps", "3", "--out", str(inv), *bf16]) == 0  # fmt: skip
    inverted = torch.load(inv, weights_only=True)
    assert inverted.shape == (1, 4, 3, 8, 8) and inverted.dtype == torch.float32 and inverted.isfinite().all()
    gif = tmp_path / "edit.gif"
    assert main(["generate", "--model", str(tmp_path / "tuned"), "--prompt", "a blue square", "--inverted-latents",
                 str(inv), "--steps", "3", "--out", str(gif), *bf16]) == 0  # fmt: skip
    assert gif.is_file() and not list(tmp_path.glob(".edit.*"))  # written atomically, no temporary left

    clip = CLIPModel(
        CLIPConfig(
            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                             vocab_size=49408, max_position_embeddings=77),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               image_size=32, patch_size=8),
            projection_dim=16,
        )
    )  # fmt: skip
    clip.save_pretrained(tmp_path / "clip")
    pipe.tokenizer.save_pretrained(tmp_path / "clip")
    scores = evaluate_video_file(gif, "a blue square", tmp_path / "clip")
    assert -1 <= scores["text_alignment"] <= 1 and -1 <= scores["frame_consistency"] <= 1
    capsys.readouterr()
    assert main(["evaluate", "--video", str(gif), "--prompt", "a blue square", "--clip", str(tmp_path / "clip"),
                 *bf16]) == 0  # fmt: skip
    in_bf16 = json.loads(capsys.readouterr().out)
    assert abs(in_bf16["text_alignment"] - scores["text_alignment"]) < 0.05  # same model, bf16 rounding only
    still = tmp_path / "still.gif"
    from visioncore.viz import save_video

    still_frames = torch.full((3, 3, 16, 16), 128, dtype=torch.uint8)
    still_frames[1, :, 0, 0] = 129  # GIF merges identical neighbours; keep 3 distinct, near-identical frames
    still_frames[2, :, 0, 0] = 127
    save_video(still, still_frames, fps=4)
    assert evaluate_video_file(still, "x", tmp_path / "clip")["frame_consistency"] > 0.99


def test_eta_ancestral_sampling_is_seeded_and_eta_zero_is_plain_ddim(pipe):
    kwargs = dict(video_length=2, height=16, width=16, num_inference_steps=3, guidance_scale=3.0)

    def run(seed, **extra):
        return pipe("a cat", generator=torch.Generator().manual_seed(seed), **kwargs, **extra).videos

    torch.testing.assert_close(run(0), run(0, eta=0.0))  # the default is deterministic DDIM
    ancestral = run(0, eta=1.0)
    torch.testing.assert_close(ancestral, run(0, eta=1.0))  # its step noise comes from the generator
    assert (ancestral - run(0)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="eta"):
        run(0, eta=1.5)
