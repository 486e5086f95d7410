"""Repository-level checks: layout, wheels that declare their dependencies, no package importing another."""

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
MEMBERS = [ROOT / "shared" / "visioncore", *PACKAGES]
# `uv run` exports UV (its own executable); otherwise look on PATH.
UV = os.environ.get("UV") or shutil.which("uv")


def _project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]


def _import_name(member: Path) -> str:
    return _project(member)["name"].replace("-", "_")


def _uv(*args: str, **kwargs) -> subprocess.CompletedProcess:
    cmd = [UV, *args] if UV else [sys.executable, "-m", "uv", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)


def test_top_level_layout():
    expected = {"packages", "shared", "pyproject.toml", "uv.lock", "tests", "Makefile", "README.md", ".ci"}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    top = {path.split("/")[0] for path in tracked}
    assert expected <= top, expected - top
    assert top - expected <= {".gitignore"}, top - expected
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in root  # a virtual workspace root
    assert root["tool"]["uv"]["workspace"]["members"] == ["shared/visioncore", "packages/*"]


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_member_layout(member):
    name = _import_name(member)
    assert (member / "src" / name / "__init__.py").is_file()
    assert (member / "tests").is_dir() and any((member / "tests").glob("test_*.py"))
    assert (member / "README.md").is_file()
    if member.parent.name == "packages":
        assert any((member / "src" / name / "configs").glob("*.yaml")), "configs ship inside the package"


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_packages_pin_a_visioncore_range_and_never_each_other(member):
    deps = _project(member)["dependencies"]
    (vc,) = [d for d in deps if d.split(">")[0].split("<")[0].split("=")[0].strip() == "visioncore"]
    assert "<" in vc and ">" in vc, f"{member.name}: visioncore needs a version range, got {vc!r}"
    siblings = {_project(p)["name"] for p in PACKAGES} - {_project(member)["name"]}
    assert not [d for d in deps if any(d.startswith(s) for s in siblings)]


def _imported_modules(src: Path) -> set[str]:
    found = set()
    for file in src.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_no_package_imports_another(member):
    names = {_import_name(p) for p in PACKAGES}
    own = _import_name(member)
    imported = _imported_modules(member / "src") | _imported_modules(member / "tests")
    assert not (imported & (names - {own})), f"{member.name} imports {imported & (names - {own})}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = {}
    for member in MEMBERS:
        name = _project(member)["name"]
        result = _uv("build", "--package", name, "--wheel", "--out-dir", str(out / name), "--quiet")
        assert result.returncode == 0, result.stderr
        (wheel,) = (out / name).glob("*.whl")
        built[name] = wheel
    return built


def _metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return zf.read(meta).decode()


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_wheel_pins_visioncore_range_and_ships_configs(wheels, member):
    project = _project(member)
    wheel = wheels[project["name"]]
    requires = [
        line for line in _metadata(wheel).splitlines() if line.startswith("Requires-Dist: visioncore")
    ]
    assert len(requires) == 1 and "<" in requires[0] and ">=" in requires[0], requires
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.endswith(".yaml") and "/configs/" in n for n in zf.namelist())


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_wheel_installs_alone_and_cli_answers_help(wheels, member, tmp_path):
    """Installs the package's wheel and visioncore's into a fresh venv: catches undeclared dependencies."""
    name = _project(member)["name"]
    venv = tmp_path / "venv"
    assert _uv("venv", "--quiet", "--python", sys.executable, str(venv)).returncode == 0
    python = venv / "bin" / "python"
    # the same torch as the workspace (cached by `uv sync`), so no multi-GB download
    pins = tmp_path / "constraints.txt"
    pins.write_text("torch==2.14.1\ntorchvision==0.29.1\n")
    result = _uv(
        "pip", "install", "--quiet", "--python", str(python), "-c", str(pins),
        str(wheels["visioncore"]), str(wheels[name]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    cli = subprocess.run([venv / "bin" / name, "--help"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "demo" in cli.stdout and "repro" in cli.stdout and "bench" in cli.stdout


# torch included: `<cli> --help` must take at most 1.5x `import torch` (measured by `make bench`); the cause is asserted.
HEAVY_AT_IMPORT = {"diffusers", "transformers", "timm", "sklearn", "matplotlib", "av", "torch"}


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_package_and_cli_import_stays_light(member):
    """`<cli> --help` must start fast: the package and its CLI module leave the heavy libraries unimported."""
    name = _import_name(member)
    heavy = sorted(HEAVY_AT_IMPORT)
    code = f"import sys, {name}, {name}.cli; print(','.join(sorted(set({heavy!r}) & set(sys.modules))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{name} imports {result.stdout.strip()} at start-up"


@pytest.mark.parametrize("member", PACKAGES, ids=lambda p: p.name)
def test_package_has_the_common_module_shape(member):
    src = member / "src" / _import_name(member)
    for module in ("cli.py", "demo.py", "repro.py", "bench.py", "data/synthetic.py"):
        assert (src / module).is_file(), f"{member.name}: missing {module}"
