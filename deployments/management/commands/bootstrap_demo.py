"""What `make run` does after migrate: roles, a demo admin, and the sign-in hint.

Safe to run again: nothing is duplicated and an existing password is kept.
"""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments import roles
from deployments.audit import audit
from deployments.models import Environment, Target
from deployments.services.repositories import repository_load_example
from workers.targets import local

DEMO_ADMIN = "admin"
# A second person, so prod's four-eyes rule can be tried: the admin asks, the
# approver approves (or the other way round).
DEMO_APPROVER = "approver"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "model_repositories"


class Command(BaseCommand):
    help = "Create the roles and the demo admin for a local dashboard; print how to sign in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="where the dashboard will listen")
        parser.add_argument("--no-examples", action="store_true", help="do not record the example repositories")

    def handle(self, *args, url, no_examples, **options):
        roles.ensure_roles()
        password = self._ensure_admin()
        approver_password = self._ensure_approver()
        self._ensure_environments_and_local_targets()
        if not no_examples:
            self._load_examples()
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
        if approver_password:
            self.stdout.write(
                f"  prod needs one approval by someone else: sign in as {DEMO_APPROVER!r} with password: "
                f"{approver_password}"
            )
        self.stdout.write("")

    @transaction.atomic
    def _ensure_environments_and_local_targets(self):
        # A local target in every environment, so every flow can be tried without Azure.
        for position, name in enumerate(["dev", "staging", "prod"]):
            # prod asks for one approval (four eyes), the others for none.
            policy = {"position": position, "approvals_required": 1 if name == "prod" else 0}
            environment, created = Environment.objects.get_or_create(name=name, defaults=policy)
            if created:
                audit(action="environment.created", actor_name="make run", obj=environment, after=policy)
            target, created = Target.objects.get_or_create(
                name=f"local-{name}", defaults={"kind": local.KIND.name, "environment": environment}
            )
            if created:
                audit(action="target.created", actor_name="make run", obj=target, after={"kind": target.kind})

    def _load_examples(self):
        admin = get_user_model().objects.get(username=DEMO_ADMIN)
        for path in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
            outcome = repository_load_example(path=path, actor=admin)
            if outcome.created:
                repository = outcome.repository
                self.stdout.write(f"  example repository {path.name}: {repository.status}")

    def _ensure_admin(self) -> str | None:
        return self._ensure_user(DEMO_ADMIN, roles.ADMIN, superuser=True)

    def _ensure_approver(self) -> str | None:
        return self._ensure_user(DEMO_APPROVER, roles.APPROVER, superuser=False)

    @transaction.atomic
    def _ensure_user(self, username: str, role: str, *, superuser: bool) -> str | None:
        """Create the user with a random password, returned to print once; None if it exists."""
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            return None
        password = secrets.token_urlsafe(12)
        create = user_model.objects.create_superuser if superuser else user_model.objects.create_user
        # An address, so that approval mails reach them (printed by the local mail backend).
        user = create(username, email=f"{username}@example.com", password=password)
        user.groups.add(Group.objects.get(name=role))
        audit(action="user.created", actor_name="make run", obj=user, details={"roles": [role]})
        return password
