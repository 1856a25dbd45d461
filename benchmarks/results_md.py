"""What every benchmark shares: its own delimited section of benchmarks/RESULTS.md, the commit
it measured, and a free local port for the servers it starts."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
DEFAULT_CHECKPOINT = REPO / "models" / "assets" / "default.pt"


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's files: ``benchmarks/results/<name>.json`` and its delimited section of RESULTS.md."""

    name: str

    @property
    def json(self) -> Path:
        return REPO / "benchmarks" / "results" / f"{self.name}.json"

    @property
    def markers(self) -> tuple[str, str]:
        return f"<!-- {self.name}:start -->", f"<!-- {self.name}:end -->"


def git_commit() -> str:
    """HEAD, with ``-dirty`` when tracked code differs from it: results name the code they measured (the
    benchmarks' own outputs, which a run rewrites, do not count)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        outputs = [":!benchmarks/results", ":!benchmarks/RESULTS.md", ":!benchmarks/reports"]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *outputs],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replace_section(path: Path, start: str, end: str, section: str) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the old one."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def write_section(lines: list[str], path: Path = RESULTS_MD) -> None:
    """The section whose first line is its start marker and last line its end marker, written into ``path``."""
    replace_section(path, lines[0], lines[-1], "\n".join(lines))
