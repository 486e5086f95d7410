"""Evaluation: codebook usage / perplexity, code-histogram probes, classifier features for FID, rFID / gFID / IS.

FID/IS take an injected feature network (a local Inception file for real data, a small classifier for the synthetic
digits); reference images and samples always go through the same resize path (``resize_for_features``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from visioncore.metrics import frechet_distance


def code_usage(tokens: torch.Tensor, num_codes: int) -> tuple[float, float]:
    """(fraction of the codebook used, perplexity exp(H) of the code frequencies) over a token set."""
    counts = torch.bincount(tokens.reshape(-1).long(), minlength=num_codes).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())


def code_histograms(tokens: torch.Tensor, num_codes: int) -> np.ndarray:
    """Per-image normalised code histograms [N, K] (the probe's input: position-free bag of codes)."""
    flat = tokens.reshape(tokens.shape[0], -1).long()
    hist = torch.zeros(flat.shape[0], num_codes, dtype=torch.float64)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    return (hist / flat.shape[1]).numpy()


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray) -> float:
    """Logistic-regression probe: fit on train, accuracy on val."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=2000, C=1.0)
    probe.fit(train_x, train_y)
    return float((probe.predict(val_x) == val_y).mean())


class EvalNet(nn.Module):
    """The evaluation classifier of the digits experiment (BatchNorm + strided convs, unlike the semantic net).

    ``features`` = 128-d penultimate activations (for FID), ``forward`` = class logits. Never used in training.
    """

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()

        def unit(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *unit(3, width, 1),
            *unit(width, width * 2, 2),
            *unit(width * 2, width * 4, 2),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(width * 4, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def augment_digits(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Nuisance augmentation matching how the digits are drawn: a random shift per image (replicate-padded by ``pad``,
    like the random paste offset) and a random permutation of the RGB channels per image (digit colour and
    background tint are random nuisance factors; a channel permutation keeps a saturated colour saturated)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    oy, ox = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator)
    rows = (oy + torch.arange(h))[:, None, :, None].expand(b, c, h, w)
    cols = (ox + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
    shifted = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    perm = torch.argsort(torch.rand(b, c, generator=generator), dim=1)
    return shifted.gather(1, perm[:, :, None, None].expand(b, c, h, w))


def train_classifier(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    lr: float,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    logits=None,  # noqa: ANN001 - callable net -> logits (default: net(x))
) -> nn.Module:
    """AdamW on cross-entropy with nuisance augmentation (``augment_digits``) and a one-cycle schedule (15 % warm-up,
    cosine decay); returns the net in eval mode. Augmentation is what lets 1,500 digits reach >= 0.9 on val."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    get_logits = logits or (lambda x: net(x))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        loss = F.cross_entropy(get_logits(augment_digits(images[idx], g)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:  # noqa: ANN001
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def feature_fid(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    return frechet_distance(feats_a.double().numpy(), feats_b.double().numpy())


# --------------------------------------------------------------------------------------- Inception-based metrics


def resize_for_features(images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """The one resize path for reference images and samples alike: [-1, 1] -> [0, 1], bilinear (antialiased)."""
    x = ((images.float() + 1.0) / 2.0).clamp(0, 1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


class InceptionFeatures(nn.Module):
    """torchvision Inception-v3 from a local file: 2048-d pool features and 1000 logits (for FID and IS).

    Accepts torchvision's ``inception_v3`` state dict. (pytorch-fid's TF-ported ``pt_inception-2015-12-05`` weights
    use another module layout and are not supported here; numbers differ slightly from the papers' protocol.)
    """

    def __init__(self, weights: str):
        from torchvision.models import inception_v3

        from visioncore.backbones import load_weights

        super().__init__()
        self.net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        load_weights(self.net, weights)
        self.net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        h = (x01 - self.mean) / self.std
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):  # fmt: skip
            h = getattr(net, name)(h)
        pool = net.avgpool(h).flatten(1)
        return pool, net.fc(pool)


@torch.no_grad()
def inception_stats(
    extractor: nn.Module, images: torch.Tensor, batch_size: int = 50, size: int = 299
) -> tuple[np.ndarray, np.ndarray]:
    """(pool features [N, D], logits [N, C]) of images in [-1, 1] through ``resize_for_features``."""
    pools, logits = [], []
    device = next(extractor.parameters()).device
    for i in range(0, len(images), batch_size):
        p, lg = extractor(resize_for_features(images[i : i + batch_size], size).to(device))
        pools.append(p.double().cpu())
        logits.append(lg.double().cpu())
    return torch.cat(pools).numpy(), torch.cat(logits).numpy()


def fid_from_stats(feats: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray) -> float:
    """FID of features against reference statistics (an .npz with ``mu`` and ``sigma``)."""
    import scipy.linalg

    mu, sigma = feats.mean(0), np.atleast_2d(np.cov(feats, rowvar=False))
    covmean = scipy.linalg.sqrtm(sigma @ ref_sigma)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(len(sigma)) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma + offset) @ (ref_sigma + offset))
    diff = mu - ref_mu
    return float(diff @ diff + np.trace(sigma) + np.trace(ref_sigma) - 2 * np.trace(np.real(covmean)))
