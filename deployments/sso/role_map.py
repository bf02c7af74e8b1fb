"""The provider's groups to the dashboard's roles.

OIDC_ROLE_MAP lists `group=role` (everywhere) and `group=role@environment`
(one environment), separated by commas, e.g.
`ml-admins=admin,ml-engineers=deployer@dev,ml-engineers=viewer@prod,ml-leads=approver@prod`.
For Entra ID the group is its object id (the `groups` claim) or an app
role name (`roles`).
"""

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

# The role names of deployments/roles.py, spelled out because settings parse
# the map before the auth models can be imported (a test keeps them equal).
# When two groups give someone different roles in one environment, the first
# of these wins: a membership holds one role.
PRECEDENCE = ["admin", "deployer", "approver", "viewer"]


@dataclass(frozen=True)
class Grant:
    group: str
    role: str
    environment: str = ""


def parse(raw: str) -> list[Grant]:
    grants = []
    for item in (part.strip() for part in raw.replace(";", ",").split(",")):
        if not item:
            continue
        group, sep, target = item.partition("=")
        role, _, environment = target.partition("@")
        if not sep or not group.strip() or role.strip() not in PRECEDENCE:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_MAP entry {item!r}: use group=role or group=role@environment, "
                f"role one of {', '.join(PRECEDENCE)}."
            )
        grants.append(Grant(group.strip(), role.strip(), environment.strip()))
    return grants


@dataclass(frozen=True)
class Roles:
    everywhere: set[str]
    per_environment: dict[str, str]

    @property
    def empty(self) -> bool:
        return not self.everywhere and not self.per_environment


def roles_for(groups: list[str], grants: list[Grant]) -> Roles:
    everywhere, per_environment = set(), {}
    held = set(groups)
    for grant in grants:
        if grant.group not in held:
            continue
        if not grant.environment:
            everywhere.add(grant.role)
            continue
        current = per_environment.get(grant.environment)
        if current is None or PRECEDENCE.index(grant.role) < PRECEDENCE.index(current):
            per_environment[grant.environment] = grant.role
    return Roles(everywhere, per_environment)
