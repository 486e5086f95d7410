"""Every rule of ptp_vlp.prompts: block tagging, normalisation, the two variants, the control, seeding."""

import random
from collections import Counter

import pytest
from ptp_vlp.prompts import (
    PROMPT_TEMPLATE,
    block_index,
    join_captions,
    make_prompt,
    pre_caption,
    prompt_rng,
    ptp_text,
)


def test_block_index_is_row_major_on_the_box_centre():
    w, h = 90, 60
    # centre (15, 10): col 0, row 0; centre (75, 50): col 2, row 2; centre (75, 10): col 2 row 0 -> 2 (not 6)
    assert block_index((10, 5, 20, 15), w, h) == 0
    assert block_index((70, 45, 80, 55), w, h) == 8
    assert block_index((70, 5, 80, 15), w, h) == 2
    assert block_index((5, 45, 25, 55), w, h) == 6
    # a box spanning blocks 0-1 with most of its area in block 0 but its centre in block 1
    assert block_index((0, 0, 62, 10), w, h) == 1


def test_block_index_boundaries_floor_and_clamp():
    assert block_index((29, 0, 31, 2), 90, 90) == 1  # centre x = 30 -> floor(30 * 3 / 90) = 1
    assert block_index((28, 0, 30, 2), 90, 90) == 0  # centre x = 29
    assert block_index((80, 80, 100, 100), 90, 90) == 8  # centre on the right/bottom edge clamps to 2
    assert block_index((-20, -20, 0, 0), 90, 90) == 0  # centre outside clamps to 0
    assert block_index((0, 0, 10, 10), 100, 100, grid=4) == 0
    assert block_index((60, 90, 70, 100), 100, 100, grid=4) == 14  # row 3, col 2
    with pytest.raises(ValueError):
        block_index((0, 0, 1, 1), 0, 10)


def test_pre_caption_rules():
    assert pre_caption('A "Big"  (red) chair!  on: the; floor~*#.') == "a big red chair on the floor"
    assert pre_caption("  one, two,   three  ") == "one, two, three"  # commas stay
    assert pre_caption(" ".join(str(i) for i in range(40)), 30).split() == [str(i) for i in range(30)]
    assert pre_caption("...") == ""


def test_template_and_tsv_variant_example():
    assert PROMPT_TEMPLATE.format(block=4, name="chair") == "The block 4 has a chair ."
    text = ptp_text(
        "A white table with two chairs", [[40, 40, 50, 50]], ["chair"], 90, 90, rng=random.Random(0)
    )
    assert text == "a white table with two chairs the block 4 has a chair"


def test_no_objects_gives_caption_only():
    assert ptp_text("A cat.", [], [], 10, 10, rng=random.Random(0)) == "a cat"
    assert ptp_text("A cat", [], [], 10, 10, rng=random.Random(0), variant="refined") == "a cat"


def test_object_drawn_uniformly_from_the_first_ten():
    boxes = [[i, 0, i + 1, 1] for i in range(12)]
    names = [f"obj{i}" for i in range(12)]
    rng = random.Random(1)
    counts = Counter(make_prompt("c", boxes, names, 100, 100, rng=rng).name for _ in range(5000))
    assert set(counts) == {f"obj{i}" for i in range(10)}  # never 10 or 11
    assert min(counts.values()) > 400 and max(counts.values()) < 600


def test_tsv_truncation_is_counted_and_refined_keeps_the_prompt():
    long = " ".join(["word"] * 28)
    tsv = make_prompt(long, [[0, 0, 2, 2]], ["dog"], 90, 90, rng=random.Random(0))
    assert tsv.truncated and len(tsv.text.split()) == 30 and "dog" not in tsv.text
    refined = make_prompt(long, [[0, 0, 2, 2]], ["dog"], 90, 90, rng=random.Random(0), variant="refined")
    assert not refined.truncated
    assert refined.text == " ".join(["word"] * 22) + ". the block 0 has a dog"
    short = make_prompt("a dog", [[0, 0, 2, 2]], ["dog"], 90, 90, rng=random.Random(0))
    assert not short.truncated


def test_refined_skips_objects_whose_centre_left_the_crop():
    boxes = [[-30, 10, -10, 20], [60, 60, 80, 80]]  # first centre at x=-20: outside the image
    for seed in range(20):
        p = make_prompt("x", boxes, ["gone", "kept"], 90, 90, rng=random.Random(seed), variant="refined")
        assert p.name == "kept" and p.block == 8
    outside = make_prompt("x", boxes[:1], ["gone"], 90, 90, rng=random.Random(0), variant="refined")
    assert outside.block is None and outside.text == "x"


def test_shuffle_blocks_keeps_object_and_draws_block_uniformly():
    rng = random.Random(3)
    got = [
        make_prompt("c", [[0, 0, 2, 2]], ["cat"], 90, 90, rng=rng, shuffle_blocks=True) for _ in range(4500)
    ]
    assert {p.name for p in got} == {"cat"}
    counts = Counter(p.block for p in got)
    assert set(counts) == set(range(9)) and min(counts.values()) > 400


def test_prompt_rng_depends_on_seed_epoch_index_only():
    a = [prompt_rng(0, 1, 5).random() for _ in range(2)]
    assert a[0] == a[1]
    assert prompt_rng(0, 1, 5).random() != prompt_rng(0, 2, 5).random()
    assert prompt_rng(0, 1, 5).random() != prompt_rng(0, 1, 6).random()
    assert prompt_rng(0, 1, 5).random() != prompt_rng(1, 1, 5).random()


def test_join_captions():
    rng = random.Random(0)
    assert join_captions("plain", rng) == "plain"
    assert join_captions(["only"], rng) == "only"
    seen = {join_captions(["a", "b", "web"], rng) for _ in range(50)}
    assert seen == {"web a", "web b"}


def test_bad_variant_and_lengths():
    with pytest.raises(ValueError, match="variant"):
        ptp_text("c", [], [], 9, 9, rng=random.Random(0), variant="other")
    with pytest.raises(ValueError, match="names"):
        ptp_text("c", [[0, 0, 1, 1]], [], 9, 9, rng=random.Random(0))


def test_synthetic_tokenizer_covers_prompts_and_probe_texts(tmp_path):
    """Issue 21's first lead: "block" and the digits never occur in captions, so they must be in the small vocab
    that make-synthetic writes; the nine fill-in texts tokenise to nine rows that differ only in the digit."""
    from ptp_vlp.data.synthetic import CLASSES, SyntheticSpec, caption_of, position_phrase, write_synthetic
    from ptp_vlp.evaluate import grounding_texts
    from ptp_vlp.tokenizer import load_tokenizer, tokenize

    root = write_synthetic(tmp_path / "d", SyntheticSpec(n_train=2, n_test=9))
    tok = load_tokenizer(root / "tokenizer")
    texts = grounding_texts(caption_of(list(CLASSES[:3])), CLASSES[0])
    texts += [caption_of([CLASSES[0]], {0: position_phrase(k)}) for k in range(9)]
    ids, _ = tokenize(tok, texts, 30)
    assert not (ids == tok.unk_token_id).any()
    fill = ids[:9]
    differs = (fill != fill[:1]).any(0)
    assert int(differs.sum()) == 1  # only the digit position
    assert len(set(fill[:, differs].flatten().tolist())) == 9
