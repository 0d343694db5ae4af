class ActionRefused(Exception):
    """A service refused an action for a reason the user should read (shown as is).

    ``status`` is the HTTP status a view answers with: 400 for bad input, 409 for an action the
    object's state does not allow (ticking a completed run). ``field`` names the form field
    the message is about, so a form can show it beside that field."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
