"""The ``conveyor-qc`` command line: it parses (:mod:`.parser`) and dispatches to one handler
module per area (:mod:`.run`, :mod:`.evaluation`, :mod:`.dataset`, :mod:`.anomaly`,
:mod:`.lookout`), which call the package's functions and print what they return.

Exit codes (:mod:`.exit_codes`): 0 success; 1 an error that is the user's to fix (bad input,
bad config, unwritable output: any :class:`~conveyor_qc.errors.ConveyorQCError`, or the system
refusing a file), with a one-line message naming the problem; 2 wrong usage; 3 the input ended
early (results hold what could be read); 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (the
same clean stop: results hold everything seen until then). Any other exception is a bug and shows
its traceback.
"""

from __future__ import annotations

import importlib
import os
import select
import sys

from conveyor_qc import _core
from conveyor_qc.cli.exit_codes import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_STDOUT_CLOSED,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from conveyor_qc.cli.parser import build_parser
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.run.stopping import stop_on_sigterm, terminated

__all__ = ["build_parser", "main"]

#: Errors of the C++ core that name a bad setting or input (the core cannot derive from ours).
_CORE_ERRORS = (_core.ParamError, _core.InputError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    # Only the chosen command's module is imported: `--help` and light commands stay fast.
    module_name, _, function = args.handler.partition(":")
    handler = getattr(importlib.import_module(f"conveyor_qc.cli.{module_name}"), function)
    with stop_on_sigterm():  # a service manager's SIGTERM stops a command as Ctrl-C does
        try:
            code = handler(args)
            sys.stdout.flush()  # a closed pipe fails here, not in Python's flush at exit
        except (ConveyorQCError, *_CORE_ERRORS) as exc:
            print(f"conveyor-qc {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except BrokenPipeError as exc:
            if not _stdout_closed():
                return _os_error(args.command, exc)
            return EXIT_STDOUT_CLOSED  # `conveyor-qc ... | head`: nobody reads any more, nothing to say
        except OSError as exc:  # the system refused a file: disk full, permissions, a missing path
            return _os_error(args.command, exc)
        except KeyboardInterrupt:
            print(
                f"conveyor-qc {args.command}: {'stopped by SIGTERM' if terminated() else 'interrupted'}",
                file=sys.stderr,
            )
            code = EXIT_INTERRUPTED
    return EXIT_TERMINATED if code == EXIT_INTERRUPTED and terminated() else code


def _os_error(command: str, exc: OSError) -> int:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    print(f"conveyor-qc {command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
    return EXIT_ERROR


def _stdout_closed() -> bool:
    """Whether standard output's reader has gone (a pipe closed by ``head``): its end of the pipe
    then polls as an error. If so, it is pointed at /dev/null, so that Python's own flush at exit
    does not fail on it again."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        broken = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no real file behind sys.stdout
        return False
    if broken:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return broken


if __name__ == "__main__":
    sys.exit(main())
