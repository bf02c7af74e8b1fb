import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "tdb_"  # noqa: S105 - a public marker that makes leaked keys greppable, not a secret


def hash_token_key(key: str) -> str:
    # Keys are 256 random bits, so a plain SHA-256 is enough: there is nothing
    # to brute-force that a slow password hash would protect.
    return hashlib.sha256(key.encode()).hexdigest()


def new_token_key() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiToken(models.Model):
    """A key for the JSON API. Only its hash is stored; the key is shown once."""

    class Scope(models.TextChoices):
        READ = "read", "Read only (GET)"
        DEPLOY = "deploy", "Read and change (what the user's roles allow)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.DEPLOY)
    # None: until revoked.
    expires_at = models.DateTimeField(null=True, blank=True)
    # The first characters of the key, so a user can tell tokens apart.
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"
