"""Structured configs: YAML by name or path, dotted overrides, one-line errors naming the key."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from visioncore.config import ConfigError, config_names, load_config, save_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Experiment:
    name: str = "default"
    steps: int = 100
    parts: list[str] = field(default_factory=lambda: ["eyes", "nose", "mouth"])
    optim: Optim = field(default_factory=Optim)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_yaml_then_overrides(tmp_path):
    cfg_file = _write(tmp_path / "exp.yaml", "steps: 5\noptim:\n  lr: 0.01\n")
    cfg = load_config(Experiment, cfg_file, ["optim.lr=2e-4", "parts=[mouth]", "name=run1"])
    assert isinstance(cfg, Experiment) and isinstance(cfg.optim, Optim)
    assert (cfg.steps, cfg.optim.lr, cfg.parts, cfg.name) == (5, 2e-4, ["mouth"], "run1")
    assert cfg.optim.betas == (0.9, 0.999)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.momentum=0.9", "optim.momentum"),
        ("steps=many", "steps"),
        ("steps", "key.sub=value"),
    ],
)
def test_bad_override_is_one_line_error_naming_key(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(Experiment, None, [override])
    assert "\n" not in str(err.value)


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    cfg_file = _write(tmp_path / "bad.yaml", "optim:\n  learning_rate: 1.0\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optim\.learning_rate") as err:
        load_config(Experiment, cfg_file)
    assert "\n" not in str(err.value)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Experiment, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown config 'nope'"):
        load_config(Experiment, "nope", package="visioncore")


def test_named_config_resolves_inside_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    (pkg / "configs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    _write(pkg / "configs" / "tiny.yaml", "steps: 2\n")
    _write(pkg / "configs" / "paper.yaml", "steps: 250000\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert config_names("fakepkg") == ["paper", "tiny"]
    assert load_config(Experiment, "tiny", package="fakepkg").steps == 2
    assert load_config(Experiment, "paper", ["steps=7"], package="fakepkg").steps == 7


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(Experiment, None, ["steps=3", "optim.lr=0.5"])
    path = save_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(Experiment, path) == cfg
    assert to_dict(cfg)["optim"]["lr"] == 0.5
