"""What `make run` does after migrate: roles, a demo admin, and the sign-in hint.

Safe to run again: nothing is duplicated and an existing password is kept.
"""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments import roles
from deployments.audit import audit

DEMO_ADMIN = "admin"


class Command(BaseCommand):
    help = "Create the roles and the demo admin for a local dashboard; print how to sign in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the dashboard will listen")

    def handle(self, *args, url, **options):
        roles.ensure_roles()
        password = self._ensure_admin()
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Triton Dashboard: {url}"))
        if password:
            self.stdout.write(f"  sign in as {DEMO_ADMIN!r} with password: {password}")
            self.stdout.write("  (shown this once; reset it with: .venv/bin/python manage.py changepassword admin)")
        else:
            self.stdout.write(
                f"  sign in as {DEMO_ADMIN!r} with the password printed at the first `make run`"
                " (forgot it? .venv/bin/python manage.py changepassword admin)"
            )
        self.stdout.write("")

    @transaction.atomic
    def _ensure_admin(self) -> str | None:
        user_model = get_user_model()
        if user_model.objects.filter(username=DEMO_ADMIN).exists():
            return None
        password = secrets.token_urlsafe(12)
        admin = user_model.objects.create_superuser(DEMO_ADMIN, email="", password=password)
        admin.groups.add(Group.objects.get(name=roles.ADMIN))
        audit(action="user.created", actor_name="make run", obj=admin, details={"roles": [roles.ADMIN]})
        return password
