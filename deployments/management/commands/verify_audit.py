from django.core.management.base import BaseCommand, CommandError

from deployments.audit.anchors import anchor_path
from deployments.audit.verification import verify_chain


class Command(BaseCommand):
    help = (
        "Walk the audit log's hash chain and check it against the anchors written outside the database; "
        "exit non-zero at the first event that does not fit or is missing."
    )

    def handle(self, *args, **options):
        report = verify_chain()
        if not report.ok:
            where = f"at seq {report.first_bad_seq}" if report.first_bad_seq is not None else "before any event"
            raise CommandError(f"audit chain broken {where}: {report.problem} ({report.checked} events read)")
        self.stdout.write(f"ok: {report.checked} events, chain intact")
        if report.anchored_seq is None:
            # Not a failure (a new installation has no anchor until beat's first
            # round), but truncation cannot be seen without one.
            self.stdout.write(
                f"not anchored yet ({anchor_path()} has no line): deleting the newest events would not show"
            )
        else:
            self.stdout.write(f"anchored: seq {report.anchored_seq} at {report.anchored_at} is present and matches")
