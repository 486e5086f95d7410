import json

import pytest
import torch
from seq_gan.cli import main
from seq_gan.config import TokenizerConfig, load
from seq_gan.data import TokenCache, save_tokens
from seq_gan.models import VQTokenizer


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tok")
    VQTokenizer(**load(TokenizerConfig, "tiny").model.kwargs()).save_pretrained(out / "model")
    return out


def test_encode_train_sample_visualize_reconstruct_evaluate(digits_root, tokenizer_dir, tmp_path, capsys):
    code, out, err = _run(capsys, "encode", "--model", tokenizer_dir, "--root", digits_root, "--split", "train",
                          "--out", tmp_path / "tokens", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    tokens = json.loads(out)["tokens"]
    for kind in ("maskgit", "ar"):
        code, _, err = _run(capsys, "train-transformer", "--kind", kind, "--config", f"{kind}-tiny", "--tokens", tokens,
                            "--tokenizer", tokenizer_dir, "--out", tmp_path / kind, "--device", "cpu")  # fmt: skip
        assert code == 0, err
        code, out, err = _run(capsys, "sample", "--model", tmp_path / kind, "--tokenizer", tokenizer_dir,
                              "--labels", "0,1,2", "--out", tmp_path / f"samples_{kind}", "--device", "cpu")  # fmt: skip
        assert code == 0, err
        assert (tmp_path / f"samples_{kind}" / "samples.png").is_file() and json.loads(out)["count"] == 3
    images = sorted((digits_root / "val").rglob("*.png"))[:2]
    code, out, err = _run(capsys, "visualize", "--model", tmp_path / "ar", "--tokenizer", tokenizer_dir, *images,
                          "--label", "1", "--out", tmp_path / "vis", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert 0.0 <= json.loads(out)["top1_token_agreement"] <= 1.0
    code, out, err = _run(capsys, "reconstruct", "--model", tokenizer_dir, *images, "--out", tmp_path / "rec")
    assert code == 0, err
    assert (tmp_path / "rec" / "reconstructions.png").is_file()
    code, out, err = _run(
        capsys, "evaluate", "--model", tokenizer_dir, "--root", digits_root, "--out", tmp_path / "ev"
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["images"] == 8 and 0 < metrics["usage"] <= 1 and 1 <= metrics["perplexity"] <= 32


def _error(capsys, *argv):
    code, _, err = _run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_inputs_are_one_line_errors(digits_root, tokenizer_dir, tmp_path, capsys):
    # a missing image, checked before any model loads (the model folder does not even exist)
    msg = _error(
        capsys, "reconstruct", "--model", tmp_path / "nope", tmp_path / "missing.png", "--out", tmp_path / "r"
    )
    assert "missing.png" in msg and not (tmp_path / "r").exists()
    # tokens of another tokenizer
    other = TokenCache(
        torch.zeros(4, 4, 4, dtype=torch.int16), torch.zeros(4, dtype=torch.long), "0" * 16, 32
    )
    save_tokens(tmp_path / "other.safetensors", other)
    msg = _error(capsys, "train-transformer", "--tokens", tmp_path / "other.safetensors", "--tokenizer", tokenizer_dir,
                 "--out", tmp_path / "t")  # fmt: skip
    assert "other.safetensors" in msg and "another tokenizer" in msg and not (tmp_path / "t").exists()
    # a token cache of the wrong shape
    tok = VQTokenizer.from_pretrained(tokenizer_dir / "model")
    wrong = TokenCache(
        torch.zeros(4, 8, 8, dtype=torch.int16), torch.zeros(4, dtype=torch.long), tok.token_space_hash(), 32
    )
    save_tokens(tmp_path / "wrong.safetensors", wrong)
    msg = _error(capsys, "train-transformer", "--tokens", tmp_path / "wrong.safetensors", "--tokenizer", tokenizer_dir,
                 "--out", tmp_path / "t")  # fmt: skip
    assert "wrong.safetensors" in msg and "8x8" in msg
    # --phase 2 without (or with a missing) phase-1 checkpoint
    msg = _error(
        capsys,
        "train-tokenizer",
        "--phase",
        "2",
        "--out",
        tmp_path / "p2",
        "--set",
        f"data.root={digits_root}",
    )
    assert "--init" in msg and not (tmp_path / "p2").exists()
    msg = _error(
        capsys, "train-tokenizer", "--phase", "2", "--init", tmp_path / "no_phase1", "--out", tmp_path / "p2"
    )
    assert "no_phase1" in msg and not (tmp_path / "p2").exists()
    # an unknown config key, a value out of range
    assert "bogus" in _error(capsys, "train-tokenizer", "--out", tmp_path / "x", "--set", "loss.bogus=1")
    assert "loss.alpha" in _error(
        capsys, "train-tokenizer", "--out", tmp_path / "x", "--set", "loss.alpha=2.0"
    )
    # a VGG16 file without classifier weights
    from torchvision.models import vgg16

    torch.save({k: v for k, v in vgg16(weights=None).state_dict().items() if k.startswith("features.")},
               tmp_path / "vgg_features.pth")  # fmt: skip
    msg = _error(capsys, "train-tokenizer", "--out", tmp_path / "v", "--set", f"data.root={digits_root}",
                 "--set", "perceptual.kind=vgg16", "--set", f"perceptual.weights={tmp_path / 'vgg_features.pth'}")  # fmt: skip
    assert "vgg_features.pth" in msg and "classifier" in msg and not (tmp_path / "v").exists()


def test_evaluate_with_a_local_inception_file(digits_root, tokenizer_dir, tmp_path, capsys):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    torch.save(
        inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), tmp_path / "inc.pth"
    )
    code, _, err = _run(capsys, "evaluate", "--model", tokenizer_dir, "--root", digits_root, "--inception",
                        tmp_path / "inc.pth", "--limit", "4", "--out", tmp_path / "ev")  # fmt: skip
    assert code == 0, err
    first = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert first["rfid"] > 0 and (tmp_path / "ev" / "ref_stats.npz").is_file()
    # the real images as "samples" against their own statistics: gFID ~ 0 (same resize path on both sides)
    samples = tmp_path / "samples"
    samples.mkdir()
    for p in sorted((digits_root / "val").rglob("*.png"))[:4]:
        (samples / p.name).write_bytes(p.read_bytes())
    code, _, err = _run(capsys, "evaluate", "--model", tokenizer_dir, "--root", digits_root, "--inception",
                        tmp_path / "inc.pth", "--limit", "4", "--samples", samples, "--ref-stats",
                        tmp_path / "ev" / "ref_stats.npz", "--out", tmp_path / "ev2")  # fmt: skip
    assert code == 0, err
    second = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    assert abs(second["gfid"]) < 1e-3 * max(1.0, first["rfid"]) and second["is"] >= 1.0
