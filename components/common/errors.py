"""The one base class of the failures segpipe expects: their message is meant for the user."""

from __future__ import annotations

import builtins
import sys

# Expected too: bad settings and inputs (ValueError), missing files and unreachable services
# (OSError), a diverged loss (FloatingPointError), a command's own exit. Anything else (a
# KeyError, a bare RuntimeError) is a bug and keeps its traceback.
EXPECTED_BUILTINS: tuple[type[BaseException], ...] = (
    ValueError,
    OSError,
    FloatingPointError,
    SystemExit,
)


class SegpipeError(Exception):
    """A failure segpipe expects (a refused check, unusable data, an outage), with a stable
    `reason` code (for tags and scripts) and the `exit_code` a command ends with."""

    reason = "failed"
    exit_code = 1


def is_expected(error: BaseException | type[BaseException]) -> bool:
    """Whether `error` (or its class) is a SegpipeError or one of EXPECTED_BUILTINS."""
    kind = error if isinstance(error, type) else type(error)
    return issubclass(kind, (SegpipeError, *EXPECTED_BUILTINS))


def error_class(name: str) -> type[BaseException] | None:
    """The class a traceback's last line names ("ValueError", "components.x.Refused") among
    the builtins and the modules already loaded (nothing is imported), or None."""
    module, _, short = name.rpartition(".")
    found = getattr(sys.modules.get(module) if module else builtins, short, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


class StepFailed(SegpipeError, RuntimeError):
    """A step cannot go on (a service or a peer did not answer, a run left in a state it cannot
    use); the message says what and what to do."""
