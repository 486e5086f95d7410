"""The visioncore demo (video round trip + segmentation score) and the demo summary table."""

import json

import pytest

from visioncore.cli import main


def test_demo_writes_metrics_and_artifacts(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "visioncore")]) == 0
    result = json.loads((tmp_path / "visioncore" / "metrics.json").read_text())
    assert result["frames"] == 24
    assert result["ffv1_max_abs_diff"] == 0  # lossless
    assert result["x264_psnr_db"] > 25  # lossy but close
    assert result["sparse_read_matches_full"] == 1
    assert result["fg_ari_colour_kmeans"] > 0.9  # four flat colours: colour clustering finds the objects
    for name in ("clip.gif", "segmentation.png", "clip.mkv", "clip.mp4"):
        assert (tmp_path / "visioncore" / name).stat().st_size > 0

    capsys.readouterr()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.json").write_text(json.dumps({"auc": 0.5, "nested": {"x": 1}}))
    headline = tmp_path / "packages" / "other" / "assets" / "repro_headline.json"
    headline.parent.mkdir(parents=True)
    headline.write_text(
        json.dumps({"headline": "part masking 0.830 vs random 0.732", "command": "other repro"})
    )
    assert main(["summarize", str(tmp_path), "--packages", str(tmp_path / "packages")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["package", "demo", "s", "demo", "metrics"]
    other = next(i for i, line in enumerate(table) if line.startswith("other"))
    assert "auc=0.5" in table[other] and "nested" not in table[other]
    assert table[other + 1].strip() == "repro: part masking 0.830 vs random 0.732  [other repro]"
    vc = next(i for i, line in enumerate(table) if line.startswith("visioncore"))
    assert "ffv1_max_abs_diff=0" in table[vc] and "no acceptance experiment" in table[vc + 1]


def test_summarize_without_results_is_one_line_error(tmp_path, capsys):
    assert main(["summarize", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no */metrics.json") and err.count("\n") == 1


def test_run_command_turns_expected_errors_into_one_line_and_exit_2(capsys):
    from visioncore.config import ConfigError
    from visioncore.console import run_command

    def fails(message: str, error: type[Exception] = ConfigError):
        def command(args):
            raise error(message)

        return command

    assert run_command(lambda args: None, None) == 0
    assert run_command(fails("unknown config key 'foo'\n  allowed: a, b"), None) == 2
    assert capsys.readouterr().err == "error: unknown config key 'foo'\n"
    assert run_command(fails(""), None) == 2
    assert capsys.readouterr().err == "error: ConfigError\n"
    with pytest.raises(RuntimeError):  # unexpected errors keep their traceback
        run_command(fails("bug", RuntimeError), None)
