"""ops.set_backend("compile") without a working compiler: one log line, then the reference path.

(Equality of the compiled ops, 1e-4, is checked by `pv3d bench` as `fastpath_max_abs_diff`: compiling takes
minutes on a busy CPU, too long for this suite.)
"""

import logging

import torch
from pv3d import ops


def _run():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    f = ops.setup_filter([1, 3, 3, 1])
    w = torch.randn(4, 4, 3, 3, generator=g)
    s = torch.randn(2, 4, generator=g)
    return ops.upsample2d(x, f), ops.modulated_conv2d(x, w, s, padding=1)


def test_unavailable_compiler_logs_one_line_and_falls_back(monkeypatch, caplog):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nlong details")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(ops, "_COMPILED", {})
    ref = _run()
    try:
        with caplog.at_level(logging.WARNING, logger="pv3d.ops"):
            ops.set_backend("compile")
            out = _run()
            again = _run()
    finally:
        ops.set_backend("reference")
        ops._COMPILED.clear()
    assert all(torch.equal(a, b) for a, b in zip(ref, out)) and all(
        torch.equal(a, b) for a, b in zip(ref, again)
    )
    lines = [r.message for r in caplog.records]
    assert len(lines) == 1 and "no C++ compiler found" in lines[0] and "\n" not in lines[0]
