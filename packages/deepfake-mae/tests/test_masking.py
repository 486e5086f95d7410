import numpy as np
import pytest
import torch
from deepfake_mae.models.masking import (
    LandmarkShapeError,
    box_pixel_mask,
    facial_part_mask,
    part_boxes,
    patch_membership,
    random_mask,
    single_part_mask,
)


def _landmarks_68() -> np.ndarray:
    """A hand-made 68-point face on a 32x32 image with patch 4 (grid 8)."""
    pts = np.zeros((68, 2), dtype=np.float32)
    pts[0:17] = np.stack([np.linspace(4, 28, 17), np.linspace(10, 30, 17)], 1)  # jaw
    pts[17:27] = np.stack([np.linspace(8, 24, 10), np.full(10, 9.0)], 1)  # brows y=9
    pts[36:48] = np.stack([np.linspace(9, 23, 12), np.full(12, 12.0)], 1)  # eyes y=12
    pts[27:36] = np.stack([np.full(9, 16.0), np.linspace(14, 18, 9)], 1)  # nose x=16, y 14..18
    pts[48:68] = np.stack([np.linspace(12, 20, 20), np.linspace(23, 25, 20)], 1)  # mouth
    return pts


def test_68_point_parts_hit_the_right_patches():
    boxes = part_boxes(_landmarks_68())
    assert boxes.shape == (3, 4)
    torch.testing.assert_close(boxes[0], torch.tensor([8.0, 9.0, 24.0, 12.0]))
    member = patch_membership(boxes, grid=8, patch=4, margin=0.0).view(3, 8, 8)
    # eyes: rows covering y 9..12 -> rows 2,3 ; cols covering x 8..24 -> cols 2..6
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:4, 2:7] = True
    assert torch.equal(member[0], expected)
    # nose: x 16 -> col 4 (16 <= 16 and 20 > 16) and col 3 (12 <= 16, 16 > 16 false) -> only col 4; y 14..18 rows 3,4
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[3:5, 4] = True
    assert torch.equal(member[1], expected)
    # dilation adds neighbours
    dilated = patch_membership(boxes, grid=8, patch=4, margin=1.0).view(3, 8, 8)
    assert dilated[1, 3, 3] and dilated.sum() > member.sum()


def test_5_point_parts_are_ordered_and_sized_by_eye_distance():
    five = np.array([[10, 12], [22, 12], [16, 17], [12, 23], [20, 23]], dtype=np.float32)
    boxes = part_boxes(five)
    eyes, nose, mouth = boxes
    assert eyes[1] < eyes[3] < nose[3] <= mouth[3]  # ordered top to bottom
    assert eyes[0] == pytest.approx(10 - 0.35 * 12) and eyes[2] == pytest.approx(22 + 0.35 * 12)
    assert mouth[1] == pytest.approx(23 - 0.25 * 12)


def test_thirds_split_the_face_into_three_bands():
    boxes = part_boxes(_landmarks_68(), scheme="thirds")
    heights = boxes[:, 3] - boxes[:, 1]
    torch.testing.assert_close(heights, heights[:1].expand(3))
    assert torch.allclose(boxes[:-1, 3], boxes[1:, 1])


@pytest.mark.parametrize("shape", [(68,), (10, 67, 2), (4, 5, 3)])
def test_wrong_landmark_shapes_are_rejected(shape):
    with pytest.raises(LandmarkShapeError):
        part_boxes(np.zeros(shape))


def test_part_mask_equal_counts_and_chosen_parts_fully_masked():
    g = torch.Generator().manual_seed(0)
    lm = torch.as_tensor(_landmarks_68())[None].repeat(16, 1, 1)
    lm = lm + torch.randint(-3, 4, (16, 1, 2)).float()  # per-sample shifts -> different part sizes per sample
    member = patch_membership(part_boxes(lm), grid=8, patch=4, margin=1.0)
    mask, part_mask = facial_part_mask(member, mask_ratio=0.4, generator=g)
    assert mask.sum(1).tolist() == [round(0.4 * 64)] * 16  # exactly the nominal ratio
    assert (mask | ~part_mask).all()  # every chosen-part patch is masked
    # each sample's part mask is the union of 1 or 2 whole parts
    for b in range(16):
        unions = [member[b, list(c)].any(0) for c in ([0], [1], [2], [0, 1], [0, 2], [1, 2])]
        assert any(torch.equal(part_mask[b], u) for u in unions)


def test_top_up_grows_to_the_largest_part_when_parts_exceed_ratio():
    member = torch.zeros(2, 1, 16, dtype=torch.bool)
    member[0, 0, :10] = True
    member[1, 0, :3] = True
    mask, part = single_part_mask(member, 0, mask_ratio=0.25)
    assert mask.sum(1).tolist() == [10, 10] and (mask | ~part).all()


def test_random_mask_ratio():
    mask = random_mask(4, 64, 0.75, torch.Generator().manual_seed(1))
    assert mask.sum(1).tolist() == [48] * 4
    assert not torch.equal(mask[0], mask[1])


def test_box_pixel_mask():
    m = box_pixel_mask(torch.tensor([[2.0, 1.0, 5.0, 3.0]]), 8, 8)
    assert m.shape == (1, 8, 8) and m.sum() == 3 * 2  # x centres 2.5,3.5,4.5 ; y centres 1.5,2.5


def test_exact_mask_ratio_over_1000_synthetic_samples():
    """Every mask has exactly round(r * N) patches and no chosen part is partly visible (issue 11)."""
    from deepfake_mae.data.synthetic import landmarks_of, random_identity

    rng = np.random.default_rng(0)
    size, patch, grid = 32, 4, 8
    landmarks = torch.stack([torch.as_tensor(landmarks_of(random_identity(rng)) * size) for _ in range(1000)])
    member = patch_membership(part_boxes(landmarks), grid, patch, margin=1.0)
    for ratio in (0.44, 0.75):
        masks, parts = [], []
        for start in range(0, 1000, 64):  # training-sized batches
            m, p = facial_part_mask(
                member[start : start + 64], ratio, (1, 2), torch.Generator().manual_seed(start)
            )
            masks.append(m)
            parts.append(p)
        mask, part_mask = torch.cat(masks), torch.cat(parts)
        assert mask.sum(1).unique().tolist() == [round(ratio * grid * grid)]
        assert (mask | ~part_mask).all()
        assert part_mask.any(1).all()  # every sample masks at least one whole part
        # each part mask is a union of whole parts
        chosen = (member & part_mask[:, None]).sum(-1) == member.sum(-1)
        assert torch.equal((member & chosen[..., None]).any(1), part_mask)


def test_a_part_larger_than_the_target_is_used_whole_and_said_once(caplog):
    member = torch.zeros(2, 3, 16, dtype=torch.bool)
    member[:, 0, :10] = True  # every part of sample 0 exceeds the 4-patch target; its smallest has 6
    member[:, 1, :6] = True
    member[0, 2, :8] = True
    member[1, 2, 10:13] = True  # sample 1's third part fits
    import deepfake_mae.models.masking as masking

    masking._WARNED_OVERSIZED_PART = False
    with caplog.at_level("WARNING", logger="deepfake_mae"):
        mask, part = facial_part_mask(member, 0.25, (1,), torch.Generator().manual_seed(0))
        facial_part_mask(member, 0.25, (1,), torch.Generator().manual_seed(1))
    assert mask.sum(1).tolist() == [6, 6]
    assert torch.equal(part[0], member[0, 1]) and torch.equal(part[1], member[1, 2])
    assert (mask | ~part).all()
    assert sum("more than the 4 of the mask ratio" in r.message for r in caplog.records) == 1


def test_random_masking_matches_maes_rule_for_a_given_noise():
    """MAE's random_masking keeps the len_keep LOWEST-noise patches visible."""
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4], [0.0, 0.6, 0.2, 0.9, 0.1, 0.8, 0.3, 0.5]])
    len_keep = int(8 * (1 - 0.75))  # MAE: 2 visible, 6 masked
    expected = torch.ones(2, 8, dtype=torch.bool)
    for row in range(2):
        keep = torch.argsort(noise[row])[:len_keep]  # by hand: ids_shuffle = argsort(noise), ids_keep = first
        expected[row, keep] = False
    assert torch.equal(random_mask(2, 8, 0.75, noise=noise), expected)
    assert expected[0].tolist() == [True, False, True, True, True, False, True, True]
    # forced facial-part patches stay masked whatever their noise; the rest follows the noise
    from deepfake_mae.models.masking import top_up_mask

    forced = torch.zeros(2, 8, dtype=torch.bool)
    forced[:, 1] = True  # patch 1 has the lowest noise of row 0
    mask = top_up_mask(forced, 0.75, noise=noise)
    assert mask[:, 1].all() and mask.sum(1).tolist() == [6, 6]
    assert mask[0].tolist() == [True, True, True, False, True, False, True, True]
