"""The ``imagenet`` console entry point: it takes the stop signals before anything else loads.

Loading the program (Typer, and the modules every command registers) takes a tenth of a second,
and a scheduler's SIGTERM or a Ctrl-C can come during it, or while Typer reads the options.
Python's defaults would end the process with a traceback (SIGINT) or silently, killed by the
signal (SIGTERM, SIGHUP); Typer turns a KeyboardInterrupt in its own code into a silent exit 130.
Outside a command's body nothing is being written, so a stop there ends the program at once,
with its one line and the exit code every stop has (128 + the signal). A command's body raises
instead, to stop its workers and keep finished work (cli/common.py). Only the standard library is
imported here.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_while_loading(number: int, _frame: FrameType | None) -> None:
    what = "interrupted" if number == signal.SIGINT else f"stopped by {signal.Signals(number).name}"
    os.write(2, f"imagenet: {what} — try the same command again\n".encode())
    os._exit(128 + number)


def main() -> None:
    for number in STOPS:
        if signal.getsignal(number) is not signal.SIG_IGN:  # nohup, or a shell's background job: left so
            signal.signal(number, _stop_while_loading)
    from .app import main as run

    try:
        run()
    finally:
        # The outcome is decided and printed. Python's shutdown would put the default handlers
        # back, and a stop arriving then would end the process killed by the signal, with no
        # line: the code already chosen stands instead.
        for number in STOPS:
            signal.signal(number, signal.SIG_IGN)
