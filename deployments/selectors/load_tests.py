"""Reads of load tests and config searches, permission-filtered."""

from deployments.models import ConfigSearch, LoadTest


def load_test_or_none(user, test_id: int) -> LoadTest | None:
    return (
        LoadTest.objects.visible_to(user)
        .select_related("deployment__target__environment", "requested_by", "approved_by")
        .filter(pk=test_id)
        .first()
    )


def load_tests_of(user, deployment) -> list[LoadTest]:
    return list(LoadTest.objects.visible_to(user).filter(deployment=deployment).select_related("requested_by")[:20])


def comparable(user, test: LoadTest) -> list[LoadTest]:
    """Runs a test can be set beside: finished ones of any deployment the
    user sees with the same model (before/after a config change, one
    deployment against another, direct Triton against entry-script mode)."""
    return [other for other in finished_tests(user) if other.pk != test.pk][:30]


def finished_tests(user) -> list[LoadTest]:
    """The latest finished runs the user sees, for picking two to compare."""
    return list(
        LoadTest.objects.visible_to(user).filter(status=LoadTest.Status.SUCCEEDED).select_related("deployment")[:50]
    )


def config_search_or_none(user, search_id: int) -> ConfigSearch | None:
    return (
        ConfigSearch.objects.visible_to(user)
        .select_related("target__environment", "repository__line", "deployment", "created_revision", "requested_by")
        .filter(pk=search_id)
        .first()
    )


def config_searches_of(user, deployment) -> list[ConfigSearch]:
    return list(ConfigSearch.objects.visible_to(user).filter(deployment=deployment).select_related("repository")[:10])
