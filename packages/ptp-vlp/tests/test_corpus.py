"""The corpus TSV as released, and `tag` building it from captions and detections."""

import json

import pytest
from ptp_vlp.data.corpus import CorpusError, CorpusRow, format_row, read_corpus, tag_corpus

ROW = "CC3M/images/train/1597/3250687125.jpg\ti shall be bringing this white chair\t[[340, 226, 417, 323], [1, 2, 3, 4]]\t['pillow', 'chair']"


def test_reads_the_released_layout_and_round_trips(tmp_path):
    path = tmp_path / "c.tsv"
    lst = "coco/x.jpg\t['a synthetic caption', 'the web caption']\t[]\t[]"
    path.write_text(ROW + "\n" + lst + "\n")
    rows = read_corpus(path)
    assert rows[0].image.endswith("3250687125.jpg") and rows[0].names == ("pillow", "chair")
    assert rows[0].boxes[0] == (340.0, 226.0, 417.0, 323.0)
    assert rows[1].caption == ("a synthetic caption", "the web caption") and rows[1].boxes == ()
    assert format_row(rows[0]) == ROW
    assert format_row(rows[1]) == lst


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.jpg\tcap\t[]", "4 tab-separated columns, got 3"),
        ("a.jpg\tcap\t[[1, 2, 3]]\t['x']", "box 0 is not 4 numbers"),
        ("a.jpg\tcap\t[[5, 2, 3, 4]]\t['x']", "x2 < x1"),
        ("a.jpg\tcap\t[[1, 2, 3, 4]]\t['x', 'y']", "1 boxes but 2 class names"),
        ("a.jpg\tcap\t[[1, 2, 3, 4]]\t__import__('os')", "not a Python list literal"),
        ("a.jpg\tcap\tnot json\t[]", "not JSON"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(ROW + "\n" + line + "\n")
    with pytest.raises(CorpusError, match=message) as info:
        read_corpus(path)
    assert f"{path}:2" in str(info.value)


def test_missing_corpus(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_corpus(tmp_path / "nope.tsv")


def test_tag_from_vinvl_tsv_and_json(tmp_path):
    caps = tmp_path / "caps.json"
    caps.write_text(
        json.dumps(
            [{"image": "d/img1.jpg", "caption": "a dog"}, {"image": "d/img2.jpg", "caption": ["x", "y"]}]
        )
    )
    objs = [{"rect": [i, i, i + 5, i + 5], "class": f"c{i}", "conf": 0.1 * (i % 10)} for i in range(14)]
    record = {"objects": objs, "image_h": 50, "image_w": 60}
    tsv = tmp_path / "predictions.tsv"
    tsv.write_text("img1\t" + json.dumps(record) + "\n")
    rows, missing = tag_corpus(caps, tsv)
    assert missing == 1 and len(rows) == 3  # one row per caption of a list
    assert rows[0].names == tuple(f"c{i}" for i in range(10))  # first 10 in file order
    assert rows[1].names == () and rows[1].caption == "x"
    rows, _ = tag_corpus(caps, tsv, min_conf=0.5)
    assert rows[0].names == ("c5", "c6", "c7", "c8", "c9")  # conf 0.1 * (i % 10) >= 0.5
    js = tmp_path / "dets.json"
    js.write_text(json.dumps({"d/img1.jpg": record, "d/img2.jpg": {"objects": []}}))
    rows, missing = tag_corpus(caps, js)
    assert missing == 0 and rows[0].names[0] == "c0"
    assert isinstance(rows[0], CorpusRow)
