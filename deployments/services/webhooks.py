"""Sending one webhook delivery: signed, no redirects followed, every attempt
recorded, a later attempt scheduled by the caller while delays remain."""

import hashlib
import hmac

import httpx
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from deployments import crypto
from deployments.models import WebhookDelivery

SIGNATURE_HEADER = "X-Dashboard-Signature"


def signature(secret: str, body: bytes) -> str:
    """What a receiver recomputes over the raw body to trust it: sha256=<hex HMAC>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_deliver(*, delivery_id: int) -> int | None:
    """One attempt. Returns the seconds to wait before the next one, or None
    when the delivery is done (delivered, or out of attempts)."""
    delivery = WebhookDelivery.objects.select_related("environment").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return None
    # Claim this attempt: a message Redis redelivers (acks_late) finds the
    # count moved on and sends nothing, so the receiver gets each attempt once.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    delivery.attempts += 1
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "X-Dashboard-Event": delivery.event,
        "X-Dashboard-Delivery": str(delivery.pk),
    }
    secret = delivery.environment.webhook_secret_encrypted
    if secret:
        headers[SIGNATURE_HEADER] = signature(crypto.decrypt(secret), body)
    status, error = None, ""
    try:
        answer = httpx.post(
            delivery.url, content=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT, follow_redirects=False
        )
        status = answer.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}: {answer.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    delivery.response_status = status
    delivery.error = error
    delays = settings.WEBHOOK_RETRY_DELAYS
    if not error:
        delivery.status, delivery.delivered_at = WebhookDelivery.Status.DELIVERED, timezone.now()
    elif delivery.attempts > len(delays):
        delivery.status = WebhookDelivery.Status.FAILED
    delivery.save(update_fields=["response_status", "error", "status", "delivered_at"])
    if delivery.status == WebhookDelivery.Status.PENDING:
        return delays[delivery.attempts - 1]
    return None
