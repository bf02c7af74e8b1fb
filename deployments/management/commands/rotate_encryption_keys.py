from django.core.management.base import BaseCommand, CommandError

from deployments.crypto import SecretUnreadable
from deployments.services.secrets import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of ENCRYPTION_KEYS. Put the new key first, run this, "
        "then remove the old key."
    )

    def handle(self, *args, **options):
        try:
            counts = secrets_rotate(actor_name="rotate_encryption_keys")
        except SecretUnreadable as exc:
            raise CommandError(f"{exc}; nothing was changed.") from exc
        for field, count in counts.items():
            self.stdout.write(f"{field}: {count} re-encrypted")
        self.stdout.write("done: the older keys can now be removed from ENCRYPTION_KEYS")
