"""Races a person can cause end as a clear conflict, on pages and in the API,
never as a 500; a domain error a view leaves unhandled becomes a message."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse

from deployments.integrity import conflict_from
from deployments.models import Deployment, Environment, Target
from deployments.services.targets import target_create
from workers.targets.fake import adapter as fake_cloud

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(admin):
    fake_cloud.reset()
    dev, _ = Environment.objects.get_or_create(name="dev")
    return target_create(actor=admin, name="fake", kind="fake", environment=dev)


def test_a_unique_constraint_the_check_missed_reads_as_a_conflict_on_the_field(admin, fake, repository):
    Deployment.objects.create(name="twin", repository=repository, target=fake, spec_digest="a", created_by=admin)
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        Deployment.objects.create(name="twin", repository=repository, target=fake, spec_digest="b", created_by=admin)
    conflict = conflict_from(raised.value)
    assert conflict is not None
    assert conflict.path == "name"
    assert "already has a deployment of that name" in conflict.message


def test_a_constraint_nobody_can_trip_from_a_form_stays_an_error(admin):
    def orphan():
        with transaction.atomic():
            Target.objects.create(name="orphan", kind="fake", environment_id=987654)
            connection.check_constraints()  # foreign keys are checked at commit; ask now

    with pytest.raises(IntegrityError) as raised:
        orphan()
    assert conflict_from(raised.value) is None


def test_a_taken_name_is_shown_on_the_deploy_form(client, deployer, fake, repository):
    client.force_login(deployer)
    form = {"name": "same", "repository": repository.pk, "target": fake.pk, "mode": "triton", "worker_count": 1}
    assert client.post(reverse("deployment-create"), form).status_code == 302
    again = client.post(reverse("deployment-create"), form)
    assert again.status_code == 400
    assert "already has a deployment named same" in again.content.decode()
    assert Deployment.objects.filter(name="same").count() == 1


def test_a_domain_error_a_view_leaves_unhandled_is_a_message_not_a_500(client, admin, fake):
    client.force_login(admin)
    page = client.get(reverse("target", args=[fake.pk]))
    answer = client.post(reverse("target-adopt", args=[fake.pk]), HTTP_REFERER=page.wsgi_request.build_absolute_uri())
    assert answer.status_code == 302
    assert answer["Location"].endswith(reverse("target", args=[fake.pk]))
    shown = client.get(answer["Location"]).content.decode()
    assert "do not support adopting services deployed without the dashboard" in shown
    htmx = client.post(reverse("target-adopt", args=[fake.pk]), HTTP_HX_REQUEST="true")
    assert htmx.status_code == 400
    assert 'class="flash flash-error"' in htmx.content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_five_concurrent_creates_of_one_name_give_one_201_and_four_409s(admin, fake, repository, token_for):
    header = token_for(admin)
    body = {"name": "raced", "repository": repository.pk, "target": fake.pk}
    start = threading.Barrier(5)
    answers = []

    def create():
        client = Client()
        start.wait()
        try:
            answer = client.post(
                reverse("api:deployments"), body, content_type="application/json", HTTP_AUTHORIZATION=header
            )
            answers.append((answer.status_code, answer.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409, 409]
    for status, answer in answers:
        if status == 409:
            assert answer["errors"][0]["code"] == "conflict"
            assert answer["errors"][0]["path"] == "name"
    assert Deployment.objects.filter(name="raced").count() == 1
