from deployments import policy
from deployments.errors import NotAllowed


def require(actor, perm: str, action: str, *, environment=None, role: str = "deployer or admin") -> None:
    """Refuse `action` unless `actor` holds `perm` (everywhere, or in
    `environment`), saying which role grants it."""
    if not policy.can(actor, perm, environment):
        where = f" in {environment}" if environment is not None else ""
        raise NotAllowed(f"{action}{where} needs the {role} role.")
