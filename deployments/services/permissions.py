from deployments.errors import NotAllowed


def require(actor, perm: str, action: str, *, role: str = "deployer or admin") -> None:
    """Refuse `action` unless `actor` holds `perm`, saying which role grants it."""
    if actor is None or not actor.has_perm(perm):
        raise NotAllowed(f"{action} needs the {role} role.")
