"""Accelerate training loops: tokenizer phase 1 / phase 2 (with the patch GAN) and the MaskGIT / AR transformers.

Both loops save the full state (models, discriminator, both optimisers, schedulers, RNGs) under
``<out>/checkpoints/step_XXXXXX/`` and resume exactly (``resume=True``): N steps equal k steps + resume + N - k steps.
Phase 1 (Fig. 7): encoder, codebook and decoder with L1 + L^{alpha=1} + L_vq - gamma H + GAN. Phase 2: the token space
(encoder, quant_conv, codebook) frozen, the enhanced decoder finetuned with L1 + L^{alpha=0} + GAN.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from seq_gan.config import PerceptualConfig, TokenizerConfig, TransformerConfig
from seq_gan.data.folders import ImageFolderDataset
from seq_gan.data.tokens import load_tokens
from seq_gan.losses import adaptive_weight, gan_factor, hinge_d_loss, hinge_g_loss, tokenizer_objective
from seq_gan.models.discriminator import PatchDiscriminator
from seq_gan.models.perceptual import PerceptualNet, SmallPerceptualNet, VGG16Perceptual
from seq_gan.models.vqgan import VQTokenizer
from visioncore.config import to_dict
from visioncore.files import atomic_write_text
from visioncore.hub import CheckpointError
from visioncore.training import (
    CheckpointManager,
    check_finite,
    iterate_steps,
    make_accelerator,
    save_final,
    seed_everything,
    should_save,
    warmup_cosine_schedule,
)

META_FILE = "seq_gan_meta.json"


def build_perceptual(cfg: PerceptualConfig) -> PerceptualNet:
    """The frozen perceptual net: VGG16 from a local torchvision file, or a saved ``SmallPerceptualNet`` folder.

    ``kind: small`` without weights is a random network (smoke tests only).
    """
    if cfg.kind == "vgg16":
        if cfg.weights is None:
            raise CheckpointError("perceptual.weights: give the path of a local torchvision VGG16 state dict")
        return VGG16Perceptual(cfg.weights)
    if cfg.weights is None:
        return SmallPerceptualNet().freeze()
    return SmallPerceptualNet.from_pretrained(cfg.weights).freeze()


def load_tokenizer(model_dir: str | Path) -> VQTokenizer:
    """A trained tokenizer from ``DIR`` (a training output with ``model/``, or the model folder itself)."""
    folder = Path(model_dir)
    if (folder / "model").is_dir():
        folder = folder / "model"
    if not folder.is_dir():
        raise CheckpointError(f"{model_dir}: tokenizer folder not found")
    return VQTokenizer.from_pretrained(folder)


def _loader(cfg: TokenizerConfig) -> DataLoader:
    if cfg.data.root is None:
        raise ValueError("data.root: give the dataset root (root/<split>/[<class>/]*.png)")
    dataset = ImageFolderDataset(cfg.data.root, cfg.data.split, cfg.model.resolution, cfg.data.labels)
    return DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=cfg.data.num_workers,
    )


def _first_batch(dataset, n: int) -> torch.Tensor:  # noqa: ANN001
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])


def train_tokenizer(
    cfg: TokenizerConfig,
    out: str | Path,
    *,
    phase: int = 1,
    init: str | Path | None = None,
    resume: bool = False,
    cpu: bool = False,
    log=print,  # noqa: ANN001
) -> Path:
    """Train phase 1 (from scratch, or finetuned from ``init``: LSUN from ImageNet) or phase 2 (from the phase-1
    output ``init``); returns ``out/model``."""
    if phase not in (1, 2):
        raise ValueError(f"--phase must be 1 or 2, got {phase}")
    out = Path(out)
    if phase == 2 and init is None:
        raise ValueError("--phase 2 needs --init DIR (the phase-1 output)")
    base = load_tokenizer(init) if init is not None else None  # checked before anything is written
    if base is not None and phase == 2 and base.decoder_kind != "conv":
        raise ValueError(f"{init}: already a phase-2 tokenizer (enhanced decoder)")
    loader = _loader(cfg)
    seed_everything(cfg.train.seed)
    perceptual = build_perceptual(cfg.perceptual)
    if base is None:
        model = VQTokenizer(**cfg.model.kwargs())
    else:
        model = base.enhanced(cfg.model.hit_window) if phase == 2 else base.train()
    if cfg.perceptual.calibrate:
        perceptual.calibrate(_first_batch(loader.dataset, 256))
    if phase == 1 and base is None and cfg.init_codes_from_data:
        with torch.no_grad():
            z = model.encode_features(_first_batch(loader.dataset, 256))
            model.quantizer.init_from(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
    acc = make_accelerator(out, mixed_precision=cfg.train.mixed_precision, config=to_dict(cfg),
                           project_name=f"tokenizer_phase{phase}", cpu=cpu)  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    betas = tuple(cfg.train.betas)
    opt_g = torch.optim.Adam(params, lr=cfg.train.lr, betas=betas, weight_decay=cfg.train.weight_decay)
    sched = warmup_cosine_schedule(opt_g, cfg.train.warmup_steps, cfg.train.steps, cfg.train.min_lr_ratio)
    perceptual = perceptual.to(acc.device)
    objects = [model, opt_g, sched, loader]
    disc = opt_d = None
    if cfg.gan.enabled:
        disc = PatchDiscriminator(ndf=cfg.gan.ndf, n_layers=cfg.gan.n_layers)
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.gan.lr, betas=betas)
        objects += [disc, opt_d]
    prepared = acc.prepare(*objects)
    model, opt_g, sched, loader = prepared[:4]
    if disc is not None:
        disc, opt_d = prepared[4:]
    core = acc.unwrap_model(model)
    ckpt = CheckpointManager(acc, out, keep_last=cfg.train.keep_last)
    start = ckpt.resume() if resume else 0
    alpha = cfg.loss.alpha
    gamma = cfg.loss.gamma if phase == 1 else 0.0
    for step, (x, _) in iterate_steps(acc, loader, start_step=start, max_steps=cfg.train.steps):
        train_d, adv = gan_factor(step, cfg.gan.start, cfg.gan.warmup) if disc is not None else (False, 0.0)
        loss, rec, x_hat, parts = tokenizer_objective(
            model, perceptual, x, alpha=alpha, gamma=gamma, low_layers=cfg.perceptual.low_layers,
            sem_layers=cfg.perceptual.sem_layers, l1_weight=cfg.loss.l1_weight,
            perceptual_weight=cfg.loss.perceptual_weight,
        )  # fmt: skip
        if (
            disc is not None
        ):  # always run D on x_hat (DDP needs the same graph every step); weight 0 before warm-up
            g_loss = hinge_g_loss(disc(x_hat))
            d_weight = (
                adaptive_weight(rec, g_loss, core.last_layer, cfg.gan.max_adaptive_weight)
                if adv
                else rec.new_zeros(())
            )
            loss = loss + cfg.gan.weight * adv * d_weight * g_loss
            parts["g_loss"], parts["d_weight"] = g_loss.detach(), d_weight
        opt_g.zero_grad()
        acc.backward(loss)
        opt_g.step()
        sched.step()
        if disc is not None:
            d_loss = hinge_d_loss(disc(x), disc(x_hat.detach()))
            opt_d.zero_grad()
            acc.backward(d_loss * float(train_d))
            if train_d:
                opt_d.step()
            parts["d_loss"] = d_loss.detach()
        done = step + 1
        if done % cfg.train.log_every == 0 or done == cfg.train.steps:
            check_finite(parts | {"loss": loss}, step, accelerator=acc, checkpoint=ckpt.latest())
            logs = {k: float(v) for k, v in parts.items()}
            logs |= _usage_logs(core, acc) | {"loss": float(loss.detach()), "lr": sched.get_last_lr()[0]}
            acc.log(logs, step=done)
            if acc.is_main_process:
                log(f"step {done}: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))
        if should_save(done, cfg.train.save_every, cfg.train.steps):
            ckpt.save(done)
    model_dir = save_final(acc, out, model=model, config=cfg, checkpoints=ckpt, step=cfg.train.steps)
    acc.end_training()
    return model_dir


def _usage_logs(core: VQTokenizer, acc) -> dict[str, float]:  # noqa: ANN001
    """Codebook usage and perplexity since the last log (all processes), then reset the counter."""
    counts = core.quantizer.usage.clone()
    if acc.num_processes > 1:
        counts = acc.reduce(counts, reduction="sum")
    core.quantizer.usage.zero_()
    total = counts.sum()
    if total == 0:
        return {}
    p = counts.double() / total
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).double().mean()), "perplexity": float(entropy.exp())}


# ------------------------------------------------------------------------------------------------ transformers


def build_transformer(cfg: TransformerConfig, num_codes: int, grid: int):  # noqa: ANN201
    from seq_gan.ar import ARTransformer
    from seq_gan.maskgit import MaskGIT

    cls = MaskGIT if cfg.kind == "maskgit" else ARTransformer
    mc = cfg.model
    return cls(num_codes=num_codes, grid=grid, num_classes=mc.num_classes, dim=mc.dim, depth=mc.depth,
               heads=mc.heads, mlp_ratio=mc.mlp_ratio, dropout=mc.dropout)  # fmt: skip


def train_transformer(
    cfg: TransformerConfig,
    tokens_path: str | Path,
    tokenizer_dir: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    cpu: bool = False,
    log=print,  # noqa: ANN001
) -> Path:
    """Train MaskGIT or the AR model on a token cache written by ``encode`` with the same tokenizer."""
    out = Path(out)
    tokenizer = load_tokenizer(tokenizer_dir)
    cache = load_tokens(tokens_path, expected_hash=tokenizer.token_space_hash(), grid=tokenizer.grid,
                        num_codes=tokenizer.num_codes)  # fmt: skip
    labels = cache.labels.clone()
    if cfg.class_conditional:
        if (labels < 0).any():
            raise ValueError(f"{tokens_path}: unlabelled tokens; set class_conditional=false")
        if int(labels.max()) >= cfg.model.num_classes:
            raise ValueError(
                f"{tokens_path}: label {int(labels.max())} >= model.num_classes {cfg.model.num_classes}"
            )
    else:
        labels.fill_(cfg.model.num_classes)  # the null class
    seed_everything(cfg.train.seed)
    model = build_transformer(cfg, tokenizer.num_codes, tokenizer.grid)
    dataset = TensorDataset(cache.tokens.reshape(len(labels), -1).long(), labels)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    acc = make_accelerator(out, mixed_precision=cfg.train.mixed_precision, config=to_dict(cfg),
                           project_name=f"{cfg.kind}", cpu=cpu)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                            weight_decay=cfg.train.weight_decay)  # fmt: skip
    sched = warmup_cosine_schedule(opt, cfg.train.warmup_steps, cfg.train.steps, cfg.train.min_lr_ratio)
    model, opt, sched, loader = acc.prepare(model, opt, sched, loader)
    ckpt = CheckpointManager(acc, out, keep_last=cfg.train.keep_last)
    start = ckpt.resume() if resume else 0
    for step, (tokens, y) in iterate_steps(acc, loader, start_step=start, max_steps=cfg.train.steps):
        loss = (
            acc.unwrap_model(model).loss(tokens, y) if acc.num_processes == 1 else _ddp_loss(model, tokens, y)
        )
        opt.zero_grad()
        acc.backward(loss)
        opt.step()
        sched.step()
        done = step + 1
        if done % cfg.train.log_every == 0 or done == cfg.train.steps:
            check_finite(loss, step, accelerator=acc, checkpoint=ckpt.latest())
            acc.log({"loss": float(loss.detach()), "lr": sched.get_last_lr()[0]}, step=done)
            if acc.is_main_process:
                log(f"step {done}: loss {float(loss.detach()):.4f}")
        if should_save(done, cfg.train.save_every, cfg.train.steps):
            ckpt.save(done)
    model_dir = save_final(acc, out, model=model, config=cfg, checkpoints=ckpt, step=cfg.train.steps)
    if acc.is_main_process:
        meta = {"kind": cfg.kind, "tokenizer_hash": cache.tokenizer_hash, "sampler": to_dict(cfg.sampler)}
        atomic_write_text(model_dir / META_FILE, json.dumps(meta, indent=2))
    acc.wait_for_everyone()
    acc.end_training()
    return model_dir


def _ddp_loss(model, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    """The loss through the DDP wrapper's forward (so gradients are synchronised)."""
    core = model.module
    if hasattr(core, "mask_tokens"):
        inp, mask = core.mask_tokens(tokens)
        logits = model(inp, labels)
        return torch.nn.functional.cross_entropy(logits[mask], tokens.long()[mask])
    logits = model(tokens, labels)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, core.num_codes), tokens.reshape(-1).long())
