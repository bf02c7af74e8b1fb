from django.core.management.base import BaseCommand, CommandError

from deployments.audit import verify_chain


class Command(BaseCommand):
    help = "Walk the audit log's hash chain; exit non-zero at the first event that does not fit."

    def handle(self, *args, **options):
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"audit chain broken at seq {report.first_bad_seq}: {report.problem} ({report.checked} events read)"
            )
        self.stdout.write(f"ok: {report.checked} events, chain intact")
