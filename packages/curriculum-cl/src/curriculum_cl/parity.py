"""``curriculum-cl parity``: the same runs through Avalanche's strategies and through ``run_heads``.

Both sides get the same cached features, class stream, initial head weights (``init_heads``), optimizer (Adam,
its state reset at every experience: Avalanche 0.6 keeps it unless ``train(..., reset_optimizer_state=True)``,
which is passed here), batch order (the plugin below feeds Avalanche's loop the minibatches ``run_heads`` draws
from the same per-run generator) and epochs. Avalanche computes its own losses, EWC importances and penalty, and
LwF distillation; the accuracy matrices ``acc[i, j]`` (accuracy on experience j's test images after training on
experience i) are then compared entry by entry.

Avalanche (``avalanche-lib``, the ``parity`` extra) is imported only inside :func:`avalanche_run`.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from curriculum_cl.engine import FeatureSet, LearnerSettings, RunSpec, init_heads, run_heads
from curriculum_cl.errors import CurriculumError

PARITY_ALGORITHMS = ("naive", "ewc", "lwf", "lwf_v01")
# lwf_v01: Avalanche 0.6's LwF strategy with its distillation term replaced by Avalanche 0.1's (the one run_heads
# follows). It isolates the one change between the releases: 0.6 takes the softmax over the previously active units
# only, 0.1 over all output units (KL then summed over the active units).
TOLERANCE = 0.02


def _import_avalanche():
    try:
        import avalanche  # noqa: F401
    except ImportError as err:
        raise CurriculumError(
            "parity needs avalanche-lib: pip install 'curriculum-cl[parity]' (or uv sync --all-packages)"
        ) from err
    from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
    from avalanche.core import SupervisedPlugin
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche.training.supervised import EWC, LwF, Naive

    strategies = {"naive": Naive, "ewc": EWC, "lwf": LwF, "lwf_v01": LwF}
    return nc_benchmark, SupervisedPlugin, EvaluationPlugin, strategies


def distillation_v01(
    out: torch.Tensor, prev_out: torch.Tensor, active_units, temperature: float
) -> torch.Tensor:
    """Avalanche 0.1's ``_distillation_loss``: softmax over every output unit, KL summed over the active units."""
    au = list(active_units)
    log_p = torch.log_softmax(out / temperature, dim=1)[:, au]
    q = torch.softmax(prev_out / temperature, dim=1)[:, au]
    return torch.nn.functional.kl_div(log_p, q, reduction="batchmean")


class _Labelled(torch.utils.data.TensorDataset):
    """A tensor dataset with the ``targets`` list that Avalanche's benchmark generators read."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(x, y)
        self.targets = y.tolist()


def avalanche_run(
    features: FeatureSet, run: RunSpec, algorithm: str, settings: LearnerSettings, *, base_seed: int = 0
) -> np.ndarray:
    """One run through Avalanche's Naive / EWC('separate') / LwF; returns ``acc [T, T]`` as ``run_heads``."""
    nc_benchmark, SupervisedPlugin, EvaluationPlugin, strategies = _import_avalanche()
    if features.train.shape[0] != 1:
        raise CurriculumError("parity runs on features without augmented views (data.augment_views: 0)")
    if settings.dropout > 0:
        raise CurriculumError("parity runs without head dropout (learner.dropout: 0)")
    train_x, train_y = features.train[0], features.train_labels
    num_exp, dim = len(run.experiences), train_x.shape[1]
    labels_np = train_y.numpy()
    pools = [np.concatenate([np.flatnonzero(labels_np == c) for c in exp]) for exp in run.experiences]
    rng = np.random.default_rng([base_seed, run.seed, run.curriculum_id])  # run_heads' data generator

    class SameBatches(SupervisedPlugin):
        """Each epoch, the minibatches run_heads takes: a fresh permutation of the experience's pool."""

        def before_training_epoch(self, strategy, **kwargs):
            order = torch.from_numpy(rng.permutation(pools[strategy.clock.train_exp_counter]))
            data = torch.utils.data.TensorDataset(train_x[order], train_y[order], torch.zeros_like(order))
            strategy.dataloader = torch.utils.data.DataLoader(data, batch_size=settings.batch_size)

    head = torch.nn.Linear(dim, settings.num_outputs)
    W, b = init_heads([base_seed * 100_003 + run.seed], settings.num_outputs, dim)
    with torch.no_grad():
        head.weight.copy_(W[0])
        head.bias.copy_(b[0])
    kwargs = {}
    if algorithm == "ewc":
        kwargs = {"ewc_lambda": settings.ewc_lambda, "mode": "separate"}
    elif algorithm in ("lwf", "lwf_v01"):
        kwargs = {"alpha": list(settings.lwf_alpha), "temperature": settings.lwf_temperature}
    strategy = strategies[algorithm](
        model=head,
        optimizer=torch.optim.Adam(head.parameters(), lr=settings.lr),
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=settings.batch_size,
        train_epochs=settings.passes,
        eval_mb_size=512,
        device="cpu",
        plugins=[SameBatches()],
        evaluator=EvaluationPlugin(loggers=[]),
        **kwargs,
    )
    if algorithm == "lwf_v01":
        for plugin in strategy.plugins:
            if hasattr(plugin, "lwf"):  # LwFPlugin: swap in the 0.1 distillation term
                T = settings.lwf_temperature
                plugin.lwf._distillation_loss = functools.partial(distillation_v01, temperature=T)
    bench = nc_benchmark(
        _Labelled(train_x, train_y),
        _Labelled(features.test, features.test_labels),
        n_experiences=num_exp,
        task_labels=False,
        shuffle=False,
        fixed_class_order=[c for exp in run.experiences for c in exp],
        per_exp_classes={t: len(exp) for t, exp in enumerate(run.experiences)},
    )
    exp_of_test = torch.full_like(features.test_labels, -1)
    for t, exp in enumerate(run.experiences):
        exp_of_test[torch.isin(features.test_labels, torch.tensor(exp))] = t
    acc = np.zeros((num_exp, num_exp))
    for t, experience in enumerate(bench.train_stream):
        strategy.train(experience, eval_streams=[], reset_optimizer_state=True)
        with torch.no_grad():
            correct = (head(features.test).argmax(-1) == features.test_labels).float()
        for j in range(num_exp):
            acc[t, j] = correct[exp_of_test == j].mean().item()
    return acc


def parity(
    features: FeatureSet,
    runs: list[RunSpec],
    settings: LearnerSettings,
    *,
    algorithms: tuple[str, ...] = PARITY_ALGORITHMS,
    base_seed: int = 0,
) -> dict:
    """Final accuracy matrices both ways and their max abs difference, per strategy and run."""
    out: dict = {"tolerance": TOLERANCE, "algorithms": {}}
    for alg in algorithms:
        t0 = time.process_time()
        ours = run_heads(features, runs, alg.removesuffix("_v01"), settings, base_seed=base_seed).acc
        heads_cpu = time.process_time() - t0
        t0 = time.process_time()
        theirs = np.stack([avalanche_run(features, r, alg, settings, base_seed=base_seed) for r in runs])
        avalanche_cpu = time.process_time() - t0
        diff = np.abs(ours - theirs)
        out["algorithms"][alg] = {
            "max_abs_diff": float(diff.max()),
            "max_abs_diff_final_row": float(diff[:, -1].max()),
            "mean_abs_diff": float(diff.mean()),
            "within_tolerance": bool(diff.max() <= TOLERANCE),
            "run_heads_cpu_s": heads_cpu,
            "avalanche_cpu_s": avalanche_cpu,
            "runs": [
                {
                    "curriculum_id": r.curriculum_id,
                    "seed": r.seed,
                    "experiences": r.experiences,
                    "max_abs_diff": float(d.max()),
                    "run_heads_acc": a.round(6).tolist(),
                    "avalanche_acc": b.round(6).tolist(),
                }
                for r, a, b, d in zip(runs, ours, theirs, diff)
            ],
        }
    return out


def run_parity(
    cfg,
    out,
    *,
    curricula: int = 5,
    seeds: int = 2,
    algorithms: tuple[str, ...] = PARITY_ALGORITHMS,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """``curricula`` evenly spaced curricula x ``seeds`` seeds of ``cfg``'s setting; writes ``out/parity.json``."""
    from curriculum_cl.train import prepare
    from visioncore.config import to_dict
    from visioncore.files import atomic_write_json

    for alg in algorithms:
        if alg not in PARITY_ALGORITHMS:
            raise CurriculumError(f"--algorithms: {alg!r} is not one of {', '.join(PARITY_ALGORITHMS)}")
    prepared = prepare(cfg, out, show_progress=False, device=device, dtype=dtype)
    space = prepared.space
    if not 1 <= curricula <= len(space) or seeds < 1:
        raise CurriculumError(f"--curricula must be in [1, {len(space)}] and --seeds >= 1")
    ids = sorted({int(i) for i in np.linspace(0, len(space) - 1, curricula).round()})
    runs = [RunSpec(c, s, space.experiences(c)) for c in ids for s in range(seeds)]
    result = parity(
        prepared.features, runs, cfg.learner, algorithms=algorithms, base_seed=cfg.sweep.base_seed
    )
    import avalanche

    result.update(
        avalanche_version=avalanche.__version__,
        torch_version=torch.__version__,
        curricula=[space.order_string(c) for c in ids],
        seeds=seeds,
        config=to_dict(cfg),
    )
    atomic_write_json(out / "parity.json", result, indent=1)
    return result
