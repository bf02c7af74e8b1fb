from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """Who a user is at the identity provider: (issuer, subject) is stable
    and unique there, unlike a display name or an email address."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_sso_subject")]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"
