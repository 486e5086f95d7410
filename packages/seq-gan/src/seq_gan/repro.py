"""The acceptance experiment of issue 18 (``seq-gan repro --out DIR``), on coloured digits with nuisance backgrounds.

Claim: phase-1 alpha = 1 puts class information into the tokens and makes class-conditional generation with the same
MaskGIT recipe better; phase 2 improves reconstruction without changing a token.

Fixed for all seeds: the data (``make-synthetic``, read back through ``ImageFolderDataset``), the semantic net (VGG
stand-in, taps 1-4 = L_low, tap 4 + logits = L_sem, unit-RMS taps) and the evaluation net (another architecture,
never used in training). Per seed (initialisation and batch order), with the same initialisation, data order, steps
and learning rates for every tokenizer: ``alpha0`` (alpha 0, gamma), ``alpha1`` (alpha 1, gamma), ``gamma0`` (alpha 1,
gamma 0), ``alpha1_p2`` (phase 2 on ``alpha1``: token space frozen, enhanced decoder, alpha 0); one class-conditional
MaskGIT per token set (``alpha1_p2`` decodes ``alpha1``'s samples), plus a MaskGIT on permuted labels (control).
Seeds run in parallel single-threaded worker processes; each seed's results are written atomically and reused when
the run is restarted with the same config.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from seq_gan.config import ReproConfig
from seq_gan.data.folders import ImageFolderDataset
from seq_gan.data.synthetic import make_synthetic, read_nuisance
from seq_gan.evaluate import (
    EvalNet,
    batched,
    code_histograms,
    code_usage,
    feature_fid,
    probe_accuracy,
    train_classifier,
)
from seq_gan.losses import layer_loss, tokenizer_objective
from seq_gan.maskgit import MaskGIT
from seq_gan.models.perceptual import SmallPerceptualNet
from seq_gan.models.vqgan import VQTokenizer
from visioncore.config import to_dict
from visioncore.files import atomic_path, atomic_write_json

LOW = ("tap1", "tap2", "tap3", "tap4")
SEM = ("tap4", "logits")
TOKENIZERS = ("alpha0", "alpha1", "gamma0")
GENERATORS = ("alpha0", "alpha1", "alpha1_p2", "gamma0")


def _config_hash(cfg: ReproConfig) -> str:
    """Hash of the settings one seed's results depend on (not the seed list or the worker count)."""
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("seeds", "workers")}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ shared parts


def _load_split(root: Path, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    ds = ImageFolderDataset(root, split, resolution=size, labels="folders")
    images, labels = ds.load_all()
    digits = torch.tensor([int(ds.classes[y]) for y in labels.tolist()])
    rows = read_nuisance(root)
    background = np.array(
        [rows[p.relative_to(root).as_posix()]["background"] == "stripes" for p, _ in ds.samples]
    )
    return images, digits, background.astype(np.int64)


def prepare_shared(cfg: ReproConfig, out: Path, log=print) -> dict:  # noqa: ANN001
    """Data, semantic net and evaluation net (fixed across seeds), cached under ``out/shared``."""
    data = out / "data"
    if not (data / "nuisance.csv").is_file():
        make_synthetic(
            data, canvas=cfg.canvas, digit_size=cfg.digit_size, num_train=cfg.num_train, seed=cfg.data_seed
        )
    shared = out / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    nets = shared / f"nets_{_shared_hash(cfg)}.pt"
    x_tr, y_tr, bg_tr = _load_split(data, "train", cfg.canvas)
    x_va, y_va, bg_va = _load_split(data, "val", cfg.canvas)
    if nets.is_file():
        state = torch.load(nets, weights_only=True)
    else:
        t0 = time.process_time()
        semantic, evalnet = train_fixed_nets(cfg, x_tr, y_tr)
        state = {"semantic": semantic.state_dict(), "eval": evalnet.state_dict()}
        with atomic_path(nets) as tmp:
            torch.save(state, tmp)
        log(f"[shared] semantic net and eval net trained in {time.process_time() - t0:.0f} CPU-s")
    semantic, evalnet = _nets(cfg, state)
    with torch.no_grad():
        sem_acc = float((semantic(x_va)["logits"].argmax(1) == y_va).float().mean())
        eval_acc = float((evalnet(x_va).argmax(1) == y_va).float().mean())
        f_tr, f_va = batched(evalnet.features, x_tr), batched(evalnet.features, x_va)
    log(f"[shared] val accuracy: semantic net {sem_acc:.3f}, eval net {eval_acc:.3f}")
    check_classifiers({"semantic net": sem_acc, "eval net": eval_acc}, cfg.min_classifier_acc)
    return {
        "semantic_net_acc": sem_acc,
        "eval_net_acc": eval_acc,
        "gfid_real": feature_fid(f_tr, f_va),
        "_data": (x_tr, y_tr, bg_tr, x_va, y_va, bg_va),
    }


def train_fixed_nets(
    cfg: ReproConfig, x_tr: torch.Tensor, y_tr: torch.Tensor
) -> tuple[SmallPerceptualNet, EvalNet]:
    """The semantic net (then calibrated to unit-RMS taps) and the evaluation net, trained on the train split.

    Single-threaded whatever the caller's thread count, so the fixed nets (and their val accuracies) do not depend on
    the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        semantic = SmallPerceptualNet(tuple(cfg.semantic_widths), num_classes=10)
        train_classifier(semantic, x_tr, y_tr, steps=cfg.semantic_steps, lr=cfg.classifier_lr,
                         weight_decay=cfg.classifier_weight_decay, seed=cfg.data_seed,
                         logits=lambda x: semantic.raw_features(x)["logits"])  # fmt: skip
        semantic.freeze().calibrate(x_tr)
        evalnet = train_classifier(EvalNet(), x_tr, y_tr, steps=cfg.eval_steps, lr=cfg.classifier_lr,
                                   weight_decay=cfg.classifier_weight_decay, seed=cfg.data_seed + 1)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return semantic, evalnet


def check_classifiers(val_acc: dict[str, float], minimum: float) -> None:
    """Refuse to run the seeds on fixed classifiers that do not know the classes (the issue's eval_net_acc >= 0.9):
    a weak eval net cannot score reconstructions or samples, a weak semantic net puts no class into L_sem."""
    weak = [f"{name} {acc:.3f}" for name, acc in val_acc.items() if acc < minimum]
    if weak:
        raise ValueError(
            f"fixed classifier below min_classifier_acc={minimum} on val: {', '.join(weak)}; train it longer "
            "(semantic_steps / eval_steps) before the tokenizers are compared"
        )


def _shared_hash(cfg: ReproConfig) -> str:
    """Hash of the settings that decide the data and the two fixed networks (their cache key)."""
    keys = ("data_seed", "canvas", "digit_size", "num_train", "semantic_widths", "semantic_steps", "eval_steps",
            "classifier_lr", "classifier_weight_decay")  # fmt: skip
    return hashlib.sha256(json.dumps({k: getattr(cfg, k) for k in keys}, default=list).encode()).hexdigest()[
        :12
    ]


def _nets(cfg: ReproConfig, state: dict) -> tuple[SmallPerceptualNet, EvalNet]:
    semantic = SmallPerceptualNet(tuple(cfg.semantic_widths), num_classes=10)
    semantic.load_state_dict(state["semantic"])
    evalnet = EvalNet()
    evalnet.load_state_dict(state["eval"])
    return semantic.freeze(), evalnet.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------- one seed


def _batches(n: int, batch: int, steps: int, seed: int):  # noqa: ANN202
    """Index batches of shuffled epochs, the same order for every model of a seed."""
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch + 1, batch):
            yield perm[i : i + batch]
            done += 1
            if done >= steps:
                return


def train_tokenizer(tok: VQTokenizer, semantic, x: torch.Tensor, *, alpha: float, gamma: float, steps: int,
                    lr: float, batch: int, seed: int) -> VQTokenizer:  # fmt: skip
    # channels-last convolutions are ~12 % cheaper on CPU (oneDNN) for these small maps; the maths is the same
    tok.to(memory_format=torch.channels_last).train()
    semantic.to(memory_format=torch.channels_last)
    targets = _taps(semantic, x)  # the frozen net's taps of the fixed images: computed once, not every step
    opt = torch.optim.Adam([p for p in tok.parameters() if p.requires_grad], lr=lr)
    for idx in _batches(len(x), batch, steps, seed):
        xb = x[idx].contiguous(memory_format=torch.channels_last)
        target = {name: taps[idx] for name, taps in targets.items()}
        loss, _, _, _ = tokenizer_objective(
            tok, semantic, xb, alpha=alpha, gamma=gamma, low_layers=LOW, sem_layers=SEM, target_feats=target
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tok.eval()


@torch.no_grad()
def _taps(semantic, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:  # noqa: ANN001
    chunks = [semantic(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return {name: torch.cat([c[name] for c in chunks]) for name in chunks[0]}


def train_maskgit(model: MaskGIT, tokens: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float, batch: int,
                  seed: int) -> MaskGIT:  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.96), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    g = torch.Generator().manual_seed(seed + 7)
    flat = tokens.reshape(len(tokens), -1).long()
    model.train()
    for idx in _batches(len(flat), batch, steps, seed):
        loss = model.loss(flat[idx], labels[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def _tokens(tok: VQTokenizer, x: torch.Tensor) -> torch.Tensor:
    return batched(lambda b: tok.encode(b).indices, x)


@torch.no_grad()
def _decode(tok: VQTokenizer, tokens: torch.Tensor) -> torch.Tensor:
    return batched(lambda t: tok.decode_indices(t).clamp(-1, 1), tokens)


def run_seed(cfg: ReproConfig, out: Path, seed: int) -> dict:
    """Every tokenizer and generator of one seed; returns its metrics (also written to ``out/seeds/``)."""
    torch.set_num_threads(1)
    t_start = time.process_time()
    progress = out / "seeds" / f"seed_{seed}.log"
    progress.parent.mkdir(parents=True, exist_ok=True)

    def note(stage: str) -> None:  # progress of a long run, readable while it runs
        with progress.open("a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {stage} done, {time.process_time() - t_start:.0f} CPU-s\n")

    state = torch.load(out / "shared" / f"nets_{_shared_hash(cfg)}.pt", weights_only=True)
    semantic, evalnet = _nets(cfg, state)
    x_tr, y_tr, bg_tr, x_va, y_va, bg_va = (
        *_load_split(out / "data", "train", cfg.canvas),
        *_load_split(out / "data", "val", cfg.canvas),
    )
    torch.manual_seed(seed)
    init = VQTokenizer(**cfg.tokenizer.kwargs())
    with torch.no_grad():  # codes initialised from encoder outputs of one batch (same for every tokenizer)
        first = next(_batches(len(x_tr), 256, 1, seed + 1000))
        z = init.encode_features(x_tr[first])
        init.quantizer.init_from(
            z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), torch.Generator().manual_seed(seed)
        )
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    settings = {"alpha0": (0.0, cfg.gamma), "alpha1": (1.0, cfg.gamma), "gamma0": (1.0, 0.0)}
    toks: dict[str, VQTokenizer] = {}
    for name, (alpha, gamma) in settings.items():
        tok = VQTokenizer(**cfg.tokenizer.kwargs())
        tok.load_state_dict(init_state)
        toks[name] = train_tokenizer(tok, semantic, x_tr, alpha=alpha, gamma=gamma, steps=cfg.tokenizer_steps,
                                     lr=cfg.tokenizer_lr, batch=cfg.batch_size, seed=seed)  # fmt: skip
        note(f"tokenizer {name}")
    p2 = toks["alpha1"].enhanced()
    toks["alpha1_p2"] = train_tokenizer(p2, semantic, x_tr, alpha=0.0, gamma=0.0, steps=cfg.phase2_steps,
                                        lr=cfg.phase2_lr, batch=cfg.batch_size, seed=seed + 1)  # fmt: skip
    t_tok = time.process_time() - t_start
    note("phase 2")

    m: dict[str, float] = {}
    K = cfg.tokenizer.num_codes
    tokens_tr = {n: _tokens(toks[n], x_tr) for n in TOKENIZERS}
    tokens_va = {n: _tokens(toks[n], x_va) for n in TOKENIZERS}
    m["tokens_identical_p2"] = float(
        (_tokens(toks["alpha1_p2"], x_va) == tokens_va["alpha1"]).all(dim=(1, 2)).float().mean()
    )
    for n in TOKENIZERS:
        m[f"usage_{n}"], m[f"perplexity_{n}"] = code_usage(tokens_va[n], K)
        h_tr, h_va = code_histograms(tokens_tr[n], K), code_histograms(tokens_va[n], K)
        m[f"probe_acc_{n}"] = probe_accuracy(h_tr, y_tr.numpy(), h_va, y_va.numpy())
        m[f"probe_background_{n}"] = probe_accuracy(h_tr, bg_tr, h_va, bg_va)
    perm = np.random.default_rng(seed).permutation(len(y_tr))
    h_tr, h_va = code_histograms(tokens_tr["alpha1"], K), code_histograms(tokens_va["alpha1"], K)
    m["probe_acc_shuffled"] = probe_accuracy(h_tr, y_tr.numpy()[perm], h_va, y_va.numpy())

    f_tr = batched(evalnet.features, x_tr)
    f_va = batched(evalnet.features, x_va)
    recon_tr: dict[str, torch.Tensor] = {}
    for n in GENERATORS:
        src = "alpha1" if n == "alpha1_p2" else n
        rec_va = _decode(toks[n], tokens_va[src])
        recon_tr[n] = _decode(toks[n], tokens_tr[src])
        m[f"l1_{n}"] = float((rec_va - x_va).abs().mean())
        with torch.no_grad():
            m[f"plow_{n}"] = float(layer_loss(semantic(rec_va), semantic(x_va), LOW))
            m[f"rec_class_acc_{n}"] = float((evalnet(rec_va).argmax(1) == y_va).float().mean())
        m[f"rfid_{n}"] = feature_fid(batched(evalnet.features, rec_va), f_va)

    # the tokenizer metrics are final here: keep them readable while the generators train
    atomic_write_json(out / "seeds" / f"seed_{seed}_tokenizers.json", m)
    note("tokenizer metrics")
    labels = torch.arange(10).repeat_interleave(cfg.samples_per_class)
    sampled: dict[str, torch.Tensor] = {}
    jobs = [(n, tokens_tr[n], y_tr) for n in TOKENIZERS] + [
        ("shuffled", tokens_tr["alpha1"], y_tr[torch.from_numpy(perm)])
    ]
    for n, tokens, y in jobs:
        torch.manual_seed(seed + 1)  # the same MaskGIT initialisation for every token set
        model = MaskGIT(num_codes=K, grid=tokens.shape[1], num_classes=10, **_mg_kwargs(cfg))
        train_maskgit(
            model, tokens, y, steps=cfg.maskgit_steps, lr=cfg.maskgit_lr, batch=cfg.batch_size, seed=seed
        )
        sampled[n] = model.sample(labels, steps=cfg.sampler.steps, temperature=cfg.sampler.temperature,
                                  confidence_noise=cfg.sampler.confidence_noise,
                                  generator=torch.Generator().manual_seed(seed))  # fmt: skip
        note(f"maskgit {n}")
    samples = {}
    for n in GENERATORS:
        samples[n] = _decode(toks[n], sampled["alpha1" if n == "alpha1_p2" else n])
        with torch.no_grad():
            m[f"sample_class_acc_{n}"] = float((evalnet(samples[n]).argmax(1) == labels).float().mean())
        f_s = batched(evalnet.features, samples[n])
        m[f"gfid_{n}"] = feature_fid(f_s, f_tr)
        m[f"gfid_vs_recon_{n}"] = feature_fid(f_s, batched(evalnet.features, recon_tr[n]))
    shuffled = _decode(toks["alpha1"], sampled["shuffled"])
    with torch.no_grad():
        m["sample_class_acc_shuffled"] = float((evalnet(shuffled).argmax(1) == labels).float().mean())
    random_tokens = torch.randint(
        0, K, sampled["alpha1"].shape, generator=torch.Generator().manual_seed(seed)
    )
    m["gfid_random_tokens"] = feature_fid(
        batched(evalnet.features, _decode(toks["alpha1"], random_tokens)), f_tr
    )
    m["cpu_seconds"] = time.process_time() - t_start
    m["cpu_seconds_tokenizers"] = t_tok
    if seed == cfg.seeds[0]:
        _figure(
            out / "figure.png",
            x_va,
            {n: _decode(toks[n], tokens_va["alpha1" if n == "alpha1_p2" else n]) for n in GENERATORS},
            samples,
        )
    return m


def _mg_kwargs(cfg: ReproConfig) -> dict:
    mc = cfg.maskgit
    return dict(dim=mc.dim, depth=mc.depth, heads=mc.heads, mlp_ratio=mc.mlp_ratio, dropout=mc.dropout)


def _figure(
    path: Path, x_va: torch.Tensor, recs: dict[str, torch.Tensor], samples: dict[str, torch.Tensor]
) -> None:
    """Rows: 10 val images; their reconstructions per tokenizer; one sample per class per generator."""
    from visioncore.viz import save_image_grid

    rows = [x_va[:10]] + [recs[n][:10] for n in GENERATORS]
    per_class = len(samples["alpha1"]) // 10
    rows += [samples[n][::per_class][:10] for n in GENERATORS]
    grid = (torch.cat(rows) + 1) / 2
    with atomic_path(path) as tmp:
        save_image_grid(tmp, grid.clamp(0, 1), nrow=10)


def _seed_worker(args: tuple[dict, str, int]) -> dict:
    from omegaconf import OmegaConf

    cfg_dict, out, seed = args
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ReproConfig), cfg_dict))
    out = Path(out)
    path = out / "seeds" / f"seed_{seed}.json"
    chash = _config_hash(cfg)
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config_hash") == chash:
            return saved["metrics"]
    metrics = run_seed(cfg, out, seed)
    atomic_write_json(path, {"config_hash": chash, "seed": seed, "metrics": metrics})
    return metrics


# ------------------------------------------------------------------------------------------------ the table

GATES = [
    ("rec_class_acc_alpha0 >= 0.5", lambda m: m["rec_class_acc_alpha0"] >= 0.5),
    ("rec_class_acc_alpha1 >= 0.5", lambda m: m["rec_class_acc_alpha1"] >= 0.5),
    ("probe_acc_alpha1 >= probe_acc_alpha0 + 0.03", lambda m: m["probe_acc_alpha1"] >= m["probe_acc_alpha0"] + 0.03),
    ("sample_class_acc_alpha1 >= sample_class_acc_alpha0 + 0.05",
     lambda m: m["sample_class_acc_alpha1"] >= m["sample_class_acc_alpha0"] + 0.05),
    ("gfid_alpha1 <= gfid_alpha0", lambda m: m["gfid_alpha1"] <= m["gfid_alpha0"]),
    ("tokens_identical_p2 == 1", lambda m: m["tokens_identical_p2"] == 1.0),
    ("l1_alpha1_p2 < l1_alpha1", lambda m: m["l1_alpha1_p2"] < m["l1_alpha1"]),
    ("plow_alpha1_p2 <= 0.95 * plow_alpha1", lambda m: m["plow_alpha1_p2"] <= 0.95 * m["plow_alpha1"]),
    ("usage_alpha1 >= 0.8", lambda m: m["usage_alpha1"] >= 0.8),
    ("usage_alpha1 >= usage_gamma0 + 0.1", lambda m: m["usage_alpha1"] >= m["usage_gamma0"] + 0.1),
    ("probe_acc_shuffled <= 0.2", lambda m: m["probe_acc_shuffled"] <= 0.2),
    ("sample_class_acc_shuffled <= 0.2", lambda m: m["sample_class_acc_shuffled"] <= 0.2),
    ("eval_net_acc >= 0.9", lambda m: m["eval_net_acc"] >= 0.9),
]  # fmt: skip


def run_repro(cfg: ReproConfig, out: str | Path, log=print) -> dict:  # noqa: ANN001
    """Run (or finish) the experiment in ``out``; write ``out/metrics.json`` and return it."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shared = prepare_shared(cfg, out, log)
    shared.pop("_data")
    cfg_dict = to_dict(cfg)
    jobs = [(cfg_dict, str(out), s) for s in cfg.seeds]
    workers = min(cfg.workers, len(cfg.seeds))
    if workers == 1:
        per_seed = [_seed_worker(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            per_seed = list(pool.map(_seed_worker, jobs))
    keys = [k for k in per_seed[0] if not k.startswith("cpu_seconds")]
    metrics: dict = dict(shared)
    for k in keys:
        metrics[k] = float(np.mean([m[k] for m in per_seed]))
    metrics["per_seed"] = {str(s): {k: m[k] for k in keys} for s, m in zip(cfg.seeds, per_seed)}
    metrics["seconds_total"] = time.time() - t0
    cpu = sum(m.get("cpu_seconds", 0.0) for m in per_seed)
    atomic_write_json(out / "metrics.json", metrics)
    log(_table(metrics, cpu))
    return metrics


def gate_results(metrics: dict) -> list[tuple[str, bool]]:
    return [(name, bool(check(metrics))) for name, check in GATES]


def _table(metrics: dict, cpu: float) -> str:
    lines = [f"{'metric':34s} {'mean':>9s}  per seed"]
    for k, v in metrics.items():
        if k in ("per_seed", "seconds_total"):
            continue
        seeds = [metrics["per_seed"][s].get(k) for s in metrics["per_seed"]]
        per = " ".join(f"{x:.3f}" for x in seeds if x is not None)
        lines.append(f"{k:34s} {v:9.3f}  {per}")
    lines.append("gates (seed means):")
    lines += [f"  [{'ok' if ok else 'MISS'}] {name}" for name, ok in gate_results(metrics)]
    lines.append(f"wall {metrics['seconds_total']:.0f} s, seed workers {cpu:.0f} CPU-s")
    return "\n".join(lines)
