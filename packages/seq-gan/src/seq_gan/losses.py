"""SeQ-GAN losses: semantic-enhanced perceptual loss (Sec. 3.3), codebook entropy (Sec. 3.4), hinge patch-GAN.

All operate on plain tensors and ``PerceptualNet`` feature dicts, so they are testable by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from seq_gan.models.quantizer import squared_distances

LOW_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
SEM_LAYERS = ("relu5_3", "logits")


def layer_loss(
    feats_hat: Mapping[str, torch.Tensor], feats: Mapping[str, torch.Tensor], layers: Sequence[str]
) -> torch.Tensor:
    """sum_l ||y_hat^l - y^l||^2 / (H_l W_l C_l), averaged over the batch (element means)."""
    missing = [name for name in layers if name not in feats or name not in feats_hat]
    if missing:
        raise KeyError(f"perceptual net has no tap(s) {missing} (has {sorted(feats)})")
    return sum(F.mse_loss(feats_hat[name], feats[name].detach()) for name in layers)  # type: ignore[return-value]


def semantic_perceptual_loss(
    feats_hat: Mapping[str, torch.Tensor],
    feats: Mapping[str, torch.Tensor],
    alpha: float,
    low_layers: Sequence[str] = LOW_LAYERS,
    sem_layers: Sequence[str] = SEM_LAYERS,
) -> torch.Tensor:
    """L^alpha = alpha * L^sem + (1 - alpha) * L^low (Sec. 3.3); both terms use the same normalised MSE."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    total = feats_hat[next(iter(feats_hat))].new_zeros(())
    if alpha > 0:
        total = total + alpha * layer_loss(feats_hat, feats, sem_layers)
    if alpha < 1:
        total = total + (1.0 - alpha) * layer_loss(feats_hat, feats, low_layers)
    return total


def soft_usage(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """D_bar = mean over the N positions of softmax_k(-||z_i - e_k||^2): the batch's soft code usage [K]."""
    return torch.softmax(-squared_distances(z.float(), codebook.float()), dim=1).mean(0)


def codebook_entropy_loss(z: torch.Tensor, codebook: torch.Tensor, gamma: float = 0.01) -> torch.Tensor:
    """-gamma * H(D_bar) with z [N, D] = every position of the batch (Sec. 3.4).

    The paper prints +gamma H; its stated aim (a smoother D_bar, i.e. more codes in use) needs entropy maximised.
    """
    d_bar = soft_usage(z, codebook)
    entropy = -(d_bar * torch.log(d_bar.clamp_min(1e-12))).sum()
    return -gamma * entropy


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: 0.5 * (E relu(1 - D(x)) + E relu(1 + D(x_hat)))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: -E D(x_hat)."""
    return -logits_fake.mean()


def adaptive_weight(
    rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """lambda = ||grad_G L_rec|| / (||grad_G L_gan|| + 1e-4), clamped to [0, max_weight], detached (VQGAN Eq. 7)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def gan_factor(step: int, start: int, warmup: int) -> tuple[bool, float]:
    """(train the discriminator?, weight of the adversarial term for the generator) at ``step``.

    The discriminator trains from ``start``; its loss reaches the generator only after ``warmup`` more steps, so a
    random discriminator never pushes the decoder (the GAN start that wrecks reconstructions, taming #44).
    """
    return step >= start, 1.0 if step >= start + warmup else 0.0


def tokenizer_objective(
    tokenizer,  # noqa: ANN001 - a VQTokenizer, possibly wrapped (DDP): it is called, never reached into
    perceptual,  # noqa: ANN001 - a PerceptualNet
    x: torch.Tensor,
    *,
    alpha: float,
    gamma: float,
    low_layers: Sequence[str] = LOW_LAYERS,
    sem_layers: Sequence[str] = SEM_LAYERS,
    l1_weight: float = 1.0,
    perceptual_weight: float = 1.0,
    target_feats: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 2 with L^alpha and the entropy term: L1 + L^alpha + L_vq - gamma H(D_bar) (no GAN).

    Returns (total loss, reconstruction loss L1 + L^alpha with its graph, reconstruction, detached parts). Phase 2
    (frozen token space) has no VQ or entropy term. ``target_feats``: the perceptual net's taps of ``x`` if the
    caller has them (they are constant per image, so a fixed data set can compute them once).
    """
    core = getattr(tokenizer, "module", tokenizer)
    x_hat, q, z = tokenizer(x, return_features=True)
    l1 = (x_hat - x).abs().mean()
    if target_feats is None:
        with torch.no_grad():
            target_feats = perceptual(x)
    perc = semantic_perceptual_loss(perceptual(x_hat), target_feats, alpha, low_layers, sem_layers)
    rec = l1_weight * l1 + perceptual_weight * perc
    total = rec + q.loss
    parts = {"l1": l1.detach(), "perceptual": perc.detach(), "vq": q.loss.detach()}
    if gamma > 0 and not core.quantizer.frozen:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        ent = codebook_entropy_loss(flat, core.quantizer.codebook.weight, gamma)
        total = total + ent
        parts["entropy"] = ent.detach()
    return total, rec, x_hat, parts
