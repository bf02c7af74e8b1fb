"""Known vulnerabilities in the locked dependencies: pip-audit over
requirements/app.lock (exact versions, hashes), failing when a vulnerable
version has a fixed release to move to.

    .venv/bin/python .ci/audit_dependencies.py [--strict]

A dependency pip-audit could not look up (its vulnerability service is
unreachable, as on machines with only a package mirror) is listed; with
--strict that fails the run too.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def verdict(report: dict, *, strict: bool) -> tuple[int, list[str]]:
    """(exit status, lines to print) for a pip-audit JSON report."""
    lines, fixable, skipped = [], 0, 0
    for dependency in report.get("dependencies", []):
        name, version = dependency.get("name"), dependency.get("version", "?")
        if dependency.get("skip_reason"):
            skipped += 1
            continue
        for vuln in dependency.get("vulns", []):
            fixes = vuln.get("fix_versions") or []
            if fixes:
                fixable += 1
                lines.append(f"FIX AVAILABLE {name} {version}: {vuln['id']} -> {', '.join(fixes)}")
            else:
                lines.append(f"no fix yet    {name} {version}: {vuln['id']}")
    total = len(report.get("dependencies", []))
    if skipped:
        lines.append(f"{skipped} of {total} dependencies could not be audited (vulnerability service unreachable?)")
    lines.append(f"{fixable} known vulnerabilities with a fix, in {total} locked dependencies")
    failed = fixable > 0 or (strict and skipped > 0)
    return (1 if failed else 0), lines


def main() -> int:
    strict = "--strict" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "audit.json"
        subprocess.run(  # noqa: S603 - fixed arguments
            [
                str(Path(sys.executable).parent / "pip-audit"),
                "--requirement",
                str(ROOT / "requirements" / "app.lock"),
                "--disable-pip",
                "--require-hashes",
                "--progress-spinner",
                "off",
                "--format",
                "json",
                "--output",
                str(output),
            ],
            check=False,
        )
        if not output.exists():
            print("pip-audit produced no report", file=sys.stderr)
            return 2
        status, lines = verdict(json.loads(output.read_text()), strict=strict)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
