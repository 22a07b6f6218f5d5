"""Fixtures with the parsed Terraform configuration: root module, child modules, tfvars."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.terraform_config import (
    ENVIRONMENTS,
    INFRASTRUCTURE,
    MODULES,
    TerraformDirectory,
    load_hcl,
)


@pytest.fixture(scope="session")
def root() -> TerraformDirectory:
    return TerraformDirectory.load(INFRASTRUCTURE)


@pytest.fixture(scope="session")
def module_config() -> dict[str, TerraformDirectory]:
    """Every module under infrastructure/modules, by directory name."""
    return {
        path.name: TerraformDirectory.load(path)
        for path in sorted(MODULES.iterdir())
        if path.is_dir()
    }


@pytest.fixture(scope="session")
def tfvars() -> dict[str, dict[str, Any]]:
    """The variable values of vars/<env>.tfvars, unwrapped, by environment."""
    return {
        environment: {
            name: value[0]
            for name, value in load_hcl(INFRASTRUCTURE / "vars" / f"{environment}.tfvars").items()
        }
        for environment in ENVIRONMENTS
    }
