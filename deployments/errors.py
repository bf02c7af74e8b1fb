class DomainError(Exception):
    """A refused action, with a message meant for the person who asked.

    `path` names the input field at fault, when there is one.
    """

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, path: str = ""):
        super().__init__(message)
        self.message = message
        self.path = path
        if code:
            self.code = code


class NotAllowed(DomainError):
    code = "forbidden"


class WrongState(DomainError):
    code = "conflict"
