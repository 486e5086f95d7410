"""``curriculum-cl bench``: sweep throughput with cached features vs recomputing features every step and every
evaluation as the official code does (Avalanche runs the frozen network on every minibatch), on digits and on
MNIST-sized synthetic data (5 classes x 6,000 training images, 28x28); on digits also the 120-curriculum naive sweep
through ``run_heads`` vs Avalanche 0.6 on the same cached features (when the ``parity`` extra is installed); peak
memory."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch

from curriculum_cl.curricula import CurriculumSpace
from curriculum_cl.data.datasets import load_digits_dataset, restrict_classes
from curriculum_cl.data.features import extract_features, make_transform
from curriculum_cl.data.synthetic import class_images
from curriculum_cl.engine import FeatureSet, LearnerSettings, RunSpec, init_heads, run_heads
from curriculum_cl.errors import CurriculumError
from curriculum_cl.models.extractors import SmallCNN


def _features(net: SmallCNN, x: torch.Tensor) -> torch.Tensor:
    """The frozen trunk on its own device and dtype; float32 CPU features for the heads."""
    weight = next(net.parameters())
    return net.features(x.to(weight.device, weight.dtype)).float().cpu()


def _recompute_run(
    net: SmallCNN, x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, run: RunSpec, settings: LearnerSettings
) -> None:
    """One naive run the official way: the frozen trunk runs on every minibatch and every evaluation."""
    W, b = init_heads([run.seed], settings.num_outputs, net.out_dim)
    head = torch.nn.Linear(net.out_dim, settings.num_outputs)
    head.weight.data.copy_(W[0])
    head.bias.data.copy_(b[0])
    gen = torch.Generator().manual_seed(run.seed)
    for exp in run.experiences:
        opt = torch.optim.Adam(head.parameters(), lr=settings.lr)
        pool = torch.nonzero(torch.isin(y, torch.tensor(exp)), as_tuple=True)[0]
        for _ in range(settings.passes):
            for idx in pool[torch.randperm(len(pool), generator=gen)].split(settings.batch_size):
                with torch.no_grad():
                    feats = _features(net, x[idx])
                loss = torch.nn.functional.cross_entropy(head(feats), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            torch.cat([head(_features(net, c)) for c in xt.split(512)])


def _avalanche_sweep(feats: FeatureSet, settings: LearnerSettings, measured: int) -> dict:
    """Wall time of the 120-curriculum naive sweep (seed 0) through ``run_heads`` and through Avalanche 0.6's Naive
    (``curriculum_cl.parity``, the same batches); Avalanche is measured on ``measured`` evenly spaced curricula
    and extrapolated to 120 when ``measured`` < 120 (``avalanche_extrapolated``)."""
    from curriculum_cl.parity import _import_avalanche, avalanche_run

    try:
        _import_avalanche()  # import cost outside the timed part
    except CurriculumError as err:  # the parity extra is optional
        return {"avalanche": f"not measured: {err}"}
    space = CurriculumSpace((0, 1, 2, 3, 4))
    runs = [RunSpec(c, 0, space.experiences(c)) for c in range(len(space))]
    t0, c0 = time.perf_counter(), time.process_time()
    run_heads(feats, runs, "naive", settings)
    heads_s, heads_cpu = time.perf_counter() - t0, time.process_time() - c0
    subset = [runs[int(i)] for i in np.linspace(0, len(runs) - 1, measured).round()]
    t0, c0 = time.perf_counter(), time.process_time()
    for run in subset:
        avalanche_run(feats, run, "naive", settings)
    scale = len(runs) / len(subset)
    ava_s, ava_cpu = (time.perf_counter() - t0) * scale, (time.process_time() - c0) * scale
    return {
        "sweep_120_curricula": "naive, seed 0, the same batches both ways",
        "run_heads_sweep_s": heads_s,
        "run_heads_sweep_cpu_s": heads_cpu,
        "avalanche_sweep_s": ava_s,
        "avalanche_sweep_cpu_s": ava_cpu,
        "avalanche_measured_curricula": len(subset),
        "avalanche_extrapolated": len(subset) < len(runs),
        "avalanche_over_run_heads": ava_s / heads_s,
    }


def _case(
    name: str, x, y, xt, yt, image_size: int, settings: LearnerSettings, cached_runs: int, recompute_runs: int,
    device: torch.device, dtype: torch.dtype, avalanche_runs: int = 0,
) -> dict:  # fmt: skip
    torch.manual_seed(0)
    net = SmallCNN(1, image_size).eval().to(device, dtype)
    t0 = time.perf_counter()
    with torch.no_grad():
        train = torch.cat([_features(net, c) for c in x.split(512)])
        test = torch.cat([_features(net, c) for c in xt.split(512)])
    extract_s = time.perf_counter() - t0
    feats = FeatureSet(train, y, test, yt)
    space = CurriculumSpace((0, 1, 2, 3, 4))
    runs = [RunSpec(c % 120, c // 120, space.experiences(c % 120)) for c in range(cached_runs)]
    t0 = time.perf_counter()
    run_heads(feats, runs, "naive", settings)
    cached_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for run in runs[:recompute_runs]:
        _recompute_run(net, x, y, xt, run, settings)
    recompute_s = time.perf_counter() - t0
    cached_rps, recompute_rps = cached_runs / cached_s, recompute_runs / recompute_s
    avalanche = _avalanche_sweep(feats, settings, avalanche_runs) if avalanche_runs else {}
    return avalanche | {
        "dataset": name,
        "train_images": len(y),
        "batch_size": settings.batch_size,
        "passes": settings.passes,
        "feature_extraction_s": extract_s,
        "cached_runs_per_s": cached_rps,
        "recompute_runs_per_s": recompute_rps,
        "speedup": cached_rps / recompute_rps,
        "sweep_1080_runs_cached_s": extract_s + 1080 / cached_rps,
        "sweep_1080_runs_recompute_s": 1080 / recompute_rps,
    }


def run_bench(
    quick: bool = False, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> dict:
    device = device or torch.device("cpu")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    digits = restrict_classes(load_digits_dataset(), [0, 1, 2, 3, 4])
    tf = make_transform("digits", 0, 1, train=False)
    to_x = lambda split: torch.stack([tf(split[i][0]) for i in range(len(split))])  # noqa: E731
    results = [
        _case(
            "digits",
            to_x(digits.train),
            digits.train.labels,
            to_x(digits.test),
            digits.test.labels,
            8,
            LearnerSettings(batch_size=16, passes=10),
            120 if quick else 360,
            2 if quick else 5,
            device,
            dtype,
            avalanche_runs=1 if quick else 12,
        )
    ]
    rng = np.random.default_rng(0)
    n_train, n_test = (600, 100) if quick else (6000, 1000)
    xs, ys, xts, yts = [], [], [], []
    for c in range(5):
        xs.append(class_images(c, n_train, 28, rng))
        xts.append(class_images(c, n_test, 28, rng))
        ys += [c] * n_train
        yts += [c] * n_test
    norm = lambda a: (torch.from_numpy(np.concatenate(a)).float()[:, None] / 255 - 0.1307) / 0.3081  # noqa: E731
    results.append(
        _case(
            "mnist-sized synthetic",
            norm(xs),
            torch.tensor(ys),
            norm(xts),
            torch.tensor(yts),
            28,
            LearnerSettings(batch_size=64, passes=1),
            24 if quick else 120,
            1,
            device,
            dtype,
        )
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "cases": results, "peak_rss_mb": peak_mb, "threads": torch.get_num_threads(), "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
    }  # fmt: skip


__all__ = ["run_bench", "extract_features"]
