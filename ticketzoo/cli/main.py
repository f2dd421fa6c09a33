"""The click group and the one error boundary every command runs inside."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ticketzoo import __version__
from ticketzoo.cli.console import err_console

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


def docs_file(name: str) -> Path:
    """``docs/NAME``: in a wheel ``ticketzoo/_docs/NAME``, in a checkout ``docs/NAME`` beside
    the package (where a missing file is named anyway, so the help still says what to read)."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "_docs" / name
    return shipped if shipped.is_file() else package.parent / "docs" / name


class LazyGroup(click.Group):
    """Imports a command's module only when it runs, so ``--help`` stays instant."""

    _commands = {
        "list": "list_cmd",
        "info": "info",
        "pull": "pull",
        "push": "push",
        "verify": "verify",
        "export": "export",
        "find": "find",
        "finetune": "finetune",
        "compare": "compare",
        "rm": "rm",
        "gc": "gc",
        "bench": "bench",
        "predict": "predict",
        "cache": "cache",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        from importlib.util import find_spec

        return [n for n, m in self._commands.items() if find_spec(f"ticketzoo.cli.{m}") is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = self._commands.get(name)
        if name not in self.list_commands(ctx):
            return None
        from importlib import import_module

        return getattr(import_module(f"ticketzoo.cli.{module}"), "command")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=f"Every command: `ticketzoo COMMAND --help`; JSON keys and exit codes: {docs_file('CLI.md')}")
@click.version_option(__version__, prog_name="ticketzoo")
def cli() -> None:
    """ticketzoo: find, share and fine-tune sparse lottery tickets.

    \b
    Examples:
      ticketzoo list
      ticketzoo pull fashionmnist-lenet-300-100-s79
      ticketzoo finetune --data ./my_images
      ticketzoo push --registry hf://my-lab --license mit
    """


def _debug() -> bool:
    return os.environ.get("TICKETZOO_DEBUG", "") not in ("", "0", "false")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit 0 ok, 1 user error, 2 usage error. Never a traceback unless debugging."""
    from ticketzoo.errors import TicketzooError

    try:
        rc = cli.main(args=argv, prog_name="ticketzoo", standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else EXIT_OK)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        if _debug():
            raise
        e.show(file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        if _debug():
            raise
        err_console.print(f"error: {e.format_message()}")
        sys.exit(EXIT_USER)
    except (click.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    except TicketzooError as e:
        if _debug():
            raise
        from ticketzoo.cli.errors import describe, is_usage_error

        command = _command(argv)
        err_console.print(f"error: {_one_line(describe(e, command))}")
        # A flag's value out of range or a malformed name typed is a usage error, as click's
        # own type errors are (`--epochs 0` and `--epochs three` both exit 2).
        args = sys.argv[1:] if argv is None else argv
        sys.exit(EXIT_USAGE if is_usage_error(e, command, args) else EXIT_USER)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except Exception as e:  # a bug, not a user error: still one line unless debugging
        if _debug():
            raise
        if isinstance(e, OSError) and e.errno is not None:  # disk full, permission denied: file and cause
            from ticketzoo.cli.errors import os_error_line

            err_console.print(f"error: {_one_line(os_error_line(e))}")
            sys.exit(EXIT_USER)
        err_console.print(f"error: unexpected {type(e).__name__}: {_one_line(str(e), 300)} "
                          "(set TICKETZOO_DEBUG=1 for a traceback)")
        sys.exit(EXIT_USER)


def _command(argv: list[str] | None) -> click.Command | None:
    """The subcommand named on the command line (the group takes no option with a value)."""
    args = sys.argv[1:] if argv is None else argv
    name = next((str(a) for a in args if not str(a).startswith("-")), None)
    try:
        return cli.get_command(click.Context(cli), name) if name else None
    except Exception:  # wording an error must never raise another
        return None


def _one_line(text: str, limit: int = 2000) -> str:
    """Errors are one line: newlines from foreign messages folded, runaway input cut."""
    text = " ".join(text.splitlines())
    return text if len(text) <= limit else text[: limit - 1] + "…"
