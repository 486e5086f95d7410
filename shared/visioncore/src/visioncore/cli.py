"""`visioncore demo --out DIR` (the shared core end to end), `visioncore summarize DIR` (the demo table) and
`visioncore startup-time CLI...` (how long each CLI's ``--help`` takes next to ``import torch``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.console import run_command


def summarize(root: Path, packages_dir: Path = Path("packages")) -> str:
    """One table over every ``<root>/<package>/metrics.json`` a demo wrote, with each package's acceptance headline
    (``<packages_dir>/<package>/assets/repro_headline.json``, written from its committed repro results)."""
    rows = []
    for path in sorted(root.glob("*/metrics.json")):
        values = json.loads(path.read_text())
        seconds = values.get("seconds")
        shown = ", ".join(
            f"{k}={_fmt(v)}" for k, v in values.items() if k != "seconds" and not isinstance(v, dict | list)
        )
        rows.append(
            (
                path.parent.name,
                _fmt(seconds) if seconds is not None else "-",
                shown,
                _headline(packages_dir, path.parent.name),
            )
        )
    if not rows:
        raise FileNotFoundError(f"no */metrics.json under {root}")
    width = max(len(name) for name, *_ in rows)
    lines = [
        f"{'package':<{width}}  {'demo s':>6}  demo metrics",
        f"{'':<{width}}  {'':>6}  acceptance (repro)",
    ]
    lines.append("-" * (width + 30))
    for name, seconds, shown, headline in rows:
        lines += [f"{name:<{width}}  {seconds:>6}  {shown}", f"{'':<{width}}  {'':>6}  {headline}"]
    return "\n".join(lines)


def _headline(packages_dir: Path, name: str) -> str:
    path = packages_dir / name / "assets" / "repro_headline.json"
    if not path.is_file():
        return "repro: - (no acceptance experiment)" if name == "visioncore" else "repro: not run"
    info = json.loads(path.read_text())
    return f"repro: {info['headline']}  [{info.get('command', f'{name} repro --out DIR')}]"


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def startup_time(clis: list[str], repeats: int = 3) -> dict[str, dict[str, float]]:
    """Best-of-``repeats`` wall time of ``<cli> --help`` and of ``python -c "import torch"``, measured in one run."""
    import shutil
    import subprocess
    import time

    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        return min(times)

    torch_s = best([sys.executable, "-c", "import torch"])
    result = {}
    for cli in clis:
        exe = shutil.which(cli) or str(Path(sys.executable).parent / cli)
        if not Path(exe).is_file():
            raise FileNotFoundError(f"{cli}: no such command on PATH")
        help_s = best([exe, "--help"])
        result[cli] = {
            "help_s": round(help_s, 3),
            "import_torch_s": round(torch_s, 3),
            "ratio": round(help_s / torch_s, 3),
        }
    return result


def _demo(args: argparse.Namespace) -> None:
    from visioncore.demo import demo

    print(json.dumps(demo(args.out), indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visioncore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="write, read and score a synthetic clip")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_demo)
    p = sub.add_parser("summarize", help="table of every <dir>/<pkg>/metrics.json with acceptance headlines")
    p.add_argument("root", type=Path)
    p.add_argument(
        "--packages", type=Path, default=Path("packages"), help="where <pkg>/assets/repro_headline.json live"
    )
    p.set_defaults(func=lambda a: print(summarize(a.root, a.packages)))
    p = sub.add_parser("startup-time", help="JSON: each CLI's --help time over `import torch` time")
    p.add_argument("clis", nargs="+")
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=lambda a: print(json.dumps(startup_time(a.clis, a.repeats), indent=2)))
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
