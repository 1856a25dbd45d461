"""The environment the tests run in is the locked one (requirements/lock.txt, requirements/data.txt)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCKS = [REPO / "requirements" / "lock.txt", REPO / "requirements" / "data.txt"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for lock in LOCKS:
        for line in lock.read_text().splitlines():
            if match := PIN.match(line):
                pins[_canonical(match[1])] = match[2]
    return pins


def test_every_lock_line_is_pinned_with_a_hash():
    for lock in LOCKS:
        requirements = [line for line in lock.read_text().splitlines() if line and not line.startswith((" ", "#"))]
        assert requirements, f"{lock} pins nothing"
        for line in requirements:
            assert PIN.match(line) and line.endswith("\\"), f"{lock.name}: not an exact pin with hashes: {line!r}"


def test_the_lock_pins_the_cpu_torch_and_the_project_dependencies():
    pins = locked()
    assert pins["torch"] == "2.13.0+cpu"
    declared = metadata.requires("patchdrop") or []
    for requirement in declared:
        name = _canonical(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
        assert name in pins, f"{name} is a dependency of patchdrop but not in the lock"


@pytest.mark.parametrize("name", sorted(locked()))
def test_the_installed_version_is_the_locked_one(name):
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is locked but not installed: run bash scripts/setup.sh")
    assert installed == locked()[name], (
        f"{name}: installed {installed}, locked {locked()[name]} (bash scripts/setup.sh)"
    )
