"""Error types shared by every pipeline. The CLI and the editor show ``str(err)`` as a one-line message."""


class FRGDError(Exception):
    """Base class of every error the user can act on (shown as one line, no traceback)."""


class InputError(FRGDError):
    """A user-supplied argument or input is invalid (raised by ``check_inputs``)."""


class MissingWeightsError(FRGDError):
    """Model weights are not on disk; the message says where they are expected and how to get them."""


class Cancelled(FRGDError):
    """A long job was cancelled by the user; raised at the next step boundary."""
