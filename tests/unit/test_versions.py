"""One version everywhere a user looks: `overseer --version`, the chart's appVersion (the images'
default tag), the Makefile's image tags and the operator's start-up log line all come from
pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from overseer.version import version

REPO_ROOT = Path(__file__).resolve().parents[2]


def project_version() -> str:
    value: str = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    return value


def test_the_installed_distribution_is_this_version() -> None:
    # The venv's editable install was made from this pyproject (the Makefile's stamp is keyed by it).
    assert version() == project_version()


def test_overseer_version_prints_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "overseer.cli", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"overseer {project_version()}\n")


def test_the_charts_app_version_is_it_and_the_images_default_to_it() -> None:
    chart = yaml.safe_load((REPO_ROOT / "charts/schema-overseer/Chart.yaml").read_text())
    assert chart["appVersion"] == project_version()
    helpers = (REPO_ROOT / "charts/schema-overseer/templates/_helpers.tpl").read_text()
    assert "default .root.Chart.AppVersion $image.tag" in helpers


def test_the_operator_settings_default_to_the_serving_image_of_this_version() -> None:
    from overseer.operator.settings import OperatorSettings

    assert OperatorSettings().serving_image == f"schema-overseer-serving:{project_version()}"
    assert OperatorSettings().version == project_version()
