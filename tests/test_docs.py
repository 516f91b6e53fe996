"""The README and the commands' own help are in step.

Every command in ``commands.main.COMMANDS`` (and every sub-command of a group) has a
``--help`` with a description; its one-line help in COMMANDS is its docstring's first
paragraph; every top-level command is shown in README.md as ``ledger <name>``; and every
``ledger ...`` line in the README's shell blocks parses with the real command definitions.
"""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from commands.main import COMMANDS, Context, cli

README = Path(__file__).resolve().parents[1] / "README.md"


def words(text: str) -> str:
    return " ".join(text.split())


def command(name: str) -> click.Command:
    with click.Context(cli, info_name="ledger") as ctx:
        found = cli.get_command(ctx, name)
    assert found is not None, f"COMMANDS names {name!r} but it does not load"
    return found


def all_paths() -> list[tuple[str, ...]]:
    """Every command path: ("receive",), ("actor",), ("actor", "add"), ..."""
    paths: list[tuple[str, ...]] = []
    for name in COMMANDS:
        paths.append((name,))
        found = command(name)
        if isinstance(found, click.Group):
            paths.extend((name, sub) for sub in found.commands)
    return paths


def description(found: click.Command) -> str:
    return words(inspect.cleandoc(found.help or "").split("\n\n")[0])


@pytest.mark.parametrize("name", list(COMMANDS))
def test_one_line_help_is_the_commands_own(name: str) -> None:
    assert COMMANDS[name][1] == description(command(name))


@pytest.mark.parametrize("path", all_paths(), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    found = command(path[0])
    for sub in path[1:]:
        assert isinstance(found, click.Group)
        found = found.commands[sub]
    assert description(found), f"ledger {' '.join(path)} has no description"
    done = CliRunner().invoke(cli, [*path, "--help"], prog_name="ledger")
    assert done.exit_code == 0, done.output
    assert f"Usage: ledger {' '.join(path)}" in done.output
    assert description(found) in words(done.output)


def test_top_level_help_lists_every_command_with_its_line() -> None:
    done = CliRunner().invoke(cli, ["--help"])
    assert done.exit_code == 0, done.output
    listed = words(done.output)
    for name, (_, line) in COMMANDS.items():
        assert f"{name} {line}" in listed, name


def test_readme_names_every_command() -> None:
    text = README.read_text()
    missing = [n for n in COMMANDS if not re.search(rf"`ledger {re.escape(n)}\b", text)]
    assert missing == [], f"README.md never shows these as `ledger <name>`: {missing}"


def readme_command_lines() -> list[list[str]]:
    """The arguments of every `ledger ...` line in the README's shell code blocks (and of
    ``NAME=$(ledger ...)``)."""
    found = []
    for block in re.findall(r"```(?:sh|bash|shell|console)\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            captured = re.match(r"\w+=\$\((ledger [^)]*)\)(.*)", line)  # NAME=$(ledger ...)
            if captured:
                line = captured[1] + captured[2]
            if line.startswith("ledger "):
                found.append(shlex.split(line, comments=True)[1:])
    return found


def test_readme_shell_lines_parse() -> None:
    lines = readme_command_lines()
    assert len(lines) >= 5, "the README shows how to use the ledger"
    for args in lines:
        parse(args)


def parse(args: list[str]) -> None:
    """Parse and validate a command line against the real definitions, without running it."""
    shown = "ledger " + shlex.join(args)
    root = click.Context(cli, info_name="ledger", obj=Context(None, None))
    found: click.Command = cli
    parent = root
    while isinstance(found, click.Group):
        takes_value = {
            name
            for p in found.params
            if isinstance(p, click.Option) and not p.is_flag
            for name in p.opts
        }
        while args and args[0] in takes_value:  # the group's own options, e.g. --actor ID
            args = args[2:]
        assert args and not args[0].startswith("-"), f"no command in `{shown}`"
        name, *args = args
        sub = found.get_command(parent, name)
        assert sub is not None, f"README shows an unknown command: {shown}"
        if isinstance(sub, click.Group):
            parent = click.Context(sub, info_name=name, parent=parent)
        found = sub
    try:
        found.make_context(found.name or "", list(args), parent=parent).close()
    except click.ClickException as error:
        pytest.fail(f"README line `{shown}` does not parse: {error.format_message()}")


@pytest.mark.parametrize("path", [(), ("actor",)], ids=["ledger", "ledger actor"])
def test_a_bare_group_shows_its_help(path: tuple[str, ...]) -> None:
    done = CliRunner().invoke(cli, list(path), prog_name="ledger")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"Usage: ledger {' '.join(path)}".rstrip() + " [OPTIONS]")
    assert done.stderr == ""


def exit_codes() -> dict[int, str]:
    """The README's exit-code table: code -> what it means."""
    return {int(c): m for c, m in re.findall(r"^\| (\d) \| (.*) \|$", README.read_text(), re.M)}


def test_the_exit_code_table_gives_a_wrong_cipher_key_the_code_commands_exit_with() -> None:
    """The table gave exit 6 for a wrong or missing LEDGER_CIPHER_KEY; a command opening
    the store refuses it with exit 2 (tests/test_encryption.py), `verify` included; only a
    later event that cannot be read exits 6."""
    codes = exit_codes()
    assert sorted(codes) == [0, 1, 2, 3, 4, 5, 6]
    assert "LEDGER_CIPHER_KEY" in codes[2]
    assert "LEDGER_CIPHER_KEY" not in codes[6] and "`verify` also" not in codes[6]


ROOT = README.parent
PACKAGES = ["aggregates", "ledger", "projections", "commands"]


def test_every_environment_variable_the_ledger_and_its_scripts_read_is_in_the_readme() -> None:
    """LEDGER_DEBUG and two of scripts/test's variables were in no user's documentation."""
    sources = [p for package in PACKAGES for p in (ROOT / package).glob("*.py")]
    sources += [p for p in (ROOT / "scripts").iterdir() if p.is_file()]
    read = {v for p in sources for v in re.findall(r"\bLEDGER_[A-Z_]+\b", p.read_text())}
    read -= {"LEDGER_CHECK_EVENTS"}  # the test suite's own (aggregates/base.py)
    shown = set(re.findall(r"\bLEDGER_[A-Z_]+\b", README.read_text()))
    assert sorted(read - shown) == []


@pytest.mark.parametrize("sub", ["rebuild", "check", "follow"])
def test_the_projection_names_are_those_the_commands_take(sub: str) -> None:
    from projections.runner import PROJECTIONS

    *most, last = PROJECTIONS
    assert f"NAME is {', '.join(most)} or {last}" in description_of("projections", sub)
    assert f"all, or name some: {' '.join(PROJECTIONS)};" in README.read_text()


def description_of(*path: str) -> str:
    done = CliRunner().invoke(cli, [*path, "--help"], prog_name="ledger")
    assert done.exit_code == 0, done.output
    return words(done.output)


def test_scripts_test_says_which_checks_it_runs() -> None:
    """Its usage comment named ruff check, mypy and pytest; it also ran ruff format --check."""
    text = (ROOT / "scripts" / "test").read_text()
    usage = words(" ".join(line.lstrip("#") for line in text.splitlines() if line[:1] == "#"))
    checks = re.findall(r'^\s*"\$VENV/bin/(\w+)"(.*)$', text, re.M)
    assert len(checks) >= 3
    for tool, args in checks:
        assert f"`{tool}{args}`" in usage
