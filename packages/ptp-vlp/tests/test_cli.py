"""The CLI end to end on tiny synthetic data, and bad input: one line naming the file or option, exit 2, nothing
written."""

import json
from pathlib import Path

import pytest
import torch
from ptp_vlp.cli import main
from ptp_vlp.data.corpus import read_corpus


def _data_args(data: Path) -> list[str]:
    return ["--set", f"data.corpus={data}/corpus.tsv", "--set", f"data.image_root={data}",
            "--set", f"data.tokenizer={data}/tokenizer", "--set", f"data.annotation={data}/annotation"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    assert main(["make-synthetic", "--out", str(data), "--n-train", "64", "--n-test", "18"]) == 0
    args = ["pretrain", "--config", "tiny", "--out", str(root / "pre"), *_data_args(data)]
    assert (
        main(
            [*args, "--set", "train.steps=30", "--set", "train.batch_size=16", "--set", "train.save_every=0"]
        )
        == 0
    )
    return data, root


def test_pretraining_learns(trained):
    _, root = trained
    losses = json.loads((root / "pre/train_summary.json").read_text())["losses"]
    # the LM loss falls within 30 steps (ITA first rises while real features replace the random queue)
    assert sum(losses["lm"][-5:]) < 0.9 * sum(losses["lm"][:5])
    assert (root / "pre/model/model.safetensors").is_file() and (root / "pre/config.yaml").is_file()


def test_tag_rebuilds_the_corpus(trained, tmp_path):
    data, _ = trained
    out = tmp_path / "tagged.tsv"
    assert main(["tag", "--captions", str(data / "captions_train.json"), "--detections", str(data / "detections.json"),
                 "--out", str(out)]) == 0  # fmt: skip
    assert read_corpus(out) == read_corpus(data / "corpus.tsv")


def test_ground_evaluate_finetune_caption(trained, tmp_path, capsys):
    data, root = trained
    image = data / "images/test/000004.jpg"
    assert main(["ground", str(image), "--name", "red circle", "--config", "tiny", "--checkpoint",
                 str(root / "pre/model"), "--out", str(tmp_path), *_data_args(data)]) == 0  # fmt: skip
    probs = json.loads((tmp_path / "ground.json").read_text())["probabilities"]
    assert len(probs) == 9 and abs(sum(probs) - 1) < 1e-4
    assert main(["evaluate", "--task", "retrieval_coco", "--config", "tiny", "--checkpoint", str(root / "pre/model"),
                 "--out", str(tmp_path / "ev"), *_data_args(data)]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert {"tr1", "tr5", "tr10", "ir1", "ir5", "ir10", "r_mean"} <= metrics.keys()
    assert metrics["checkpoint"] == str(root / "pre/model") and 0 <= metrics["ir1"] <= metrics["ir10"] <= 1
    ft = ["finetune", "--task", "caption_coco", "--config", "tiny", "--checkpoint", str(root / "pre/model"),
          "--out", str(tmp_path / "cap"), *_data_args(data), "--set", "train.save_every=0"]  # fmt: skip
    assert main(ft) == 0
    assert main(["evaluate", "--task", "caption_coco", "--config", "tiny", "--checkpoint", str(tmp_path / "cap/model"),
                 "--split", "val", "--out", str(tmp_path / "evc"), *_data_args(data)]) == 0  # fmt: skip
    assert {"bleu4", "cider"} <= json.loads((tmp_path / "evc/metrics.json").read_text()).keys()
    capsys.readouterr()
    assert main(["caption", str(image), "--config", "tiny", "--checkpoint", str(tmp_path / "cap/model"),
                 *_data_args(data)]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith(str(image) + "\t")


def _fails(args: list[str], capsys, *needles: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, capsys):
    data, root = trained
    out = tmp_path / "out"
    base = ["pretrain", "--config", "tiny", "--out", str(out), *_data_args(data)]
    _fails([*base, "--set", f"data.corpus={tmp_path}/missing.tsv"], capsys, "data.corpus", "missing.tsv")
    bad = tmp_path / "bad.tsv"
    lines = (data / "corpus.tsv").read_text().splitlines()
    cases = [
        ("a.jpg\tcap\t[]", "4 tab-separated columns"),
        ("a.jpg\tcap\t[[1, 2, 3]]\t['x']", "not 4 numbers"),
        ("a.jpg\tcap\t[[5, 2, 3, 4]]\t['x']", "x2 < x1"),
        ("a.jpg\tcap\t[[1, 2, 3, 4]]\t['x', 'y']", "1 boxes but 2 class names"),
    ]
    for text, needle in cases:
        bad.write_text("\n".join([lines[0], text]) + "\n")
        _fails([*base, "--set", f"data.corpus={bad}"], capsys, f"{bad}:2", needle)
    _fails([*base, "--set", "train.nope=1"], capsys, "nope")
    _fails([*base, "--set", "train.steps=-1"], capsys, "train.steps")
    (tmp_path / "tok").mkdir()
    _fails([*base, "--set", f"data.tokenizer={tmp_path}/tok"], capsys, "vocab.txt")
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"visual_encoder.cls_token": torch.zeros(1, 1, 7)}}, wrong)
    _fails([*base, "--checkpoint", str(wrong)], capsys, str(wrong), "visual_encoder")
    assert not out.exists()
    _fails(["evaluate", "--task", "retrieval_coco", "--config", "tiny", "--checkpoint", str(wrong),
            "--out", str(out), *_data_args(data)], capsys, str(wrong))  # fmt: skip
    assert not out.exists()


def test_bench_reports_both_step_times(capsys):
    assert main(["bench", "--quick", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"step_s_plain", "step_s_ptp", "ptp_step_time_ratio", "peak_memory_mb"} <= result["tiny"].keys()
    assert result["prompt_us_per_sample"] > 0
