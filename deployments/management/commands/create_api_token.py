from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from deployments.errors import DomainError
from deployments.services.api_tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print its key (shown once; only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="what the token is for")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not work.")
        try:
            _, key = api_token_create(user=user, name=name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(key)
