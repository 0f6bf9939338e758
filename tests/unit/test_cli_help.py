"""Every command and every option of `bucketjobs` says what it is for (issue 14 §7), and
refuses values out of its range by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from bucketjobs.cli.main import app

AUTOMATIC = {"help", "install_completion", "show_completion"}


def _commands(group: Any, path: str = "bucketjobs") -> Iterator[tuple[str, Any]]:
    yield path, group
    if hasattr(group, "commands"):  # a group (typer carries its own click)
        for name, command in group.commands.items():
            yield from _commands(command, f"{path} {name}")


def test_every_command_and_option_has_help():
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if param.name in AUTOMATIC:
                continue
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{path} {param.name}")
            names = [*param.opts, *param.secondary_opts]
            assert not any(n.startswith("--no-no-") for n in names), (path, names)
    assert not missing, missing


def test_role_shows_its_choices():
    shown = CliRunner().invoke(app, ["users", "add", "--help"], env={"COLUMNS": "200"}).output
    for role in ("administrator", "operator", "user"):
        assert role in shown, shown


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--stalled-after", "0"),  # would heartbeat in a tight loop
        ("--stalled-after", "-5"),
        ("--stalled-after", "1e400"),
        ("--shutdown-timeout", "-1"),
        ("--shutdown-timeout", "nan"),
        ("--concurrency", "0"),
        ("--concurrency", "1000000000"),  # a task and a connection each
        ("--metrics-port", "70000"),
    ],
)
def test_worker_refuses_out_of_range_options_by_name(option, value):
    """Refused by the option parser, before any key, database or port is touched."""
    args = ["worker", "--database-url", "postgresql://nowhere.invalid/x", option, value]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert option in result.output
