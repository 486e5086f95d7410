import numpy as np
import pytest
from cyclic_walks.evaluate import foreground_scores, object_discovery_scores, semantic_segmentation_miou


def hand_made():
    true = np.zeros((1, 6, 6), dtype=np.int64)
    true[0, 1:4, 1:4] = 1
    true[0, 1:4, 4] = 255  # a void border next to the object
    pred = np.zeros((1, 6, 6), dtype=np.int64)
    pred[0, 1:4, 1:5] = 2  # the predicted segment covers the object and its border
    return true, pred


def test_protocols_differ_on_the_void_border():
    true, pred = hand_made()
    clean = object_discovery_scores(pred, true, "clean")
    official = object_discovery_scores(pred, true, "official")
    assert clean["fg_ari"] == [1.0] and clean["mbo"] == [1.0]
    # official: the 255 border is a foreground segment the prediction merges with background -> not perfect
    assert official["fg_ari"][0] < 1.0 and official["mbo"][0] < 1.0
    assert official["mbo"][0] == pytest.approx(
        (1.0 + 0.0) / 2
    )  # object IoU 1, border best IoU 0 vs background


def test_foreground_iou_and_dice_take_the_best_slot():
    true = np.zeros((1, 4, 4), dtype=np.int64)
    true[0, :2] = 1
    pred = np.zeros((1, 4, 4), dtype=np.int64)
    pred[0, :2, :3] = 1  # slot 1 covers 6 of the 8 foreground pixels
    scores = foreground_scores(pred, true, num_slots=2)
    assert scores["iou"][0] == pytest.approx(6 / 8)
    assert scores["dice"][0] == pytest.approx(2 * 6 / (6 + 8))


def test_semantic_segmentation_perfect_slots_give_miou_one():
    rng = np.random.default_rng(0)
    m, h, w = 6, 4, 4
    class_masks = np.zeros((m, h, w), dtype=np.int64)
    slot_maps = np.zeros((m, h, w), dtype=np.int64)
    feats = np.zeros((m, 2, 3))
    for i in range(m):
        cls = 1 + i % 2
        class_masks[i, :, 2:] = cls
        slot_maps[i, :, 2:] = 1
        feats[i, 0] = [1, 0, 0]
        feats[i, 1] = np.eye(3)[cls] + 0.01 * rng.standard_normal(3)
    assert semantic_segmentation_miou(feats, slot_maps, class_masks, num_classes=3) == pytest.approx(1.0)
