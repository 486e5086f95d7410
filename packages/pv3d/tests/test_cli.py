"""CLI: one-line errors with exit code 2 and nothing left behind; metrics maths; the synthetic + generate path."""

import json

import torch
from pv3d.cameras import pose_vector
from pv3d.cli import main
from pv3d.data.synthetic import head_cameras, make_toy_heads, random_head, render_head
from pv3d.evaluate import ClipFeatureNet, fvd, temporal_consistency, warp_error


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_inputs_are_one_line_errors(capsys, tmp_path):
    assert "nothere.ckpt" in _error(
        capsys, ["convert", str(tmp_path / "nothere.ckpt"), "--out", str(tmp_path / "o")]
    )
    assert not (tmp_path / "o").exists()
    err = _error(
        capsys, ["train", "--config", "tiny", "--set", "train.bogus=1", "--out", str(tmp_path / "t")]
    )
    assert "bogus" in err and not (tmp_path / "t").exists()
    err = _error(
        capsys,
        [
            "train",
            "--config",
            "tiny",
            "--set",
            f"data.root={tmp_path / 'nodata'}",
            "--out",
            str(tmp_path / "t"),
        ],
    )
    assert "nodata" in err and not (tmp_path / "t").exists()
    err = _error(capsys, ["generate", "--weights", str(tmp_path / "nomodel"), "--out", str(tmp_path / "g")])
    assert "nomodel" in err and not (tmp_path / "g").exists()


def test_hostile_pickle_via_cli(capsys, tmp_path):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    err = _error(
        capsys, ["convert", str(tmp_path / "evil.pkl"), "--config", "tiny", "--out", str(tmp_path / "o")]
    )
    assert "refusing" in err and "system" in err and not (tmp_path / "o").exists()


def test_make_synthetic_train_generate(tmp_path, capsys):
    data, run, vids = tmp_path / "data", tmp_path / "run", tmp_path / "vids"
    assert main(["make-synthetic", "--out", str(data), "--clips", "3"]) == 0
    argv = [
        "train",
        "--config",
        "tiny",
        "--set",
        f"data.root={data}",
        "--set",
        "train.steps=1",
        "--out",
        str(run),
    ]
    assert main([*argv, "--device", "cpu"]) == 0
    assert (
        main(
            [
                "generate",
                "--weights",
                str(run),
                "--out",
                str(vids),
                "--num",
                "1",
                "--frames",
                "4",
                "--depth",
                "--format",
                "gif",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (vids / "video_0000.gif").is_file()
    traj = next((data / "smoothed_camera2world").iterdir())
    assert (
        main(
            [
                "generate",
                "--weights",
                str(run),
                "--out",
                str(vids),
                "--num",
                "1",
                "--frames",
                "4",
                "--trajectory",
                str(traj),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (vids / "video_0000.mp4").is_file()
    ev = tmp_path / "eval"
    from pv3d.models.arcface import ArcFaceIRSE50

    torch.save(ArcFaceIRSE50().state_dict(), tmp_path / "model_ir_se50.pth")
    assert (
        main(
            [
                "evaluate",
                "--id-weights",
                str(tmp_path / "model_ir_se50.pth"),
                "--config",
                "tiny",
                "--weights",
                str(run),
                "--data",
                str(data),
                "--clips",
                "3",
                "--samples",
                "2",
                "--out",
                str(ev),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["clips"] == 3 and metrics["fvd"] > 0 and 0 < metrics["tc_pv3d"] < metrics["tc_per_frame"]
    assert metrics["fvd_network"] == "seeded_standin" and 0 < metrics["id"] <= 1
    capsys.readouterr()


def test_fvd_is_zero_on_itself_and_grows_with_a_shift():
    net = ClipFeatureNet(width=8)
    clips = torch.rand(40, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert abs(fvd(net, clips, clips)) < 1e-4 * fvd(net, clips, clips + 0.1)
    assert fvd(net, clips, clips + 0.5) > fvd(net, clips, clips + 0.1) > 0


def test_temporal_consistency_of_a_ramp_vs_noise():
    t = torch.linspace(0, 1, 16).reshape(1, 16, 1)
    smooth = t.expand(4, 16, 10)
    noise = torch.rand(4, 16, 10, generator=torch.Generator().manual_seed(0))
    assert temporal_consistency(smooth) < 0.25 < 0.9 < temporal_consistency(noise)


def test_warp_error_on_real_heads_uses_the_camera_convention():
    """Analytic heads: warping with the true depth brings the other view close; another head does not."""
    heads = [random_head(__import__("numpy").random.default_rng(i)) for i in range(2)]
    ca, cb = pose_vector(-0.25), pose_vector(0.25)
    t = torch.tensor([0.5])
    a, da, ma = render_head(heads[0], t, ca, 32)
    b, _, _ = render_head(heads[0], t, cb, 32)
    other, _, _ = render_head(heads[1], t, cb, 32)
    da = torch.where(ma, da, torch.full_like(da, 3.3))
    same = warp_error(a, da, ma.float(), ca, b, cb)
    assert same < 0.05 and same < 0.3 * warp_error(a, da, ma.float(), ca, other, cb)
    # a wrong convention (the mirrored destination camera) breaks it
    from pv3d.cameras import mirror_camera

    assert warp_error(a, da, ma.float(), ca, b, mirror_camera(cb)) > 2 * same
    assert head_cameras(heads[0], 16)[1].shape == (16, 25)


def test_repro_keys_are_the_issues(tmp_path):
    from pv3d.repro import KEYS

    assert len(KEYS) == 21 and len(set(KEYS)) == 21
    make_toy_heads(tmp_path, num_clips=1, num_frames=4, resolution=8)
    assert json.loads((tmp_path / "heads.json").read_text())
