import json

import numpy as np
import pytest
import torch
from cyclic_walks.data import (
    COCOInstances,
    CUBBirds,
    DatasetError,
    MOVi,
    MRCNNForeground,
    OxfordFlowers,
    VOCSegmentation,
    build_dataset,
    write_synthetic_voc,
)
from cyclic_walks.data.synthetic import add_boundaries
from PIL import Image
from scipy.io import savemat


def save_rgb(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def save_gray(path, array, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode).save(path)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return write_synthetic_voc(tmp_path_factory.mktemp("voc"), num_train=4, num_val=3, size=48, seed=0)


def test_synthetic_voc_layout_and_loader(voc_root):
    assert (voc_root / "ImageSets" / "Segmentation" / "train.txt").read_text().count("\n") == 4
    png = Image.open(voc_root / "SegmentationObject" / "val_00000.png")
    assert png.mode == "P"  # palette PNGs as in VOC
    clean = VOCSegmentation(voc_root, "val", eval_crop=48, eval_size=48, protocol="clean")
    official = VOCSegmentation(voc_root, "val", eval_crop=48, eval_size=48, protocol="official")
    s, o = clean[0], official[0]
    assert s["image"].shape == (3, 48, 48) and s["image"].min() >= 0 and s["image"].max() <= 1
    assert 255 in s["mask"].unique().tolist()  # void borders
    ids = set(s["mask"].unique().tolist()) - {0, 255}
    assert ids and ids <= {1, 2, 3, 4}  # instance ids under the clean protocol
    torch.testing.assert_close(o["mask"], o["class_mask"])  # official scores class masks
    train = VOCSegmentation(voc_root, "train", image_size=32, train=True, seed=1)
    a, b = train[0], train[0]
    assert a["image"].shape == (3, 32, 32)
    torch.testing.assert_close(a["image"], b["image"])  # augmentation depends on (seed, epoch, index) only
    train.set_epoch(1)
    assert train[0]["image"].shape == (3, 32, 32)


def test_boundaries_mark_object_edges_only():
    labels = np.zeros((5, 5), dtype=np.int64)
    labels[1:4, 1:4] = 2
    out = add_boundaries(labels)
    assert out[2, 2] == 2 and out[1, 1] == 255 and out[0, 0] == 0


def test_voc_renamed_official_tree(tmp_path):
    base = tmp_path / "VOCSegmentation"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        save_rgb(base / "images" / f"{name}.jpg", rng.integers(0, 255, (20, 30, 3)))
        mask = np.zeros((20, 30))
        mask[5:10, 5:10] = 15
        save_gray(base / "SegmentationClassAug" / f"{name}.png", mask)
        save_gray(base / "SegmentationClass" / f"{name}.png", mask)
    (base / "sets").mkdir()
    (base / "sets" / "trainaug.txt").write_text("a\nb\n")
    (base / "sets" / "val.txt").write_text("b\n")
    ds = VOCSegmentation(tmp_path, "val", eval_crop=16, eval_size=24)
    s = ds[0]
    assert len(ds) == 1 and s["mask"].shape == (24, 24) and set(s["mask"].unique().tolist()) <= {0, 15}
    assert len(VOCSegmentation(tmp_path, "trainaug", image_size=16, train=True)) == 2


def test_voc_bad_inputs_name_the_file(voc_root, tmp_path):
    with pytest.raises(DatasetError, match="missing.txt"):
        VOCSegmentation(voc_root, "missing")
    # an image/mask size mismatch
    import shutil

    root = tmp_path / "VOC2012"
    shutil.copytree(voc_root, root)
    Image.new("P", (10, 10)).save(root / "SegmentationObject" / "val_00000.png")
    with pytest.raises(DatasetError, match="val_00000.png"):
        VOCSegmentation(root, "val", protocol="clean", eval_crop=48, eval_size=48)[0]
    with pytest.raises(DatasetError, match="data.root"):
        build_dataset("voc", "", "val", train=False)


def test_coco_official_sum_vs_clean(tmp_path):
    save_rgb(tmp_path / "val2017" / "x.jpg", np.full((20, 20, 3), 100))
    ann = {
        "images": [{"id": 7, "file_name": "x.jpg", "height": 20, "width": 20}],
        "categories": [{"id": 3, "name": "car"}, {"id": 5, "name": "dog"}],
        "annotations": [
            {"image_id": 7, "category_id": 3, "iscrowd": 0, "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]},
            {
                "image_id": 7,
                "category_id": 5,
                "iscrowd": 0,
                "segmentation": [[12, 12, 18, 12, 18, 18, 12, 18]],
            },
            # crowd region as uncompressed RLE (column-major): pixels 0..19 of column 0
            {
                "image_id": 7,
                "category_id": 5,
                "iscrowd": 1,
                "segmentation": {"size": [20, 20], "counts": [0, 20, 380]},
            },
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(ann))
    official = COCOInstances(tmp_path, "val", eval_crop=20, eval_size=20, protocol="official")[0]
    clean = COCOInstances(tmp_path, "val", eval_crop=20, eval_size=20, protocol="clean")[0]
    assert official["mask"][5, 5] == 0  # the first instance merges into the background (official quirk)
    assert official["mask"][15, 15] == 1 and official["mask"][5, 0] == 2
    assert clean["mask"][5, 5] == 1 and clean["mask"][15, 15] == 2 and clean["mask"][5, 0] == 255
    assert clean["class_mask"][5, 5] == 1 and clean["class_mask"][15, 15] == 2
    with pytest.raises(DatasetError, match="instances_train2017.json"):
        COCOInstances(tmp_path, "train")


def test_movi_frames_and_masks(tmp_path):
    for split in ("train", "validation"):
        for clip in ("c0", "c1"):
            for t in range(3):
                save_rgb(tmp_path / "C" / split / "rgb" / clip / f"{t:05d}.jpg", np.full((32, 32, 3), 50 * t))
                seg = np.zeros((32, 32))
                seg[4:12, 4:12] = 3
                save_gray(tmp_path / "C" / split / "seg" / clip / f"{t:05d}.png", seg)
    val = MOVi(tmp_path, "validation", eval_size=16, protocol="clean")
    assert (
        len(val) == 6 and val[0]["mask"].shape == (16, 16) and set(val[0]["mask"].unique().tolist()) == {0, 3}
    )
    train = MOVi(tmp_path, "train", train=True, image_size=24, frames_per_clip=2)
    assert len(train) == 4 and train[0]["image"].shape == (3, 24, 24)
    with pytest.raises(DatasetError, match="rgb"):
        MOVi(tmp_path, "test")


def test_cub_birds(tmp_path):
    save_rgb(tmp_path / "images" / "001.Bird" / "a.jpg", np.full((40, 60, 3), 90))
    seg = np.zeros((40, 60))
    seg[10:30, 20:40] = 255
    save_gray(tmp_path / "segmentations" / "001.Bird" / "a.png", seg)
    (tmp_path / "images.txt").write_text("1 001.Bird/a.jpg\n")
    (tmp_path / "bounding_boxes.txt").write_text("1 20.0 10.0 20.0 20.0\n")
    (tmp_path / "train_val_test_split.txt").write_text("1 2\n")
    for protocol in ("official", "clean"):
        s = CUBBirds(tmp_path, "test", size=30, protocol=protocol)[0]
        assert s["image"].shape == (3, 30, 30)
        # square crop of side 30 around the box centre: the bird covers the middle 20/30 of each side
        assert s["mask"][15, 15] == 1 and s["mask"][1, 1] == 0
    assert len(CUBBirds(tmp_path, "train")) == 0


def test_cars_dogs_and_flowers(tmp_path):
    for dataset, names in (
        ("cars", ("data_mrcnn_train_select.npy", "data_mrcnn_test_select.npy")),
        ("dogs", ("data_tr_sel.npy", "data_te_sel.npy")),
    ):
        root = tmp_path / dataset
        folder = root / "data_mrcnn" / "test" / "resized"
        save_rgb(folder / "t1_resized.png", np.full((20, 20, 3), 10))
        mask = np.zeros((20, 20))
        mask[5:15, 5:15] = 255
        save_gray(folder / "t1_maskresized.png", mask)
        root.mkdir(exist_ok=True)
        np.save(root / names[1], np.array(["t1"]))
        s = MRCNNForeground(root, dataset, "test", size=10)[0]
        assert s["mask"].sum() == 25
        with pytest.raises(DatasetError, match=names[0]):
            MRCNNForeground(root, dataset, "train")
    root = tmp_path / "flowers"
    save_rgb(root / "jpg" / "image_00001.jpg", np.full((16, 16, 3), 200))
    seg = np.zeros((16, 16, 3))
    seg[..., 2] = 254  # pure blue background
    seg[4:12, 4:12] = [200, 30, 60]
    save_rgb(root / "segmim" / "segmim_00001.jpg", seg)
    savemat(
        root / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[1]]), "tstid": np.array([[1]])}
    )
    s = OxfordFlowers(root, "test", size=16)[0]
    assert s["mask"][8, 8] == 1 and s["mask"][0, 0] == 0
    with pytest.raises(DatasetError, match="setid.mat"):
        OxfordFlowers(tmp_path, "test")
