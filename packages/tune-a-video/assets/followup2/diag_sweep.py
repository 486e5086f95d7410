import sys, time, copy, torch, numpy as np
from pathlib import Path
from visioncore.config import load_config
from tune_a_video.repro import *
from tune_a_video.repro import ReproConfig, PromptBank, pretrain_2d, pixel_scheduler, run_seed, find_objects
from tune_a_video.tiny_sd import tiny_text_encoder, write_clip_tokenizer
from tune_a_video.data.synthetic import source_video
from diffusers import UNet2DConditionModel
out = Path(sys.argv[1]); out.mkdir(exist_ok=True, parents=True)
cfg = load_config(ReproConfig, "repro", ["norm_num_groups=8", "context_tokens=8", "train_text_encoder=true", "pretrain_steps=1000"], package="tune_a_video")
t0 = time.time()
log = lambda m: print(f"[{time.time()-t0:5.0f}s] {m}", flush=True)
torch.manual_seed(cfg.pretrain_seed)
tokenizer = write_clip_tokenizer(out / "model" / "tokenizer", model_max_length=cfg.context_tokens)
text_encoder = tiny_text_encoder().eval().requires_grad_(False)
prompts = PromptBank(tokenizer, text_encoder)
folder = out / "model"
if (folder / "unet").is_dir():
    unet_2d = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    text_encoder.load_state_dict(torch.load(folder / "te.pt", weights_only=True))
else:
    unet_2d = pretrain_2d(cfg, prompts, pixel_scheduler(), log)
    unet_2d.save_pretrained(folder / "unet")
    torch.save(text_encoder.state_dict(), folder / "te.pt")
text_encoder.eval().requires_grad_(False)
prompts.cache.clear()
frames, caption = source_video(cfg.frames, cfg.size, cfg.source_color, cfg.source_shape)
video = (torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0)[None]
for spec in sys.argv[2:]:
    c = copy.deepcopy(cfg)
    for kv in spec.split(","):
        k, v = kv.split("=")
        setattr(c, k, type(getattr(c, k))(v))
    r = run_seed(c, 0, folder, prompts, tokenizer, text_encoder, unet_2d, video, lambda m: None, out)
    log(spec + " " + ", ".join(f"{k}={v:.3f}" for k, v in r.items() if k in ("motion_corr_inverted","motion_corr_noise","displacement_ratio","edit_color_acc","color_var_video","color_var_per_frame_2d")))
