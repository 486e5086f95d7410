import numpy as np
import pytest
import torch
from PIL import Image
from seq_gan.data import ImageFolderDataset, TokenCache, load_image, load_tokens, save_tokens
from seq_gan.data.synthetic import make_synthetic, read_nuisance


def _png(path, size=(40, 20), colour=(255, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_class_folder_layout_resize_and_range(tmp_path):
    _png(tmp_path / "train" / "cat" / "a.png", (40, 20), (255, 0, 0))
    _png(tmp_path / "train" / "dog" / "b.jpg", (20, 30), (0, 0, 255))
    ds = ImageFolderDataset(tmp_path, "train", resolution=8)
    assert ds.classes == ["cat", "dog"] and len(ds) == 2
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and y == 0
    assert torch.allclose(x[0], torch.ones(8, 8), atol=0.02) and torch.allclose(
        x[2], -torch.ones(8, 8), atol=0.02
    )
    assert ds[1][1] == 1


def test_imagenet_flat_val_with_loc_solution(tmp_path):
    for syn in ("n01440764", "n01443537"):
        _png(tmp_path / "train" / syn / "x.JPEG".lower())
    _png(tmp_path / "val" / "ILSVRC2012_val_00000001.jpeg")
    _png(tmp_path / "val" / "ILSVRC2012_val_00000002.jpeg")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01443537 1 2 3 4\nILSVRC2012_val_00000002,n01440764 1 2 3 4 n01440764 5 6 7 8\n"
    )
    ds = ImageFolderDataset(tmp_path, "val", resolution=8)
    assert [y for _, y in ds.samples] == [1, 0]


def test_ffhq_unlabelled_chunks(tmp_path):
    _png(tmp_path / "images1024x1024" / "00000" / "00000.png")
    _png(tmp_path / "images1024x1024" / "01000" / "01000.png")
    ds = ImageFolderDataset(tmp_path, "images1024x1024", resolution=8, labels="none")
    assert len(ds) == 2 and {y for _, y in ds.samples} == {-1}


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolderDataset(tmp_path / "nope", "train")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png", 8)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        load_image(tmp_path / "bad.png", 8)


def test_synthetic_digits_layout_and_nuisance(tmp_path):
    root = make_synthetic(tmp_path / "digits", num_train=30, limit=40, seed=0)
    train = ImageFolderDataset(root, "train", resolution=16)
    val = ImageFolderDataset(root, "val", resolution=16)
    assert len(train) == 30 and len(val) == 10
    assert set(train.classes) <= {str(d) for d in range(10)}
    rows = read_nuisance(root)
    assert len(rows) == 40 and {r["background"] for r in rows.values()} <= {"stripes", "noise"}
    path, label = train.samples[0]
    row = rows[path.relative_to(root).as_posix()]
    assert int(row["label"]) == int(train.classes[label])
    # the digit pixels carry the listed colour
    img = np.asarray(Image.open(path), dtype=np.float64) / 255
    colour = np.array([float(row["r"]), float(row["g"]), float(row["b"])])
    assert np.min(np.abs(img - colour).sum(-1)) < 0.25
    with pytest.raises(FileExistsError):
        make_synthetic(root, limit=5)


def test_token_cache_roundtrip_and_refusals(tmp_path):
    cache = TokenCache(torch.randint(0, 32, (5, 4, 4), dtype=torch.int16), torch.arange(5), "abc", 32)
    save_tokens(tmp_path / "t.safetensors", cache)
    back = load_tokens(tmp_path / "t.safetensors", expected_hash="abc", grid=4, num_codes=32)
    assert torch.equal(back.tokens, cache.tokens) and back.tokens.dtype == torch.int16
    with pytest.raises(ValueError, match="another tokenizer"):
        load_tokens(tmp_path / "t.safetensors", expected_hash="def")
    with pytest.raises(ValueError, match="t.safetensors.*4x4"):
        load_tokens(tmp_path / "t.safetensors", grid=16)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_tokens(tmp_path / "junk.safetensors")
