"""Training: the teacher pre-training, the cached-feature sweep (resumable) and the full-backbone accelerate loop.

Sweep outputs in ``--out``: ``features.safetensors`` (the cache), ``designer.json`` (unit distances and scores),
``results.csv`` (one row per run, appended after every unit of work), ``sweep_meta.json`` (the configuration
fingerprint checked on resume) and ``results.json`` (per-curriculum alpha, beta, F per algorithm).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from curriculum_cl.config import Config
from curriculum_cl.curricula import CurriculumSpace, parse_classes, parse_curriculum_ids
from curriculum_cl.data.datasets import FEATURE_DATASETS, ImageDataset, load_dataset, restrict_classes
from curriculum_cl.data.features import cached, extract_features, make_transform
from curriculum_cl.designer import class_prototypes, distance_matrix, rank_orders
from curriculum_cl.engine import ALGORITHMS, FeatureSet, RunSpec, run_heads
from curriculum_cl.errors import CurriculumError, ResumeMismatchError
from curriculum_cl.models.extractors import SmallCNN, build_extractor
from curriculum_cl.scoring import alpha_beta, curriculum_scores, f_score
from visioncore.config import to_dict
from visioncore.files import atomic_write_bytes, atomic_write_json
from visioncore.metrics import accuracy
from visioncore.training import progress, seed_everything

RESULT_FIELDS = ["algorithm", "curriculum_id", "order", "seed", "alpha", "beta", "f", "t1", "avg"]


@dataclass
class Prepared:
    space: CurriculumSpace
    features: FeatureSet
    distances: np.ndarray  # designer distances between curriculum units
    designer_scores: np.ndarray  # per curriculum id


def curriculum_space(cfg: Config, dataset: ImageDataset | None = None) -> CurriculumSpace:
    classes = parse_classes(cfg.data.classes)
    if dataset is not None:
        known = set(torch.unique(dataset.train.labels).tolist())
        missing = [c for c in classes if c not in known]
        if missing:
            raise CurriculumError(
                f"--classes: class(es) {missing} not in {cfg.data.dataset} (has {sorted(known)})"
            )
    return CurriculumSpace(tuple(classes), cfg.data.setting)


def load_extractor(cfg: Config) -> torch.nn.Module:
    if not cfg.extractor.weights:
        warnings.warn(
            f"extractor {cfg.extractor.name}: no weights given, features come from a random network",
            stacklevel=2,
        )
    size = cfg.data.image_size or 8
    return build_extractor(
        cfg.extractor.name, cfg.extractor.weights, in_channels=cfg.extractor.in_channels, image_size=size
    )


def prepare(
    cfg: Config,
    out: Path,
    *,
    show_progress: bool = True,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Prepared:
    """Load the data, cache the frozen features and compute the designer's distances and scores
    (``--dataset structured``: the synthetic features themselves, no images and no extractor).

    The frozen extractor runs on ``device`` (default: CUDA when available) in ``dtype``; features are stored in
    float32 and the heads always train on the CPU."""
    if cfg.data.dataset in FEATURE_DATASETS:
        return _prepare_structured(cfg, out)
    dataset = load_dataset(cfg.data.dataset, cfg.data.root)
    space = curriculum_space(cfg, dataset)
    if max(space.classes) >= cfg.learner.num_outputs:
        raise CurriculumError(f"class {max(space.classes)} needs more than learner.num_outputs outputs")
    data = restrict_classes(dataset, list(space.classes), cfg.data.max_per_class)
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    extractor = load_extractor(cfg).to(device, dtype)  # runs once per image
    channels = cfg.extractor.in_channels
    bar = (lambda it: progress(it, desc="features", leave=False)) if show_progress else None

    def compute() -> dict[str, torch.Tensor]:
        eval_tf = make_transform(data.kind, cfg.data.image_size, channels, train=False)
        views = cfg.data.augment_views
        if views > 0:
            train_tf = make_transform(data.kind, cfg.data.image_size, channels, train=True)
            torch.manual_seed(cfg.sweep.base_seed)
            train = torch.stack(
                [extract_features(extractor, data.train, train_tf, progress=bar) for _ in range(views)]
            )
        else:
            train = extract_features(
                extractor, data.train, eval_tf, batch_size=cfg.extractor.batch_size, progress=bar
            )[None]
        test = extract_features(
            extractor, data.test, eval_tf, batch_size=cfg.extractor.batch_size, progress=bar
        )
        # Designer embedding: per unit, N random training samples (eval transform), mean of per-batch means.
        gen = torch.Generator().manual_seed(cfg.designer.seed)
        protos = []
        for unit in space.units:
            idx = torch.nonzero(torch.isin(data.train.labels, torch.tensor(unit)), as_tuple=True)[0]
            pick = idx[torch.randperm(len(idx), generator=gen)[: cfg.designer.samples_per_class]]
            emb = extract_features(extractor, data.train.subset(pick.numpy()), eval_tf, embed=True)
            protos.append(torch.from_numpy(class_prototypes(emb)))
        return {
            "train": train,
            "train_labels": data.train.labels,
            "test": test,
            "test_labels": data.test.labels,
            "prototypes": torch.stack(protos),
        }

    tensors = cached(out / "features.safetensors", compute)
    return _designer(cfg, out, space, tensors)


def _prepare_structured(cfg: Config, out: Path) -> Prepared:
    """The structured synthetic features (declared in ``data.structured``) as the feature cache."""
    from curriculum_cl.data.synthetic import structured_features

    space = curriculum_space(cfg)
    if max(space.classes) > 4:
        raise CurriculumError(f"--classes: structured has classes 0-4, got {list(space.classes)}")

    def compute() -> dict[str, torch.Tensor]:
        s = cfg.data.structured
        arrays = structured_features(
            dim=s.dim, n_train=s.n_train, n_test=s.n_test, far=s.far, near=s.near, noise=s.noise, seed=s.seed
        )
        data = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
        gen = torch.Generator().manual_seed(cfg.designer.seed)
        protos = []
        for unit in space.units:
            idx = torch.nonzero(torch.isin(data["train_labels"], torch.tensor(unit)), as_tuple=True)[0]
            pick = idx[torch.randperm(len(idx), generator=gen)[: cfg.designer.samples_per_class]]
            protos.append(torch.from_numpy(class_prototypes(data["train"][pick])))
        data["prototypes"] = torch.stack(protos)
        return data

    tensors = cached(out / "features.safetensors", compute)
    return _designer(cfg, out, space, tensors)


def _designer(cfg: Config, out: Path, space: CurriculumSpace, tensors: dict[str, torch.Tensor]) -> Prepared:
    """Feature set from the cache, the designer's distances and scores (written to ``designer.json``)."""
    features = FeatureSet(tensors["train"], tensors["train_labels"], tensors["test"], tensors["test_labels"])
    distances = distance_matrix(tensors["prototypes"].double().numpy(), cfg.designer.metric)
    scores = rank_orders(distances, space.orders)
    atomic_write_json(
        out / "designer.json",
        {
            "units": [list(u) for u in space.units],
            "metric": cfg.designer.metric,
            "distances": distances.tolist(),
            "scores": scores.tolist(),
            "orders": ["".join(map(str, o)) for o in space.orders],
            **({"true_similarity": tensors["similarity"].tolist()} if "similarity" in tensors else {}),
        },
        indent=1,
    )
    return Prepared(space, features, distances, scores)


def _fingerprint(cfg: Config, dtype: torch.dtype = torch.float32) -> str:
    relevant = {k: to_dict(cfg)[k] for k in ("data", "extractor", "learner", "designer")}
    relevant["base_seed"] = cfg.sweep.base_seed
    if dtype != torch.float32:  # features of another precision are another table
        relevant["extractor_dtype"] = str(dtype)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _complete_part(data: bytes) -> bytes:
    """The part of an appended CSV up to its last line break: a sweep killed mid-write leaves a torn last row."""
    return data[: data.rfind(b"\n") + 1]


def drop_torn_row(path: Path) -> bool:
    """Cut an incomplete last row off ``path`` (atomically) so that a resumed sweep reruns that run; True if cut."""
    if not path.is_file():
        return False
    data = path.read_bytes()
    complete = _complete_part(data)
    if complete == data:
        return False
    atomic_write_bytes(path, complete)
    return True


def read_results(path: Path) -> list[dict]:
    """The complete rows of ``results.csv`` (a torn last row, if any, is not a result)."""
    if not path.is_file():
        return []
    text = _complete_part(path.read_bytes()).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for row in rows:
        for key in ("curriculum_id", "seed"):
            row[key] = int(row[key])
        for key in ("alpha", "beta", "f"):
            row[key] = float(row[key])
    return rows


def sweep(
    cfg: Config,
    out: str | Path,
    *,
    show_progress: bool = True,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Run every (algorithm, curriculum, seed); resumable: finished runs in ``results.csv`` are kept and skipped,
    an incomplete last row (a sweep killed while writing it) is dropped and its run done again."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for alg in cfg.sweep.algorithms:
        if alg not in ALGORITHMS:
            raise CurriculumError(
                f"--algorithms: unknown algorithm {alg!r}; choose from {', '.join(ALGORITHMS)}"
            )
    meta_path, results_path = out / "sweep_meta.json", out / "results.csv"
    fingerprint = _fingerprint(cfg, dtype)
    if meta_path.is_file():
        previous = json.loads(meta_path.read_text()).get("fingerprint")
        if previous != fingerprint:
            raise ResumeMismatchError(
                f"{results_path}: results table from another configuration (fingerprint {previous} != "
                f"{fingerprint}); use a new --out or the original settings"
            )
    elif results_path.exists():
        raise ResumeMismatchError(f"{results_path}: results table without {meta_path.name}; use a new --out")
    seed_everything(cfg.sweep.base_seed)
    prepared = prepare(cfg, out, show_progress=show_progress, device=device, dtype=dtype)
    atomic_write_json(meta_path, {"fingerprint": fingerprint, "config": to_dict(cfg)}, indent=1)
    drop_torn_row(results_path)
    space = prepared.space
    ids = parse_curriculum_ids(cfg.sweep.curricula, len(space))
    done = {(r["algorithm"], r["curriculum_id"], r["seed"]) for r in read_results(results_path)}
    units = [
        (alg, ids[i : i + cfg.sweep.chunk_size])
        for alg in cfg.sweep.algorithms
        for i in range(0, len(ids), cfg.sweep.chunk_size)
    ]
    new_file = not results_path.exists() or results_path.stat().st_size == 0
    with results_path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_FIELDS)
        if new_file:
            writer.writeheader()
        for alg, chunk in progress(units, desc="sweep", disable=not show_progress):
            runs = [
                RunSpec(c, s, space.experiences(c))
                for c in chunk
                for s in range(cfg.sweep.seeds)
                if (alg, c, s) not in done
            ]
            if not runs:
                continue
            res = run_heads(prepared.features, runs, alg, cfg.learner, base_seed=cfg.sweep.base_seed)
            for run, acc in zip(runs, res.acc):
                writer.writerow(_row(alg, run, acc, space))
            fh.flush()
    summary = summarise(read_results(results_path), space)
    atomic_write_json(out / "results.json", summary, indent=1)
    return summary


def _row(alg: str, run: RunSpec, acc: np.ndarray, space: CurriculumSpace) -> dict:
    a, b = alpha_beta(acc)
    t = acc.shape[0]
    avg = [float(acc[i, : i + 1].mean()) for i in range(t)]
    return {
        "algorithm": alg,
        "curriculum_id": run.curriculum_id,
        "order": space.order_string(run.curriculum_id),
        "seed": run.seed,
        "alpha": f"{a:.6f}",
        "beta": f"{b:.6f}",
        "f": f"{f_score(a, b):.6f}",
        "t1": ";".join(f"{v:.4f}" for v in acc[:, 0]),
        "avg": ";".join(f"{v:.4f}" for v in avg),
    }


def summarise(rows: list[dict], space: CurriculumSpace) -> dict:
    """Per algorithm and curriculum: alpha, beta (means over seeds) and F of the means; plus run counts."""
    out: dict = {}
    for alg in sorted({r["algorithm"] for r in rows}):
        sel = [r for r in rows if r["algorithm"] == alg]
        cids = np.array([r["curriculum_id"] for r in sel])
        scores = curriculum_scores(
            cids, np.array([r["alpha"] for r in sel]), np.array([r["beta"] for r in sel])
        )
        out[alg] = {
            "runs": len(sel),
            "curricula": {
                str(c): {"order": space.order_string(c), "alpha": a, "beta": b, "f": f}
                for c, (a, b, f) in scores.items()
            },
        }
    return out


# --------------------------------------------------------------------------------------------- teacher pre-training


def pretrain_teacher(
    cfg: Config, out: str | Path, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> tuple[SmallCNN, float]:
    """Train the small CNN on the teacher classes (digits 5-9 in the acceptance experiment), save_pretrained it.

    Runs on ``device`` (default CPU); a ``dtype`` other than float32 trains under autocast (float32 weights)."""
    device = device or torch.device("cpu")
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    out = Path(out)
    dataset = load_dataset(cfg.data.dataset, cfg.data.root)
    classes = parse_classes(cfg.teacher.classes)
    data = restrict_classes(dataset, classes)
    tf = make_transform(data.kind, cfg.data.image_size, cfg.extractor.in_channels, train=False)
    to_tensor = lambda split: torch.stack([tf(split[i][0]) for i in range(len(split))])  # noqa: E731
    remap = {c: i for i, c in enumerate(classes)}
    xtr, xte = to_tensor(data.train), to_tensor(data.test)
    ytr = torch.tensor([remap[int(c)] for c in data.train.labels])
    yte = torch.tensor([remap[int(c)] for c in data.test.labels])
    torch.manual_seed(cfg.teacher.seed)
    net = SmallCNN(cfg.extractor.in_channels, cfg.data.image_size or xtr.shape[-1], num_classes=len(classes))
    net = net.to(device)
    xtr, ytr, xte, yte = xtr.to(device), ytr.to(device), xte.to(device), yte.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.teacher.lr)
    gen = torch.Generator().manual_seed(cfg.teacher.seed)
    test_acc = 0.0
    for epoch in range(cfg.teacher.epochs):
        net.train()
        for idx in torch.randperm(len(xtr), generator=gen).split(cfg.teacher.batch_size):
            with autocast:
                loss = torch.nn.functional.cross_entropy(net(xtr[idx]).float(), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad(), autocast:
            test_acc = accuracy(net(xte).float().cpu(), yte.cpu())
        if test_acc >= cfg.teacher.target_accuracy and epoch >= 1:
            break
    net.cpu().save_pretrained(out)
    return net, test_acc


# ------------------------------------------------------------------------------------ full-backbone accelerate loop


class StrategyState:
    """EWC anchors/importances, LwF's previous parameters and the accuracy matrix, checkpointed with the run
    (registered with ``accelerator.register_for_checkpointing``)."""

    def __init__(self, num_exp: int):
        self.ewc_anchors: list[list[torch.Tensor]] = []
        self.ewc_importances: list[list[torch.Tensor]] = []
        self.prev_params: list[torch.Tensor] = []
        self.acc = torch.zeros(num_exp, num_exp)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"acc": self.acc}
        for k, (anchors, imps) in enumerate(zip(self.ewc_anchors, self.ewc_importances)):
            state.update({f"ewc_anchor.{k}.{i}": a for i, a in enumerate(anchors)})
            state.update({f"ewc_importance.{k}.{i}": f for i, f in enumerate(imps)})
        state.update({f"prev.{i}": p for i, p in enumerate(self.prev_params)})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.acc = state["acc"]

        def collect(prefix: str) -> list[list[torch.Tensor]]:
            keys = sorted((tuple(map(int, k.split(".")[1:])), k) for k in state if k.startswith(prefix))
            out: list[list[torch.Tensor]] = []
            for (k, _), key in keys:
                while len(out) <= k:
                    out.append([])
                out[k].append(state[key])
            return out

        self.ewc_anchors, self.ewc_importances = collect("ewc_anchor."), collect("ewc_importance.")
        self.prev_params = [
            state[k]
            for k in sorted((k for k in state if k.startswith("prev.")), key=lambda k: int(k.split(".")[1]))
        ]


@dataclass
class FullRun:
    metrics: dict
    model: torch.nn.Module


def train_full(
    cfg: Config, out: str | Path, *, resume: bool = False, stop_after: int | None = None, cpu: bool = False
) -> FullRun:
    """One curriculum with a trainable extractor (features not cached): Avalanche-style per-experience loop on
    accelerate, with atomic checkpoints and exact resume. ``stop_after`` ends early after that many global steps
    (used to test resuming); ``cpu`` keeps accelerate off the GPU. There is no learning-rate schedule (constant Adam,
    as the paper), so the scheduler rule of ``make_accelerator`` does not apply."""
    from torch.func import functional_call

    from curriculum_cl.data.features import TransformedSplit
    from curriculum_cl.losses import ewc_penalty, lwf_distillation
    from curriculum_cl.models.learner import Learner
    from visioncore.training import (
        CheckpointManager,
        check_finite,
        iterate_steps,
        make_accelerator,
        save_final,
        should_save,
    )

    alg = cfg.train.algorithm
    if alg not in ("naive", "ewc", "lwf"):
        raise CurriculumError(f"train.algorithm: full-backbone mode supports naive, ewc, lwf (got {alg!r})")
    if alg == "ewc" and cfg.learner.ewc_fisher != "empirical_batch":
        raise CurriculumError(
            "learner.ewc_fisher: full-backbone mode computes the empirical_batch importance only"
        )
    out = Path(out)
    dataset = load_dataset(cfg.data.dataset, cfg.data.root)
    space = curriculum_space(cfg, dataset)
    experiences = space.experiences(cfg.train.curriculum)
    data = restrict_classes(dataset, list(space.classes), cfg.data.max_per_class)
    channels, size = cfg.extractor.in_channels, cfg.data.image_size
    train_tf = make_transform(data.kind, size, channels, train=True)
    eval_tf = make_transform(data.kind, size, channels, train=False)

    seed_everything(cfg.train.seed)
    model = Learner(cfg.extractor.name, channels, size or data.train[0][0].shape[-1], cfg.learner.num_outputs)
    if cfg.extractor.weights:
        model.extractor = load_extractor(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learner.lr)
    accelerator = make_accelerator(
        out,
        mixed_precision=cfg.train.mixed_precision,
        config=to_dict(cfg),
        project_name="train_full",
        cpu=cpu,
    )
    state = StrategyState(len(experiences))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(state)
    ckpt = CheckpointManager(accelerator, out, keep_last=cfg.train.keep_last)
    start = ckpt.resume() if resume else 0
    net = accelerator.unwrap_model(model)

    labels = data.train.labels.numpy()
    loaders, offsets, total = [], [], 0
    for exp in experiences:
        subset = data.train.subset(np.flatnonzero(np.isin(labels, exp)))
        loader = torch.utils.data.DataLoader(
            TransformedSplit(subset, train_tf), batch_size=cfg.learner.batch_size, shuffle=True
        )
        loaders.append(accelerator.prepare(loader))
        offsets.append(total)
        total += cfg.learner.passes * len(loaders[-1])
    test_x = torch.stack([eval_tf(data.test[i][0][:3]) for i in range(len(data.test))])
    test_y = data.test.labels
    exp_of_test = torch.full((len(test_y),), -1)
    for t, exp in enumerate(experiences):
        exp_of_test[torch.isin(test_y, torch.tensor(exp))] = t

    step = start
    for t in range(len(experiences)):
        end = offsets[t] + cfg.learner.passes * len(loaders[t])
        if step >= end:
            continue
        if step == offsets[t]:  # a fresh experience: reset Adam (Avalanche 0.1), snapshot for LwF
            optimizer.optimizer.state.clear()
            state.prev_params = [p.detach().clone() for p in net.parameters()]
        seen = torch.zeros(cfg.learner.num_outputs, dtype=torch.bool)
        for e in experiences[:t]:
            seen[e] = True
        alpha = cfg.learner.lwf_alpha[min(t, len(cfg.learner.lwf_alpha) - 1)]
        names = [n for n, _ in net.named_parameters()]
        model.train()
        for local, (x, y) in iterate_steps(
            accelerator, loaders[t], start_step=step - offsets[t], max_steps=end - offsets[t]
        ):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            if alg == "ewc" and state.ewc_anchors:
                params = [p[None] for p in net.parameters()]
                anchors = [[a[None] for a in k] for k in state.ewc_anchors]
                imps = [[f[None] for f in k] for k in state.ewc_importances]
                loss = loss + cfg.learner.ewc_lambda * ewc_penalty(params, anchors, imps)[0]
            elif alg == "lwf" and t > 0:
                with torch.no_grad():
                    prev = functional_call(net, dict(zip(names, state.prev_params)), (x,))
                mask = torch.ones(1, len(y), dtype=torch.bool)
                loss = (
                    loss
                    + alpha
                    * lwf_distillation(
                        logits[None], prev[None], seen[None], mask, cfg.learner.lwf_temperature
                    )[0]
                )
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            step = offsets[t] + local + 1
            if step % cfg.train.log_every == 0 or step == end:  # the loop's only host syncs
                check_finite(loss, step, accelerator=accelerator, checkpoint=ckpt.latest())
                accelerator.log({"loss": loss.item(), "experience": t}, step=step)
            if step == end:
                _end_of_experience(net, state, t, alg, loaders[t].dataset, cfg, test_x, exp_of_test, test_y)
            if step == end or should_save(step, cfg.train.save_every, total):
                ckpt.save(step)
            if stop_after is not None and step >= stop_after:
                accelerator.end_training()
                return FullRun({"stopped_at": step}, net)
    alpha_, beta_ = alpha_beta(state.acc.numpy())
    metrics = {
        "curriculum": cfg.train.curriculum,
        "order": space.order_string(cfg.train.curriculum),
        "algorithm": alg,
        "alpha": float(alpha_),
        "beta": float(beta_),
        "f": float(f_score(alpha_, beta_)),
        "acc": state.acc.tolist(),
        "steps": step,
    }
    save_final(accelerator, out, model=model, config=cfg, checkpoints=ckpt, step=step)
    if accelerator.is_main_process:
        atomic_write_json(out / "metrics.json", metrics, indent=1)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return FullRun(metrics, net)


@torch.no_grad()
def _evaluate(net, test_x, exp_of_test, test_y, num_exp) -> torch.Tensor:
    net.eval()
    device = next(net.parameters()).device
    pred = torch.cat([net(x.to(device)).argmax(-1).cpu() for x in test_x.split(256)])
    net.train()
    correct = (pred == test_y).float()
    return torch.stack([correct[exp_of_test == j].mean() for j in range(num_exp)])


def _end_of_experience(net, state, t, alg, train_set, cfg, test_x, exp_of_test, test_y) -> None:
    """Evaluate on the full test stream; EWC: importances on the experience's data (in order, batch-mean grads^2)."""
    state.acc[t] = _evaluate(net, test_x, exp_of_test, test_y, state.acc.shape[0])
    if alg != "ewc":
        return
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.learner.batch_size, shuffle=False)
    device = next(net.parameters()).device
    imps = [torch.zeros_like(p) for p in net.parameters()]
    net.eval()  # deterministic importances
    for x, y in loader:
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x.to(device)), y.to(device)).backward()
        for f, p in zip(imps, net.parameters()):
            f += p.grad.detach() ** 2 if p.grad is not None else 0
    net.zero_grad()
    net.train()
    state.ewc_anchors.append([p.detach().clone() for p in net.parameters()])
    state.ewc_importances.append([f / len(loader) for f in imps])
