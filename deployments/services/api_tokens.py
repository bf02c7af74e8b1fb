from datetime import timedelta

from django.utils import timezone

from deployments.audit import audit
from deployments.errors import DomainError, WrongState
from deployments.integrity import atomic
from deployments.models import ApiToken
from deployments.models.api_token import TOKEN_PREFIX, hash_token_key, new_token_key


@atomic
def api_token_create(
    *, user, name: str, scope: str = ApiToken.Scope.DEPLOY, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns it with its key, which is never available again."""
    name = name.strip()
    if scope not in ApiToken.Scope.values:
        raise DomainError("scope is 'read' (GET only) or 'deploy'.", path="scope")
    if expires_in_days is not None and (
        isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= 366
    ):
        raise DomainError("A token lives from 1 to 366 days (or until revoked).", path="expires_in_days")
    if not name:
        raise DomainError("Give the token a name that says where it is used, e.g. 'release pipeline'.")
    if len(name) > 100:
        raise DomainError("Token names are at most 100 characters.")
    key = new_token_key()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 8],
        key_hash=hash_token_key(key),
        scope=scope,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    audit(
        action="api_token.created",
        actor=user,
        obj=token,
        details={
            "name": name,
            "prefix": token.prefix,
            "scope": scope,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, key


@atomic
def api_token_revoke(*, token: ApiToken, actor) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise WrongState("This token is already revoked.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit(action="api_token.revoked", actor=actor, obj=token, details={"prefix": token.prefix})
    return token
