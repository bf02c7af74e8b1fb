"""Every secret the dashboard stores, re-encrypted under the newest key."""

from django.db import transaction

from deployments import crypto
from deployments.audit import audit
from deployments.models import Deployment, Environment, Target

# (model, field): each Fernet-encrypted column. A new one belongs here.
ENCRYPTED_FIELDS = [
    (Target, "credentials_encrypted"),
    (Deployment, "key_encrypted"),
    (Deployment, "secondary_key_encrypted"),
    (Environment, "webhook_secret_encrypted"),
]


def secrets_rotate(*, actor_name: str) -> dict[str, int]:
    """Re-encrypt each stored secret under the first of ENCRYPTION_KEYS, in
    one transaction: afterwards the older keys can be removed. Refuses as a
    whole (SecretUnreadable) if any value opens with none of the keys."""
    counts = {}
    with transaction.atomic():
        for model, field in ENCRYPTED_FIELDS:
            rows = model.objects.select_for_update().exclude(**{field: ""}).only("pk", field)
            done = 0
            for row in rows:
                model.objects.filter(pk=row.pk).update(**{field: crypto.rotate(getattr(row, field))})
                done += 1
            counts[f"{model._meta.label_lower}.{field}"] = done
        audit(action="secrets.rotated", actor_name=actor_name, details={"re_encrypted": counts})
    return counts
