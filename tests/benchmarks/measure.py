"""Running the real CLI in a fresh process and reading its time and peak memory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from a large parent (the benchmark).
_MEASURED_MAIN = (
    "import re, sys; from imagenet_cli.cli.app import main\n"
    "try:\n    main()\nfinally:\n"
    "    print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr)"
)


def run_cli(*args: str, exit_codes: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``imagenet ARGS`` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED_MAIN, *args], capture_output=True, text=True, cwd=REPO)
    if done.returncode not in exit_codes:
        raise RuntimeError(f"imagenet {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return time.perf_counter() - start, int(done.stderr.split()[-1])
