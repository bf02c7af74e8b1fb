"""Sign-in, sign-out and failed sign-ins go to the audit log."""

from django.contrib.auth import signals

from deployments.audit import audit


def _logged_in(sender, request, user, **kwargs):
    audit(action="user.login", actor=user, obj=user)


def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit(action="user.logout", actor=user, obj=user)


def _login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in `credentials`; keep only the
    # name that was tried, which is what an admin investigating needs.
    username = str(credentials.get("username", ""))[:150]
    if not username:
        return  # a refused single sign-on: its callback audits it with the reason
    audit(action="user.login_failed", actor_name="anonymous", details={"username": username})


def _locked_out(sender, request, username, ip_address, **kwargs):
    audit(
        action="user.locked_out",
        actor_name="anonymous",
        details={"username": str(username or "")[:150], "address": ip_address},
    )


def connect() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="audit_user_locked_out")
    signals.user_logged_in.connect(_logged_in, dispatch_uid="audit_user_logged_in")
    signals.user_logged_out.connect(_logged_out, dispatch_uid="audit_user_logged_out")
    signals.user_login_failed.connect(_login_failed, dispatch_uid="audit_user_login_failed")
