import csv
import json

import h5py
import numpy as np
import pytest
import torch
from mist_videoqa.config import load_train_config
from mist_videoqa.data.annotations import load_qas
from mist_videoqa.data.dataset import build_dataset, collate, load_tokenizer
from mist_videoqa.data.features import FeatureStore, write_features
from mist_videoqa.data.splits import make_splits
from mist_videoqa.data.synthetic import COLOURS, OBJECTS, SyntheticSpec, make_synthetic

from visioncore.config import ConfigError

D = 32


def _feats(root, ds, keys, shape=(32, 17, D)):
    write_features(
        root / "feats" / ds / "frame_feat" / "clip_patch_feat_all.h5", keys, np.random.rand(len(keys), *shape)
    )


def _text(root, ds, qids):
    write_features(
        root / "feats" / ds / "text_feat" / "clip_text_feat.h5", qids, np.random.rand(len(qids), D)
    )


def _agqa(root, items):
    folder = root / "datasets" / "agqa"
    folder.mkdir(parents=True)
    (folder / "agqa_train.jsonl").write_text(json.dumps(items))
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(COLOURS)}))


def _item(i, vid, answer="red"):
    return {"video_id": vid, "question_id": f"q{i}", "question": "what color is the cup?", "answer": answer,
            "answer_type": "open", "semantic": "object", "structural": "query", "global": ["exists", "superlative"]}  # fmt: skip


@pytest.fixture
def tok():
    return load_tokenizer("")


def test_agqa_loader_json_array_unknown_answers_and_types(tmp_path, tok):
    _agqa(tmp_path, [_item(0, "v0"), _item(1, "v1", answer="ochre")])
    _feats(tmp_path, "agqa", ["v0", "v1"])
    _text(tmp_path, "agqa", ["q0", "q1"])
    cfg = load_train_config("tiny", [f"data.root={tmp_path}", "data.preload=false"])
    ds = build_dataset(cfg.data, cfg.model, "train", tok)
    assert [qa.answer for qa in ds.qas] == [0, -1]  # unknown answer -> -1
    assert ds.qas[0].types["global"] == ["exists", "superlative"]
    batch = collate([ds[0], ds[1]])
    assert batch["video"].shape == (2, 32, 17, D) and batch["answer"].tolist() == [0, -1]
    assert tok.convert_ids_to_tokens(batch["question_ids"][0, :3].tolist()) == ["[CLS]", "what", "color"]
    scaled_cfg = load_train_config("tiny", [f"data.root={tmp_path}", "data.feature_scale=10"])
    scaled = build_dataset(scaled_cfg.data, scaled_cfg.model, "train", tok)
    assert torch.allclose(scaled[0]["video"], 10 * ds[0]["video"]) and torch.equal(
        scaled[0]["q_feat"], ds[0]["q_feat"]
    )
    with pytest.raises(ConfigError, match="feature_scale"):
        load_train_config("tiny", ["data.feature_scale=0"])


def test_agqa_bad_inputs_name_the_file(tmp_path, tok):
    _agqa(tmp_path, [_item(0, "v0"), _item(1, "v9")])
    _feats(tmp_path, "agqa", ["v0"])
    _text(tmp_path, "agqa", ["q0", "q1"])
    cfg = load_train_config("tiny", [f"data.root={tmp_path}"])
    with pytest.raises(ValueError, match=r"1 id\(s\) .* missing: v9"):
        build_dataset(cfg.data, cfg.model, "train", tok)
    (tmp_path / "datasets" / "agqa" / "agqa_train.jsonl").write_text(json.dumps({"not": "an array"}))
    with pytest.raises(ValueError, match="agqa_train.jsonl: expected a JSON array"):
        load_qas(tmp_path, "agqa", "train")
    (tmp_path / "datasets" / "agqa" / "agqa_train.jsonl").write_text(json.dumps([{"video_id": "v0"}]))
    with pytest.raises(ValueError, match="entry 0 lacks question_id, question, answer"):
        load_qas(tmp_path, "agqa", "train")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_qas(tmp_path / "missing", "agqa", "train")


def test_feature_shape_checks(tmp_path):
    path = tmp_path / "f.h5"
    write_features(path, ["a", "b"], np.zeros((2, 32, 17, 8)))
    with pytest.raises(ValueError, match=r"shape \(2, 32, 17, 8\), expected \(N, 32, 17, 32\)"):
        FeatureStore(path, (32, 17, 32))
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="expected datasets 'ids' and 'features'"):
        FeatureStore(path, (32, 17, 8))
    store_path = tmp_path / "g.h5"
    write_features(store_path, ["a", "b"], np.arange(2 * 32 * 17 * 8).reshape(2, 32, 17, 8))
    lazy, eager = FeatureStore(store_path, (32, 17, 8)), FeatureStore(store_path, (32, 17, 8), preload=True)
    assert np.array_equal(lazy["b"], eager["b"]) and lazy["b"].dtype == np.float32


def test_nextqa_loader_csv_positions_and_types(tmp_path, tok):
    folder = tmp_path / "datasets" / "nextqa"
    folder.mkdir(parents=True)
    with (folder / "val.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["video_id", "frame_count", "width", "height", "question", "answer", "qid", "type",
                               "a0", "a1", "a2", "a3", "a4"])  # fmt: skip
        w.writeheader()
        w.writerow({"video_id": 4010069381, "frame_count": 900, "width": 640, "height": 480, "question": "why did the boy cry",
                    "answer": 3, "qid": 6, "type": "CW", "a0": "x", "a1": "y", "a2": "z", "a3": "hurt", "a4": "w"})  # fmt: skip
    _feats(tmp_path, "nextqa", ["4010069381"])
    _text(tmp_path, "nextqa", ["4010069381_6"])
    cfg = load_train_config("tiny", [f"data.root={tmp_path}", "data.dataset=nextqa", "model.mc=5"])
    ds = build_dataset(cfg.data, cfg.model, "val", tok)
    qa = ds.qas[0]
    assert (qa.answer, qa.choices[3], qa.types["type"], qa.feature_key) == (
        3,
        "hurt",
        ["causal"],
        "4010069381",
    )
    batch = collate([ds[0]])
    tokens = tok.convert_ids_to_tokens(batch["candidate_ids"][0, 3].tolist())
    assert "[SEP]" in tokens[1:-1]  # "question [SEP] option"


def test_star_loader_features_keyed_through_qid_json(tmp_path, tok):
    folder = tmp_path / "datasets" / "star"
    folder.mkdir(parents=True)
    items = [{"question_id": f"Sequence_T1_{i}", "video_id": "ABC12", "question": "what did the person do?",
              "answer": "open the door", "choices": [{"choice_id": j, "choice": c} for j, c in
              enumerate(["sit", "open the door", "eat", "walk"])]} for i in range(2)]  # fmt: skip
    (folder / "STAR_train.json").write_text(json.dumps(items))
    (folder / "qid.json").write_text(json.dumps([["Sequence_T1_1"], ["Sequence_T1_0"]]))
    path = tmp_path / "feats" / "star" / "frame_feat" / "clip_patch_feat_all.h5"
    feats = np.stack([np.full((32, 17, D), 1.0), np.full((32, 17, D), 2.0)])
    write_features(path, ["ignored_a", "ignored_b"], feats)
    _text(tmp_path, "star", ["Sequence_T1_0", "Sequence_T1_1"])
    cfg = load_train_config("tiny", [f"data.root={tmp_path}", "data.dataset=star", "model.mc=4"])
    ds = build_dataset(cfg.data, cfg.model, "train", tok)
    assert ds.qas[0].answer == 1 and ds.qas[0].types == {"category": ["Sequence"]}
    assert ds[0]["video"][0, 0, 0] == 2.0 and ds[1]["video"][0, 0, 0] == 1.0  # row i <-> qid.json[i][0]


def test_envqa_loader(tmp_path):
    folder = tmp_path / "datasets" / "envqa"
    folder.mkdir(parents=True)
    items = [{"video_id": "FloorPlan1_physics_7", "question_id": "e0", "question": "what did i open?",
              "answer": "fridge", "question_type": "event"}]  # fmt: skip
    (folder / "envqa_test.json").write_text(json.dumps(items))
    (folder / "vocab.json").write_text(json.dumps({"fridge": 0, "door": 1}))
    (qa,) = load_qas(tmp_path, "envqa", "test")
    assert (qa.answer, qa.types, qa.feature_key) == (0, {"question_type": ["event"]}, "FloorPlan1_physics_7")


def test_synthetic_data_has_one_key_segment_and_the_right_answer(tmp_path):
    spec = SyntheticSpec(n_train=6, n_val=0, n_test=2, dim=D, noise=0.0, seed=3)
    assert make_synthetic(tmp_path, "agqa", spec) == {"train": 6, "test": 2}
    items = json.loads((tmp_path / "datasets" / "agqa" / "agqa_train.jsonl").read_text())
    with h5py.File(tmp_path / "feats" / "agqa" / "frame_feat" / "clip_patch_feat_all.h5") as f:
        feats = f["features"][()].astype(np.float64)
    rng = np.random.default_rng(3)  # the generator draws the vectors first
    obj = rng.standard_normal((len(OBJECTS), D))
    obj /= np.linalg.norm(obj, axis=1, keepdims=True)
    col = rng.standard_normal((len(COLOURS), D))
    col /= np.linalg.norm(col, axis=1, keepdims=True)
    for item, video in zip(items, feats):
        key = OBJECTS.index(item["question"].split()[-1].rstrip("?"))
        target = obj[key] + col[COLOURS.index(item["answer"])]
        regions = video[:, 1:].reshape(8, 4, 16, D)
        hits = np.abs(regions - target).max(-1) < 1e-2  # float16 storage
        assert hits.sum(axis=(1, 2)).nonzero()[0].tolist() == [item["event_segment"]]
        assert hits[item["event_segment"]].sum(-1).tolist() == [1, 1, 1, 1]
        e = item["event_segment"]
        assert [int(np.argmax(hits[e, f])) for f in range(4)] == item["key_regions"]
        assert np.allclose(video[:, 0], video[:, 1:].mean(1), atol=1e-2)  # frame = mean of its regions


def test_make_splits_carves_val_by_video(tmp_path):
    items = [_item(i, f"v{i % 10}") for i in range(40)]
    _agqa(tmp_path, items)
    (tmp_path / "datasets" / "agqa" / "agqa_val.jsonl").write_text(json.dumps(items[:5]))
    counts = make_splits(tmp_path, tmp_path / "new", val_fraction=0.2, seed=0, test_from="val")
    assert counts == {"train": 32, "val": 8, "test": 5}
    folder = tmp_path / "new" / "datasets" / "agqa"
    train = {it["video_id"] for it in json.loads((folder / "agqa_train.jsonl").read_text())}
    val = {it["video_id"] for it in json.loads((folder / "agqa_val.jsonl").read_text())}
    assert len(val) == 2 and not train & val and (folder / "vocab.json").is_file()


@pytest.mark.parametrize("layout,mc", [("nextqa", 5), ("star", 4)])
def test_synthetic_multiple_choice_layouts_read_by_the_real_loaders(tmp_path, tok, layout, mc):
    make_synthetic(tmp_path, layout, SyntheticSpec(n_train=4, n_val=0, n_test=2, dim=D, seed=1))
    cfg = load_train_config("tiny", [f"data.root={tmp_path}", f"data.dataset={layout}", f"model.mc={mc}"])
    ds = build_dataset(cfg.data, cfg.model, "train", tok)
    qa = ds.qas[0]
    assert len(qa.choices) == mc and qa.choices[qa.answer] in COLOURS and qa.event_segment >= 0
    batch = collate([ds[0], ds[1]])
    assert batch["candidate_ids"].shape[:2] == (2, mc)
