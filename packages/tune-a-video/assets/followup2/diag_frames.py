import sys, time, torch, numpy as np
from pathlib import Path
from visioncore.config import load_config
from tune_a_video.repro import ReproConfig, PromptBank, pixel_scheduler, find_objects
from tune_a_video.tiny_sd import tiny_text_encoder
from tune_a_video.data.synthetic import source_video
from tune_a_video.models import InflatedUNet3DConditionModel, freeze_for_tuning
from tune_a_video.pipeline import TuneAVideoPipeline, ddim_from_config
from tune_a_video.losses import diffusion_loss, sample_timesteps
from transformers import CLIPTokenizer
from visioncore.training import seed_everything
folder = Path("/tmp/tav_diag/model")
cfg = load_config(ReproConfig, "repro", ["norm_num_groups=8", "context_tokens=8", "train_text_encoder=true"], package="tune_a_video")
tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
te = tiny_text_encoder(); te.load_state_dict(torch.load(folder / "te.pt", weights_only=True)); te.eval().requires_grad_(False)
prompts = PromptBank(tok, te)
frames, _ = source_video(8, 16, "red", "square")
video = (torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0)[None]
def show(name, v):
    o = find_objects(v, 0.3)
    print(name, "areas", o.area.astype(int).tolist(), "cx", np.round(o.centroid_x, 1).tolist(), "max", np.round(v.amax((0,2,3)).numpy(),2).tolist())
    print("   colours", [tuple(np.round(c, 1)) for c in o.color])
sched = pixel_scheduler()
for tune_steps in [int(a) for a in sys.argv[1:]]:
    seed_everything(0)
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(folder); freeze_for_tuning(unet)
    ctx = prompts(["a red square moving right"])
    opt = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=cfg.tune_lr, weight_decay=1e-2)
    unet.train()
    for step in range(tune_steps):
        noise = torch.randn_like(video)
        loss = diffusion_loss(unet, sched, video, ctx, noise, sample_timesteps(sched, 1))
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0); opt.step()
    unet.eval()
    pipe = TuneAVideoPipeline(None, te, tok, unet, ddim_from_config(dict(sched.config))); pipe.set_progress_bar_config(disable=True)
    inv = pipe.invert(video, num_inference_steps=25)
    print(f"== tune_steps {tune_steps}; inverted std {inv.std():.3f}")
    show("recon g1 ''", pipe("", 8, 16, 16, 25, guidance_scale=1.0, latents=inv).videos[0])
    for p, g in [("a red square moving right", 3.0), ("a blue square moving right", 1.0), ("a blue square moving right", 3.0), ("a blue square", 3.0)]:
        show(f"{p!r} g{g}", pipe(p, 8, 16, 16, 25, guidance_scale=g, latents=inv).videos[0])
