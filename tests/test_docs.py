"""Generated artefacts stay in step with the code; the README and CI agree on how to install."""

from __future__ import annotations

import re

import pytest

from . import docs


def test_readme_command_reference_is_current() -> None:
    readme = docs.README.read_text()
    assert readme == docs.readme_with_reference(readme), "run `python tests/docs.py` and commit the README"


@pytest.mark.parametrize("shell", sorted(docs.SHELLS))
def test_completion_scripts_are_current(shell: str) -> None:
    committed = (docs.COMPLETIONS / docs.SHELLS[shell]).read_text()
    assert committed == docs.completion_script(shell), "run `python tests/docs.py` and commit completions/"
    assert "_IMAGENET_COMPLETE" in committed


def quickstart_commands() -> list[str]:
    section = docs.README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def test_quickstart_is_two_commands_install_then_test() -> None:
    install, tests = quickstart_commands()
    assert "pip install ." in install and "imagenet download --source sample" in install
    assert "pip install '.[test]'" in tests and "pytest" in tests
    assert "\n" not in install and "\n" not in tests, "each must be one copy-paste line"


def test_ci_runs_the_readme_quickstart() -> None:
    ci = (docs.REPO / ".ci" / "run").read_text()
    assert "quickstart 1" in ci and "quickstart 2" in ci


def test_every_command_is_in_the_changelog() -> None:
    changelog = (docs.REPO / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    for name in docs.command_names():
        assert f"imagenet {name}" in changelog
