"""CI's dependency audit: which pip-audit reports fail the run."""

import importlib.util

from tests.processes import ROOT

spec = importlib.util.spec_from_file_location("audit_dependencies", ROOT / ".ci" / "audit_dependencies.py")
audit_dependencies = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_dependencies)


def report(*dependencies):
    return {"dependencies": list(dependencies), "fixes": []}


def test_a_vulnerability_with_a_fix_fails_the_run():
    status, lines = audit_dependencies.verdict(
        report(
            {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["5.2.1"]}]},
            {"name": "numpy", "version": "1.26.4", "vulns": []},
        ),
        strict=False,
    )
    assert status == 1
    assert "FIX AVAILABLE django 5.2.0: PYSEC-1 -> 5.2.1" in lines


def test_one_without_a_fix_is_reported_but_passes():
    status, lines = audit_dependencies.verdict(
        report({"name": "adal", "version": "1.2.7", "vulns": [{"id": "GHSA-x", "fix_versions": []}]}), strict=False
    )
    assert status == 0
    assert "no fix yet    adal 1.2.7: GHSA-x" in lines


def test_unaudited_dependencies_fail_only_when_strict():
    skipped = report({"name": "adal", "version": "1.2.7", "skip_reason": "Dependency not found on PyPI"})
    assert audit_dependencies.verdict(skipped, strict=False)[0] == 0
    assert audit_dependencies.verdict(skipped, strict=True)[0] == 1
