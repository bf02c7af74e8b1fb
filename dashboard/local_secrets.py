"""Secrets for the embedded (local) mode, generated once and kept in VAR_DIR.

They are created with owner-only permissions and never committed: `var/` is
ignored by git. Production passes its secrets through the environment instead.
"""

import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_KEY_LENGTH = 50


def _read_or_create(path: Path, make) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = make()
    # O_EXCL: if two processes start at once, the loser reads the winner's key
    # instead of overwriting it (which would invalidate the winner's sessions).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def read_or_create_secret_key(path: Path) -> str:
    return _read_or_create(path, lambda: secrets.token_urlsafe(64))


def read_or_create_fernet_key(path: Path) -> str:
    return _read_or_create(path, lambda: Fernet.generate_key().decode())


def read_or_create_audit_key(path: Path) -> str:
    # The id says where the key came from and tells two generated keys apart
    # (a lost var/ must not bring back a different key under the same id).
    return _read_or_create(path, lambda: f"local-{secrets.token_hex(4)}:{secrets.token_urlsafe(32)}")


AUDIT_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_AUDIT_SECRET_LENGTH = 32


def check_audit_keys(keys: list[str]) -> None:
    """AUDIT_KEYS: ID:SECRET pairs, newest first; ids unique, secrets long."""
    if not keys:
        raise ImproperlyConfigured("AUDIT_KEYS must hold at least one ID:SECRET key.")
    seen = set()
    for position, key in enumerate(keys, start=1):
        key_id, _, secret = key.partition(":")
        if not AUDIT_KEY_ID.fullmatch(key_id) or len(secret) < MIN_AUDIT_SECRET_LENGTH:
            raise ImproperlyConfigured(
                f"AUDIT_KEYS: key #{position} must be ID:SECRET, the id 1-32 letters, digits, '.', '_' or '-', "
                f"the secret at least {MIN_AUDIT_SECRET_LENGTH} random characters (make one with "
                "python -c \"import secrets; print('2026-1:' + secrets.token_urlsafe(32))\")."
            )
        if key_id in seen:
            raise ImproperlyConfigured(f"AUDIT_KEYS: the id {key_id!r} is used twice (key #{position}).")
        seen.add(key_id)


def reject_weak_secret_key(key: str) -> None:
    if len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < 5 or key.startswith("django-insecure"):
        raise ImproperlyConfigured(
            f"SECRET_KEY is too weak: use at least {MIN_SECRET_KEY_LENGTH} random characters "
            '(for example python -c "import secrets; print(secrets.token_urlsafe(64))").'
        )


def check_fernet_keys(keys: list[str]) -> None:
    if not keys:
        raise ImproperlyConfigured("ENCRYPTION_KEYS must hold at least one Fernet key.")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"ENCRYPTION_KEYS: key #{position} is not a valid Fernet key (32 url-safe "
                "base64-encoded bytes; make one with "
                'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
            ) from exc
