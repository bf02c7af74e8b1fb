"""mozilla-django-oidc's backend with what a dashboard that ships to
production needs on top: the ID token's issuer and audience checked (the
library checks only the signature, expiry and nonce), users keyed
by (issuer, subject) rather than by a name anyone could take, and roles
set from the provider's groups on every sign-in."""

import time

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from deployments import roles as dashboard_roles
from deployments.audit import audit
from deployments.models import Environment, EnvironmentMembership, SsoIdentity
from deployments.sso import discovery, role_map

# Clock skew tolerated between the provider and this server.
LEEWAY_SECONDS = 60


class Refused(SuspiciousOperation):
    """A sign-in refused for a reason the person should read."""


class DashboardOIDCBackend(OIDCAuthenticationBackend):
    get_settings = staticmethod(discovery.setting)

    def get_or_create_user(self, access_token, id_token, payload):
        try:
            return super().get_or_create_user(access_token, id_token, payload)
        except SuspiciousOperation as exc:
            # The library catches this one and returns None: keep the reason.
            self.request.sso_refusal = str(exc)
            raise

    def verify_token(self, token, **kwargs):
        try:
            payload = super().verify_token(token, **kwargs)  # signature (JWKS), expiry (PyJWT), nonce
        except jwt.ExpiredSignatureError:
            raise Refused("The ID token has expired; sign in again.") from None
        except jwt.InvalidTokenError as exc:
            raise Refused(f"The ID token is not valid: {exc}.") from None
        except SuspiciousOperation as exc:
            raise Refused(_LIBRARY_WORDS.get(str(exc), str(exc))) from None
        _check_claims(payload)
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        # The verified ID token carries what is needed (sub, name, email,
        # groups); nothing unsigned is trusted on top of it.
        return payload

    def verify_claims(self, claims):
        if not claims.get("sub"):
            raise Refused("The ID token has no subject (sub).")
        return True

    def filter_users_by_claims(self, claims):
        return get_user_model().objects.filter(
            sso_identities__issuer=claims["iss"], sso_identities__subject=claims["sub"]
        )

    def create_user(self, claims):
        granted = _granted(claims)
        if granted.empty and settings.OIDC_REQUIRE_ROLE:
            raise Refused(NO_ROLE)  # nobody is created for an identity without a role
        username = (claims.get("preferred_username") or claims.get("email") or claims["sub"])[:150]
        users = get_user_model().objects
        with transaction.atomic():
            if users.filter(username=username).exists():
                raise Refused(
                    f"A local account is already named {username}; an administrator must remove or rename it "
                    "before this identity can sign in."
                )
            user = users.create_user(username, email=claims.get("email", ""), password=None)
            SsoIdentity.objects.create(user=user, issuer=claims["iss"], subject=claims["sub"])
            audit(action="user.created", actor=user, obj=user, details={"method": "sso", "issuer": claims["iss"]})
            sync_roles(user, granted)
        return user

    def update_user(self, user, claims):
        if not user.is_active:
            raise Refused("This account is disabled in the dashboard.")
        granted = _granted(claims)
        with transaction.atomic():
            email = claims.get("email", "")
            if email and email != user.email:
                user.email = email
                user.save(update_fields=["email"])
            # Committed before any refusal below: someone removed from every
            # group loses the roles they had, then is turned away.
            sync_roles(user, granted)
        if granted.empty and settings.OIDC_REQUIRE_ROLE:
            raise Refused(NO_ROLE)
        return user


# mozilla-django-oidc's messages, in words for the person signing in.
_LIBRARY_WORDS = {
    "JWS token verification failed.": "The ID token's signature does not verify against the provider's keys.",
    "JWT Nonce verification failed.": (
        "The ID token does not answer this sign-in (its nonce does not match): it may be replayed. Start again."
    ),
    "Could not find a valid JWKS.": "The provider's keys (JWKS) do not include the one that signed the ID token.",
}

NO_ROLE = (
    "Your account is in none of the groups that give a role in this dashboard. Ask an administrator to add you to one."
)


def _granted(claims: dict) -> role_map.Roles:
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if not isinstance(groups, list):
        groups = [groups]
    return role_map.roles_for([str(g) for g in groups], role_map.parse(settings.OIDC_ROLE_MAP))


def _check_claims(payload: dict) -> None:
    expected = settings.OIDC_ISSUER
    if payload.get("iss") != expected:
        raise Refused(f"The ID token was issued by {payload.get('iss')!r}, not by the configured {expected!r}.")
    audience = payload.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    client_id = settings.OIDC_RP_CLIENT_ID
    if client_id not in audiences:
        raise Refused(f"The ID token is for {audience!r}, not for this dashboard ({client_id}).")
    if len(audiences) > 1 and payload.get("azp") != client_id:
        raise Refused("The ID token has several audiences and was not issued to this dashboard (azp).")
    now = time.time()
    # PyJWT checks exp inside the library today; checked here too so a token
    # without one is refused whatever the library does.
    expires = payload.get("exp")
    if not isinstance(expires, int | float) or expires < now - LEEWAY_SECONDS:
        raise Refused("The ID token has expired; sign in again.")
    not_before = payload.get("nbf")
    if isinstance(not_before, int | float) and not_before > now + LEEWAY_SECONDS:
        raise Refused("The ID token is not valid yet (check this server's clock).")


def sync_roles(user, granted: role_map.Roles) -> None:
    """Make the user's roles exactly what the groups grant: global role
    groups, and the environment roles that sign-in manages (roles an admin
    granted by hand stay). Each change is audited."""
    role_names = list(dashboard_roles.ROLE_PERMISSIONS)
    before_global = set(user.groups.filter(name__in=role_names).values_list("name", flat=True))
    managed = {m.environment.name: m for m in user.memberships.filter(sso_managed=True).select_related("environment")}
    before_env = {name: m.role for name, m in managed.items()}

    if before_global != granted.everywhere:
        user.groups.remove(*Group.objects.filter(name__in=before_global - granted.everywhere))
        user.groups.add(*Group.objects.filter(name__in=granted.everywhere - before_global))
    environments = {e.name: e for e in Environment.objects.filter(name__in=granted.per_environment)}
    for name, membership in managed.items():
        if name not in granted.per_environment:
            membership.delete()
    for name, role in granted.per_environment.items():
        if name in environments and before_env.get(name) != role:
            EnvironmentMembership.objects.update_or_create(
                user=user, environment=environments[name], defaults={"role": role, "sso_managed": True}
            )
    after_env = {name: role for name, role in granted.per_environment.items() if name in environments}
    if (before_global, before_env) != (granted.everywhere, after_env):
        audit(
            action="user.roles_changed",
            actor=user,
            obj=user,
            before={"roles": sorted(before_global), "environments": before_env},
            after={"roles": sorted(granted.everywhere), "environments": after_env},
            details={"source": "sso groups"},
        )
    # Permission caches on this object are stale now.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache", "_environment_roles"):
        user.__dict__.pop(cache, None)
