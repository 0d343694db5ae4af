from django.core.exceptions import PermissionDenied


def require_perm(user, perm: str, message: str) -> None:
    """Services call this before acting: a role that may not act is refused, whatever the UI
    shows."""
    if user is None or not user.is_active or not user.has_perm(perm):
        raise PermissionDenied(message)
