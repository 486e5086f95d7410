import io
import pickle

import numpy as np
import pytest
import torch
from darwinian_upgrades import config as config_mod
from darwinian_upgrades.data.gldv2 import (
    ImageListDataset,
    prepare_gldv2,
    read_label_list,
    read_query_gt,
    split_by_class,
    split_by_data,
)
from darwinian_upgrades.data.ijbc import load_1n_csv, load_meta
from darwinian_upgrades.data.ms1m import MS1MDataset, pack, write_records
from darwinian_upgrades.data.revisitop import load_gnd
from darwinian_upgrades.data.synthetic import make_synthetic, read_quality
from PIL import Image

from visioncore.safe_pickle import UnsafePickleError


def test_label_list_errors_name_file_and_line(tmp_path):
    path = tmp_path / "label_81313.txt"
    path.write_text("train/a/b/c/x.jpg 3\ntrain/a/b/c/y.jpg seven\n")
    with pytest.raises(ValueError, match=r"label_81313.txt:2: expected"):
        read_label_list(path)
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_label_list(tmp_path / "nothing.txt")
    path.write_text("train/a/b/c/x.jpg 3\n\ntrain/a/b/c/y.jpg 7\n")
    assert read_label_list(path) == [("train/a/b/c/x.jpg", 3), ("train/a/b/c/y.jpg", 7)]


def test_prepare_gldv2_builds_lists_and_gt(tmp_path):
    (tmp_path / "index.csv").write_text("id,url\n0123abcd,u\nfedc9876,u\n5555aaaa,u\n")
    (tmp_path / "sol.csv").write_text(
        "id,images,Usage\nq1aa,fedc9876 0123abcd,Private\nq2bb,5555aaaa,Public\nq3cc,None,Ignored\n"
    )
    counts = prepare_gldv2(tmp_path / "index.csv", tmp_path / "sol.csv", tmp_path / "out")
    assert counts == {"gallery": 3, "public": 1, "private": 1}
    gallery = read_label_list(tmp_path / "out" / "gldv2_gallery_list.txt")
    assert gallery[1] == ("index/f/e/d/fedc9876.jpg", 0)
    assert read_query_gt(tmp_path / "out" / "gldv2_private_query_gt.txt") == [("test/q/1/a/q1aa.jpg", [1, 0])]
    (tmp_path / "bad.csv").write_text("id,images,Usage\nq1aa,ffffffff,Private\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: index image ffffffff"):
        prepare_gldv2(tmp_path / "index.csv", tmp_path / "bad.csv", tmp_path / "out2")


def test_splits_by_data_and_by_class():
    entries = [(f"train/{c}/{i}.jpg", c) for c in range(10) for i in range(10)]
    by_data = split_by_data(entries, 0.3, seed=666)
    assert len(by_data) == 30 and {c for _, c in by_data} == set(range(10))
    assert by_data == split_by_data(list(reversed(entries)), 0.3, seed=666)  # order-free, per-class seeds
    by_class = split_by_class(entries, 0.3, seed=666)
    assert len({c for _, c in by_class}) == 3 and len(by_class) == 30


def test_synthetic_layout_reads_back_and_quality_is_hidden_noise(tmp_path):
    cfg = config_mod.load("tiny")
    counts = make_synthetic(tmp_path, cfg.repro, seed=3)
    assert counts["train"] == 16 * 10 and counts["open_gallery"] == 8 * 4
    train = read_label_list(tmp_path / "annotation/gldv2/label_81313.txt")
    old = read_label_list(tmp_path / "annotation/gldv2/gldv2_train_old_30percent.txt")
    assert {lab for _, lab in train} == set(range(16)) and len(old) == 16 * 3
    gt = read_query_gt(tmp_path / "annotation/gldv2_open/gldv2_private_query_gt.txt")
    assert len(gt) == 16 and all(len(rows) == 4 for _, rows in gt)
    data = ImageListDataset(tmp_path, train, cfg.data, train=True)
    image, label = data[0]
    assert image.shape == (3, 16, 16) and abs(float(image.mean())) < 1.5
    quality = read_quality(tmp_path / "annotation/quality.csv")
    # noisier images (higher q) deviate more from the class mean
    images = torch.stack([data[i][0] for i in range(len(data))])
    labels = torch.tensor([lab for _, lab in train])
    means = torch.stack([images[labels == c].mean(0) for c in range(16)])
    residual = (images - means[labels]).pow(2).mean(dim=(1, 2, 3)).numpy()
    q = np.array([quality[p] for p, _ in train])
    assert np.corrcoef(residual, q)[0, 1] > 0.5
    gnd = load_gnd(tmp_path / "annotation/roxford/roxford.pkl")
    assert len(gnd.qimlist) == 16 and len(gnd.imlist) == 32
    assert all(len(g["easy"]) + len(g["hard"]) == 4 for g in gnd.gnd)
    assert (tmp_path / "roxford" / "jpg" / f"{gnd.imlist[0]}.jpg").is_file()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_gnd_pickle_with_forbidden_global_is_refused(tmp_path):
    path = tmp_path / "roxford.pkl"
    path.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [_Evil()]}))
    with pytest.raises(UnsafePickleError, match="print"):
        load_gnd(path)
    path.write_bytes(
        pickle.dumps(
            {
                "imlist": ["a"],
                "qimlist": ["q"],
                "gnd": [{"easy": np.array([0]), "hard": [], "junk": [], "bbx": [1, 2, 3, 4]}],
            }
        )
    )
    assert load_gnd(path).gnd[0]["easy"] == [0]


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((112, 112, 3), value, np.uint8)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_ms1m_recordio_by_struct(tmp_path):
    records = [pack([4.0, 7.0], b"", id1=4, id2=7)] + [pack(float(c), _jpeg(40 * c)) for c in (0, 1, 2)]
    write_records(tmp_path / "train.rec", tmp_path / "train.idx", records)
    data = MS1MDataset(tmp_path)
    assert len(data) == 3
    image, label = data[2]
    assert label == 2 and image.shape == (3, 112, 112)
    assert abs(float(image.mean()) - (80 / 127.5 - 1)) < 0.02
    from darwinian_upgrades.cli import main

    assert (
        main(["split-gldv2", str(tmp_path), "--by", "class", "--fraction", "0.34", "--out", str(tmp_path)])
        == 0
    )
    split = read_label_list(tmp_path / "gldv2_train_old_34percent_class.txt")
    assert len(split) == 1 and MS1MDataset(tmp_path, split)[0][1] == split[0][1]
    (tmp_path / "train.idx").write_text("0\tzero\n")
    with pytest.raises(ValueError, match=r"train.idx:1"):
        MS1MDataset(tmp_path)


def test_ijbc_meta_files(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "ijbc_face_tid_mid.txt").write_text("1.jpg 1 10\n2.jpg 1 11\n3.jpg 2 12\n")
    (meta / "ijbc_template_pair_label.txt").write_text("1 2 0\n1 1 1\n")
    pts = " ".join(["1.0"] * 10)
    (meta / "ijbc_name_5pts_score.txt").write_text(f"1.jpg {pts} 0.9\n2.jpg {pts} 0.8\n3.jpg {pts} 0.7\n")
    (meta / "ijbc_1N_gallery_G1.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,5,img/1.jpg\n")
    m = load_meta(tmp_path)
    assert m.templates.tolist() == [1, 1, 2] and m.pairs.tolist() == [[1, 2], [1, 1]]
    assert m.landmarks.shape == (3, 5, 2) and m.scores.tolist() == [0.9, 0.8, 0.7]
    assert load_1n_csv(meta / "ijbc_1N_gallery_G1.csv") == [(1, 5, "img/1.jpg")]
    (meta / "ijbc_template_pair_label.txt").write_text("1 2\n")
    with pytest.raises(ValueError, match=r"ijbc_template_pair_label.txt:1"):
        load_meta(tmp_path)
