"""Variables, outputs, per-environment tfvars and the S3 backend configuration.

The rule for the tfvars: each environment's file sets every root variable that has no
default, and nothing that is not a declared variable. Variables with a default may be
overridden but need not be.
"""

from __future__ import annotations

import pytest

from tests.infrastructure.terraform_config import (
    ENVIRONMENTS,
    INFRASTRUCTURE,
    TerraformDirectory,
    all_terraform_directories,
    attribute,
    load_hcl,
)


@pytest.mark.parametrize("directory", all_terraform_directories(), ids=lambda path: path.name)
def test_variables_have_description_and_type(directory):
    variables = TerraformDirectory.load(directory).variables()

    incomplete = sorted(
        name
        for name, body in variables.items()
        if not body.get("description", [""])[0] or "type" not in body
    )

    assert incomplete == []


@pytest.mark.parametrize("directory", all_terraform_directories(), ids=lambda path: path.name)
def test_outputs_have_description(directory):
    outputs = TerraformDirectory.load(directory).outputs()

    undocumented = sorted(
        name for name, body in outputs.items() if not body.get("description", [""])[0]
    )

    assert undocumented == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_define_every_required_variable(root, tfvars, environment):
    required = {name for name, body in root.variables().items() if "default" not in body}

    missing = sorted(required - set(tfvars[environment]))

    assert missing == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_set_only_declared_variables(root, tfvars, environment):
    undeclared = sorted(set(tfvars[environment]) - set(root.variables()))

    assert undeclared == []


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_environment_matches_file_name(tfvars, environment):
    assert tfvars[environment]["environment"] == environment


def test_root_backend_is_partial_s3(root):
    (terraform_block,) = root.top_level["terraform"]

    assert terraform_block["backend"] == [{"s3": {}}]


def test_backend_configs_use_one_state_key_per_environment():
    # given: the -backend-config file of each environment
    configs = {
        environment: {
            name: value[0]
            for name, value in load_hcl(
                INFRASTRUCTURE / "backend" / f"{environment}.s3.tfbackend"
            ).items()
        }
        for environment in ENVIRONMENTS
    }

    # when
    keys = {environment: config["key"] for environment, config in configs.items()}
    settings = {
        environment: {"encrypt": config["encrypt"], "use_lockfile": config["use_lockfile"]}
        for environment, config in configs.items()
    }

    # then: separate state files, encrypted and locked
    assert keys == {
        "stg": "stream-model-duration/stg/terraform.tfstate",
        "prod": "stream-model-duration/prod/terraform.tfstate",
    }
    assert settings == {
        "stg": {"encrypt": True, "use_lockfile": True},
        "prod": {"encrypt": True, "use_lockfile": True},
    }


def test_root_environment_variable_accepts_only_stg_and_prod(root):
    (validation,) = root.variables()["environment"]["validation"]

    assert attribute(validation, "condition") == '${contains(["stg", "prod"], var.environment)}'
