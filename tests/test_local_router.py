"""The endpoint router's configuration, rendered from endpoint records and
checked by HAProxy itself (no process started: the fast tier runs it)."""

import subprocess

from workers.targets.local import router

KEYS = ("first-key", "second-key")


def endpoint(**changes) -> router.Endpoint:
    fields = {
        "id": 7,
        "port": 20007,
        "key_digests": tuple(router.key_digest(key) for key in KEYS),
        "routes": (
            router.Route("sbaseline00", 90, "unix@/srv/a/http.sock", "unix@/srv/a/score.sock"),
            router.Route("scandidate0", 10, "127.0.0.1:41000", "127.0.0.1:41000"),
        ),
    }
    return router.Endpoint(**{**fields, **changes})


def haproxy_accepts(text: str, tmp_path) -> subprocess.CompletedProcess:
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    return subprocess.run([router.haproxy(), "-c", "-f", str(config)], capture_output=True, text=True)


def test_the_configuration_splits_routes_by_header_and_checks_keys_by_digest(tmp_path):
    text = router.render([endpoint()])
    checked = haproxy_accepts(text, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "WARNING" not in checked.stderr, checked.stderr
    for key in KEYS:
        assert key not in text
        assert router.key_digest(key) in text
    assert "bind 127.0.0.1:20007" in text
    # The split: /v2 to each deployment's Triton, the rest to its front (entry server or Triton).
    assert "server sbaseline00 unix@/srv/a/score.sock weight 90" in text  # outside the storage root: as it is
    assert "server sbaseline00 unix@/srv/a/http.sock weight 90" in text
    assert "server scandidate0 127.0.0.1:41000 weight 10" in text
    # The header picks one deployment whatever the split; an unknown name is a 404.
    assert "use_backend ep7_scandidate0_v2 if v2 { req.hdr(azureml-model-deployment) -m str scandidate0 }" in text
    assert "return status 404" in text
    assert "!{ req.hdr(azureml-model-deployment) -m str sbaseline00 scandidate0 }" in text


def test_sockets_under_a_deep_storage_root_stay_within_haproxys_limit(settings, tmp_path):
    # HAProxy takes at most 97 characters of a Unix socket's path.
    settings.STORAGE_ROOT = tmp_path / ("a-storage-root-as-deep-as-a-site-might-choose" * 3)
    sandbox = settings.STORAGE_ROOT / "deployments" / "123456" / "sandbox-85182802751e0de1" / "run"
    route = router.Route("s8518280275", 100, f"unix@{sandbox}/http.sock", f"unix@{sandbox}/score.sock")
    text = router.render([endpoint(routes=(route,))])
    assert "server s8518280275 unix@../deployments/123456/sandbox-85182802751e0de1/run/score.sock weight 100" in text
    router.root().mkdir(parents=True)
    checked = subprocess.run(
        [router.haproxy(), "-c", "-f", "/dev/stdin"], input=text, capture_output=True, text=True, cwd=router.root()
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_open_endpoint_asks_for_no_key_and_one_without_deployments_still_loads(tmp_path):
    open_one = router.render([endpoint(key_digests=())])
    assert "return status 401" not in open_one
    empty = router.render([endpoint(id=8, port=20008, routes=())])
    checked = haproxy_accepts(empty, tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_an_endpoint_whose_keys_cannot_be_read_is_closed_not_open(settings):
    from cryptography.fernet import Fernet

    from workers.targets.local import endpoints

    record = endpoints.create(5, auth=True)
    assert len(endpoints.router_view(record).key_digests) == 2
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key removed too early
    assert endpoints.router_view(record).key_digests == ("unreadable",)
    assert record.readable_keys() == []
    # A regeneration replaces the unreadable keys: the endpoint opens to its (new) keys again.
    endpoints.regenerate_key(record, "primary")
    assert len(endpoints.router_view(record).key_digests) == 2
    assert endpoints.read(5).readable_keys() == record.readable_keys()
