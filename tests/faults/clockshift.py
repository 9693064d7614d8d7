"""Build the ``LD_PRELOAD`` clock shim (``clockshift.c``) and the environment that uses it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.services import missing

SOURCE = Path(__file__).with_name("clockshift.c")


def clock_shift_env(folder: Path, seconds: int) -> dict[str, str]:
    """Environment variables that run a process ``seconds`` ahead (negative: behind); the shim
    is compiled into ``folder`` with cc (skipped locally, a failure under CI, without one)."""
    library = folder / "clockshift.so"
    if not library.exists():
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            missing("a C compiler (cc)")
        subprocess.run([str(compiler), "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCE),
                        "-ldl"], check=True)  # fmt: skip
    return {"LD_PRELOAD": str(library), "CLOCKSHIFT_SECONDS": str(seconds)}
