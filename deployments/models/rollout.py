from django.conf import settings
from django.db import models

from deployments import policy


class RolloutQuerySet(models.QuerySet):
    def visible_to(self, user):
        return policy.restrict(
            self, user, "deployments.view_deployment", environment_field="deployment__target__environment_id"
        )


class Rollout(models.Model):
    """A spec change moved onto a deployment step by step: a candidate runs
    beside the baseline, takes each step's share of the traffic for its bake
    time, and goes on only while the gates pass; a failed gate sends the
    traffic back. The plan (spec, steps, gates, golden requests) is bound by
    its digest to what was approved. State lives here: the reconciler drives
    it (deployments/rollouts/driver.py), so a dead worker loses nothing."""

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        PROMOTED = "promoted", "Promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        ABORTED = "aborted", "Aborted"
        FAILED = "failed", "Failed"

    # What it is doing while running (or paused in).
    class Phase(models.TextChoices):
        CANDIDATE = "candidate", "Deploying the candidate"
        SHIFTING = "shifting", "Shifting traffic"
        BAKING = "baking", "Baking"
        FINISHING = "finishing", "Retiring the baseline"
        ROLLING_BACK = "rolling_back", "Sending traffic back to the baseline"
        CLEANING_UP = "cleaning_up", "Removing the candidate"
        DONE = "done", "Done"

    ACTIVE = {Status.PENDING_APPROVAL, Status.RUNNING, Status.PAUSED}
    TERMINAL = {Status.PROMOTED, Status.ROLLED_BACK, Status.ABORTED, Status.FAILED}

    class OnRollback(models.TextChoices):
        KEEP = "keep", "Keep the candidate at 0% for inspection"
        REMOVE = "remove", "Remove the candidate"

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="rollouts")
    # The candidate's spec in the shape of a deploy request's
    # (approvals.proposed_spec): repository_id, digests, every spec field.
    spec = models.JSONField()
    candidate_digest = models.CharField(max_length=64)
    baseline_digest = models.CharField(max_length=64)
    # The deployments of the endpoint (Azure deployment names, or the local
    # target's Triton deployments), named from their spec digests.
    candidate_name = models.CharField(max_length=63)
    baseline_name = models.CharField(max_length=63)
    gates = models.JSONField(default=dict, blank=True)
    golden_requests = models.JSONField(default=list, blank=True)
    on_rollback = models.CharField(max_length=8, choices=OnRollback.choices, default=OnRollback.KEEP)
    # SHA-256 over spec digest, steps, gates, golden requests and on_rollback:
    # what four eyes approve. The driver checks it before every move.
    plan_digest = models.CharField(max_length=64)
    # Set when the plan may run (approved, or no approval asked): the
    # digest that was let through.
    released_digest = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_APPROVAL)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.CANDIDATE)
    reason = models.TextField(blank=True)
    # How a rollback ends: rolled_back (a gate failed), aborted (a person), failed.
    ending = models.CharField(max_length=20, blank=True)
    # Promote now: the last step's traffic without its bake, then finish.
    promote_now = models.BooleanField(default=False)
    # The step under way (index into steps), -1 before the first.
    step_index = models.SmallIntegerField(default=-1)
    # The operation the rollout waits on (candidate deploy, traffic, retire).
    operation = models.ForeignKey(
        "deployments.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One rollout at a time per deployment: two would fight over its traffic.
            models.UniqueConstraint(
                fields=["deployment"],
                condition=models.Q(status__in=["pending_approval", "running", "paused"]),
                name="one_active_rollout_per_deployment",
            )
        ]
        indexes = [models.Index(fields=["status"], name="rollout_status")]

    def __str__(self):
        return f"rollout #{self.pk} of {self.deployment_id}"

    @property
    def current_step(self):
        if self.step_index < 0:
            return None
        return self.steps.filter(index=self.step_index).first()


class RolloutStep(models.Model):
    """One step of a plan: a share of the traffic for a bake time, and the
    gates' verdict on it with the figures behind it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SHIFTING = "shifting", "Shifting traffic"
        BAKING = "baking", "Baking"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    traffic = models.PositiveSmallIntegerField()
    bake_seconds = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # When the step's traffic was in place (the bake window starts), and when it ended.
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Counters of both sides read when the bake began ({"baseline": ..., "candidate": ...}).
    counters_at_start = models.JSONField(default=dict, blank=True)
    # The latest figures over the window so far and the gates' verdict on them:
    # {"baseline": {...}, "candidate": {...}}, {"passed", "final", "checks": [...]}.
    figures = models.JSONField(default=dict, blank=True)
    verdict = models.JSONField(default=dict, blank=True)
    # Figures over time for the page's charts: [{"at", "baseline": {...}, "candidate": {...}}].
    series = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [models.UniqueConstraint(fields=["rollout", "index"], name="rollout_step_unique")]

    def __str__(self):
        return f"step {self.index + 1} ({self.traffic}%) of {self.rollout}"


class GoldenRequest(models.Model):
    """Known inputs and the outputs a good model answers, kept for a
    deployment's rollouts (saved from the console in one click). `request`
    is in the plan's checked shape (rollouts.plan.clean_golden)."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="golden_requests")
    name = models.CharField(max_length=100)
    request = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="golden_request_name_unique")]

    def __str__(self):
        return self.name
