"""The generated parts of the repository: the README's command reference and completions/.

After changing a command, regenerate them with ``python tests/docs.py``;
``tests/test_docs.py`` fails whenever the committed copies drift from what the code generates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
COMPLETIONS = REPO / "completions"
SHELLS = {"bash": "imagenet.bash", "zsh": "_imagenet", "fish": "imagenet.fish"}
BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"


def _run(args: list[str], **env: str) -> str:
    """The real program's stdout, at a fixed width so the text does not depend on the terminal."""
    environment = {**os.environ, "COLUMNS": "100", "TERM": "dumb", **env}
    completed = subprocess.run(
        [sys.executable, "-m", "imagenet_cli", *args], env=environment, capture_output=True, text=True, check=True
    )
    return completed.stdout


def command_names() -> list[str]:
    """The commands ``imagenet --help`` lists, in its order."""
    listing = _run(["--help"]).split("Commands:\n", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  (\w[\w-]*)  ", listing, re.MULTILINE)]


def cli_reference() -> str:
    sections = ["```\n$ imagenet --help\n" + _run(["--help"]) + "```\n"]
    for name in command_names():
        sections.append(f"### imagenet {name}\n\n```\n$ imagenet {name} --help\n" + _run([name, "--help"]) + "```\n")
    return "\n".join(sections)


def readme_with_reference(readme: str) -> str:
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{cli_reference()}{END}{after}"


def completion_script(shell: str) -> str:
    return _run([], _IMAGENET_COMPLETE=f"source_{shell}")


def main() -> None:
    README.write_text(readme_with_reference(README.read_text()))
    COMPLETIONS.mkdir(exist_ok=True)
    for shell, file in SHELLS.items():
        (COMPLETIONS / file).write_text(completion_script(shell))
    print(f"wrote {README.name} and {len(SHELLS)} completion scripts")


if __name__ == "__main__":
    main()
