import json
import pickle
import sys

import pytest
from darwinian_upgrades.cli import main

FAST = [
    "--set",
    "train.steps=6",
    "--set",
    "train.old_steps=6",
    "--set",
    "train.batch_size=32",
    "--set",
    "adapter.steps=5",
    "--set",
    "train.log_every=3",
]


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error(capsys, *argv) -> str:
    code, out, err = _run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """make-synthetic -> split -> train old/dmu/independent -> ψ -> extract -> adapt -> backfill, by the CLI."""
    root = tmp_path_factory.mktemp("du")
    data = root / "data"
    assert main(["make-synthetic", "--out", str(data), "--seed", "1"]) == 0
    assert (
        main(
            [
                "split-gldv2",
                str(data / "annotation/gldv2/label_81313.txt"),
                "--by",
                "class",
                "--out",
                str(root / "splits"),
            ]
        )
        == 0
    )
    base = ["--device", "cpu", "--set", f"data.root={data}", *FAST]
    assert main(["train", "--role", "old", "--out", str(root / "old"), *base]) == 0
    assert (
        main(["train", "--role", "dmu", "--old-model", str(root / "old"), "--out", str(root / "dmu"), *base])
        == 0
    )
    assert (
        main(
            [
                "train-adapter",
                "--old-model",
                str(root / "old"),
                "--new-model",
                str(root / "dmu"),
                "--out",
                str(root / "psi"),
                *base,
            ]
        )
        == 0
    )
    for name in ("old", "dmu"):
        assert main(["extract", "--model", str(root / name), "--out", str(root / f"g_{name}"), *base]) == 0
    assert (
        main(
            [
                "adapt-gallery",
                "--gallery",
                str(root / "g_old"),
                "--old-model",
                str(root / "old"),
                "--adapter",
                str(root / "psi"),
                "--out",
                str(root / "g_adapted"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "backfill",
                "--old-gallery",
                str(root / "g_old"),
                "--old-model",
                str(root / "old"),
                "--new-gallery",
                str(root / "g_dmu"),
                "--new-model",
                str(root / "dmu"),
                "--adapter",
                str(root / "psi"),
                "--fraction",
                "0.5",
                "--out",
                str(root / "g_half"),
            ]
        )
        == 0
    )
    return root, base


def test_pipeline_outputs_and_evaluations(pipeline, capsys):
    root, base = pipeline
    split = (root / "splits" / "gldv2_train_old_30percent_class.txt").read_text().splitlines()
    assert len({line.split()[1] for line in split}) == round(0.3 * 16)
    half = json.loads((root / "g_half" / "backfill.json").read_text())
    assert len(half["backfilled"]) == 16 * 4 // 2
    results = {}
    for name, extra in {
        "self": [],
        "cross": ["--gallery-model", str(root / "old")],
        "adapted": ["--gallery", str(root / "g_adapted"), "--old-model", str(root / "old")],
        "stored_adapted": [
            "--gallery",
            str(root / "g_old"),
            "--old-model",
            str(root / "old"),
            "--adapter",
            str(root / "psi"),
        ],
    }.items():
        code, out, err = _run(
            capsys,
            "evaluate",
            "--protocol",
            "gldv2",
            "--model",
            str(root / "dmu"),
            "--out",
            str(root / f"eval_{name}"),
            *base,
            *extra,
        )
        assert code == 0, err
        results[name] = json.loads((root / f"eval_{name}" / "metrics.json").read_text())
    assert results["cross"]["test"] == "cross" and results["adapted"]["test"] == "stored gallery"
    assert results["stored_adapted"]["map@100"] == pytest.approx(results["adapted"]["map@100"])
    assert all(0.0 <= r["map@100"] <= 1.0 for r in results.values())
    code, out, err = _run(
        capsys,
        "evaluate",
        "--protocol",
        "roxford",
        "--model",
        str(root / "dmu"),
        "--gnd",
        str(root / "data/annotation/roxford/roxford.pkl"),
        "--images",
        str(root / "data/roxford/jpg"),
        "--out",
        str(root / "eval_rox"),
        *base,
    )
    assert code == 0, err
    rox = json.loads((root / "eval_rox" / "metrics.json").read_text())
    assert {"easy", "medium", "hard"} <= rox.keys() and rox["query_bbox_crop"] is True


def test_bad_inputs_are_one_line_errors(pipeline, capsys, tmp_path):
    root, base = pipeline
    assert "nothing.txt" in _error(
        capsys, "split-gldv2", str(tmp_path / "nothing.txt"), "--out", str(tmp_path)
    )
    bad = tmp_path / "label_81313.txt"
    bad.write_text("train/x.jpg 1\ntrain/y.jpg\n")
    assert "label_81313.txt:2" in _error(capsys, "split-gldv2", str(bad), "--out", str(tmp_path / "s"))
    assert "trian" in _error(
        capsys, "train", "--role", "old", "--out", str(tmp_path / "o"), "--set", "trian.lr=1"
    )
    assert "lr" in _error(
        capsys, "train", "--role", "old", "--out", str(tmp_path / "o"), "--set", "train.lr=-1"
    )
    msg = _error(
        capsys,
        "adapt-gallery",
        "--gallery",
        str(root / "g_dmu"),
        "--old-model",
        str(root / "old"),
        "--adapter",
        str(root / "psi"),
        "--out",
        str(tmp_path / "a"),
    )
    assert "not by the declared old model" in msg and not (tmp_path / "a").exists()
    # an old model of another embedding size, no ψ: both sizes named
    assert (
        main(["train", "--role", "old", "--out", str(tmp_path / "old16"), *base, "--set", "old.embed_dim=16"])
        == 0
    )
    capsys.readouterr()
    msg = _error(
        capsys,
        "evaluate",
        "--protocol",
        "gldv2",
        "--model",
        str(root / "dmu"),
        "--gallery-model",
        str(tmp_path / "old16"),
        "--out",
        str(tmp_path / "e"),
        *base,
    )
    assert "16" in msg and "32" in msg
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [sys.exit]}))
    msg = _error(
        capsys,
        "evaluate",
        "--protocol",
        "roxford",
        "--model",
        str(root / "dmu"),
        "--gnd",
        str(evil),
        "--images",
        str(tmp_path),
        "--out",
        str(tmp_path / "r"),
        *base,
    )
    assert "evil.pkl" in msg and "exit" in msg


def test_light_imports():
    import subprocess

    code = (
        "import sys, darwinian_upgrades, darwinian_upgrades.cli; "
        "bad = [m for m in ('diffusers','transformers','timm','sklearn','matplotlib','av') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ijbc_protocol_on_a_fixture(pipeline, capsys):
    root, base = pipeline
    data = root / "data"
    gallery = [
        line.split()[0]
        for line in (data / "annotation/gldv2/gldv2_gallery_list.txt").read_text().splitlines()
    ]
    ijbc = root / "IJBC"
    (ijbc / "loose_crop").mkdir(parents=True)
    (ijbc / "meta").mkdir()
    # landmarks 0 and 1 stand in for two identities: templates 1 and 2 of identity A, template 3 of B
    picks = [gallery[0], gallery[1], gallery[2], gallery[3], gallery[4], gallery[5]]
    templates = [1, 1, 2, 2, 3, 3]
    for i, path in enumerate(picks):
        (ijbc / "loose_crop" / f"{i}.jpg").write_bytes((data / path).read_bytes())
    (ijbc / "meta/ijbc_face_tid_mid.txt").write_text(
        "".join(f"{i}.jpg {t} {i}\n" for i, t in enumerate(templates))
    )
    pts = " ".join(["8.0"] * 10)
    (ijbc / "meta/ijbc_name_5pts_score.txt").write_text("".join(f"{i}.jpg {pts} 0.9\n" for i in range(6)))
    (ijbc / "meta/ijbc_template_pair_label.txt").write_text("1 2 1\n1 3 0\n2 3 0\n")
    header = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n"
    (ijbc / "meta/ijbc_1N_gallery_G1.csv").write_text(header + "1,10,0.jpg\n")
    (ijbc / "meta/ijbc_1N_gallery_G2.csv").write_text(header + "3,20,4.jpg\n")
    (ijbc / "meta/ijbc_1N_probe_mixed.csv").write_text(header + "2,10,2.jpg\n3,20,4.jpg\n")
    code, out, err = _run(
        capsys,
        "evaluate",
        "--protocol",
        "ijbc",
        "--model",
        str(root / "dmu"),
        "--ijbc-root",
        str(ijbc),
        "--out",
        str(root / "eval_ijbc"),
        *base,
    )
    assert code == 0, err
    result = json.loads((root / "eval_ijbc" / "metrics.json").read_text())
    assert result["test"] == "self" and 0.0 <= result["tar@far=0.0001"] <= 1.0
    assert 0.0 <= result["tpir@fpir=0.1"] <= 1.0


def test_cross_test_takes_the_gallery_from_the_old_model(pipeline):
    import argparse

    import torch
    from darwinian_upgrades import config as config_mod
    from darwinian_upgrades.data.gldv2 import ImageListDataset, read_label_list
    from darwinian_upgrades.models import load_model
    from darwinian_upgrades.protocols import _gallery
    from darwinian_upgrades.train import extract

    root, _ = pipeline
    cfg = config_mod.load("tiny", [f"data.root={root / 'data'}"])
    gallery = ImageListDataset(
        root / "data", read_label_list(root / "data" / cfg.data.gallery_list), cfg.data, train=False
    )
    old, new = load_model(root / "old"), load_model(root / "dmu")
    args = argparse.Namespace(gallery=None, gallery_model=str(root / "old"), adapter=None, old_model=None)
    feats, test = _gallery(args, gallery, new, "cpu")
    assert test == "cross"
    assert torch.equal(feats, extract(old, gallery)[0])
    assert not torch.allclose(feats, extract(new, gallery)[0])
