from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from deployments.errors import DomainError
from deployments.services.api_tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print its key (shown once; only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="what the token is for")
        parser.add_argument("--scope", choices=["read", "deploy"], default="deploy", help="read: GET requests only")
        parser.add_argument("--expires-days", type=int, default=None, help="lifetime in days (default: until revoked)")

    def handle(self, *args, username, name, scope, expires_days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not work.")
        try:
            _, key = api_token_create(user=user, name=name, scope=scope, expires_in_days=expires_days)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(key)
