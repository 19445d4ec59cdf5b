"""The version and git revision this process runs, for /version and /health."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("agenttrace")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def git_revision() -> str:
    """The checkout's revision (images pass theirs in AGENTTRACE_GIT_REVISION instead)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


VERSION = _version()
