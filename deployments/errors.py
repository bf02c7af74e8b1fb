class DomainError(Exception):
    """A refused action, with a message meant for the person who asked.

    `path` names the input field at fault, when there is one.
    """

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, path: str = "", choices: list | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        # What the person may pick from to ask again (e.g. the deployments a
        # promotion could update): [{"id", "name", ...}].
        self.choices = choices or []
        if code:
            self.code = code


class NotAllowed(DomainError):
    code = "forbidden"


class WrongState(DomainError):
    code = "conflict"


class Conflict(WrongState):
    """What was asked for exists already or is under way (a race with another
    request, usually): a 409 in the API, a message on the page."""


class Ambiguous(WrongState):
    """More than one thing fits and the request does not say which: the
    message names them and `choices` lists them."""

    code = "ambiguous"
