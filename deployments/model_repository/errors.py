class IntakeError(Exception):
    """An upload or import is unsafe or unreadable; `entry` names the culprit when
    there is one. Nothing of it is kept."""

    def __init__(self, message: str, entry: str = ""):
        super().__init__(f"{entry}: {message}" if entry else message)
        self.message = message
        self.entry = entry
