"""Run the shell scripts under scripts/ against a local moto endpoint with the AWS CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from local_stack.aws import DEFAULT_REGION

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
MISSING_TOOLS = [tool for tool in ("aws", "jq") if shutil.which(tool) is None]
MISSING_TOOLS_REASON = f"needs {' and '.join(MISSING_TOOLS)} on PATH to run the deployment scripts"


def script_environment(endpoint_url: str, **overrides: str | None) -> dict[str, str]:
    """Build the environment of a script run: local credentials, the moto endpoint, overrides.

    An override of None removes the variable.
    """
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": DEFAULT_REGION,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    }
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def run_script(
    name: str, *arguments: str, environment: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
