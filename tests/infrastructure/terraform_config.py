"""Read the Terraform configuration under infrastructure/ with ``hcl2``, for the tests.

``hcl2`` here is the package checkov depends on (bc-python-hcl2 0.4). It wraps every
attribute value in a one-element list and every block in a list of dicts. python-hcl2 7
and later install a module of the same name with another output format. If that one wins,
the guard below fails the tests with this explanation instead of with confusing key errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = REPO_ROOT / "infrastructure"
MODULES = INFRASTRUCTURE / "modules"
ENVIRONMENTS = ("stg", "prod")


def _check_hcl2_format() -> None:
    if hcl2.loads('a = "x"\n') != {"a": ["x"]}:
        raise RuntimeError(
            f"hcl2 {getattr(hcl2, '__version__', '?')} from {hcl2.__file__} returns another format "
            "than the bc-python-hcl2 0.4 parser these tests read; python-hcl2 and bc-python-hcl2 "
            "both install the module hcl2, so keep only the one checkov depends on"
        )


_check_hcl2_format()


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as source:
        return hcl2.load(source)


def attribute(body: dict[str, Any], name: str) -> Any:
    """Return an attribute's value without the parser's one-element list around it."""
    value = body[name]
    assert isinstance(value, list) and len(value) == 1, f"{name} is a block, not an attribute"
    return value[0]


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Return the nested blocks called name, in file order (empty when there are none)."""
    return body.get(name, [])


def only_block(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = blocks(body, name)
    assert len(found) == 1, f"expected one {name} block, found {len(found)}"
    return found[0]


@dataclass
class TerraformDirectory:
    """The merged top-level blocks of every .tf file in one directory."""

    path: Path
    top_level: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TerraformDirectory:
        directory = cls(path)
        for tf_file in sorted(path.glob("*.tf")):
            for block_type, entries in load_hcl(tf_file).items():
                directory.top_level.setdefault(block_type, []).extend(entries)
        return directory

    def _labelled(self, block_type: str, kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get(block_type, []):
            found.update(entry.get(kind, {}))
        return found

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Return the resources of one type by name."""
        return self._labelled("resource", resource_type)

    def resource(self, resource_type: str, name: str) -> dict[str, Any]:
        return self.resources(resource_type)[name]

    def data(self, data_type: str, name: str) -> dict[str, Any]:
        return self._labelled("data", data_type)[name]

    def resource_types(self) -> set[str]:
        return {
            resource_type for entry in self.top_level.get("resource", []) for resource_type in entry
        }

    def variables(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get("variable", []):
            found.update(entry)
        return found

    def outputs(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get("output", []):
            found.update(entry)
        return found

    def modules(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get("module", []):
            found.update(entry)
        return found

    def locals(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for entry in self.top_level.get("locals", []):
            found.update(entry)
        return found


def all_terraform_directories() -> list[Path]:
    return [INFRASTRUCTURE, *sorted(path for path in MODULES.iterdir() if path.is_dir())]
