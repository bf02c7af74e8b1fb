"""The gates' verdict on one window: the candidate's figures against the
baseline's, each check with the numbers behind it. Pure: the driver reads
the figures and acts on the verdict."""

from deployments.rollouts.plan import GATES


def _rate(figures: dict, reasons: list[str] | None) -> float | None:
    if not reasons or figures.get("requests") is None:
        return figures.get("failure_rate")
    if not figures["requests"]:
        return None
    counted = sum(count for reason, count in figures["failures"].items() if reason.upper() in reasons)
    return round(counted / figures["requests"], 6)


def _value(name: str, figures: dict, gate: dict) -> float | None:
    if name == "failure_rate":
        return _rate(figures, gate.get("reasons"))
    return figures.get(name)


def judge(gates: dict, baseline: dict, candidate: dict, golden: list[dict], *, sources: dict[str, str]) -> dict:
    """{"passed": False as soon as one check fails with enough evidence,
    else True; "checks": [...]}. A ratio check with fewer candidate requests
    than min_requests cannot fail: it says so ("too_few")."""
    enough = (candidate.get("requests") or 0) >= gates.get("min_requests", 1)
    checks = []
    for name in GATES:
        if name not in gates:
            continue
        gate = gates[name]
        ours, theirs = _value(name, candidate, gate), _value(name, baseline, gate)
        limit = max((theirs or 0.0) * gate["max_ratio"], gate["floor"])
        check = {
            "gate": name,
            "baseline": theirs,
            "candidate": ours,
            "limit": round(limit, 6),
            "rule": f"at most max({gate['max_ratio']:g} x baseline, {gate['floor']:g})",
            "source": sources.get(name, ""),
        }
        if ours is None:
            check.update(passed=None, note="no figure for the candidate yet")
        elif not enough:
            check.update(
                passed=None,
                note=f"{candidate.get('requests') or 0} of the {gates['min_requests']} requests needed to judge",
            )
        else:
            check["passed"] = ours <= limit
        checks.append(check)
    if golden:
        failed = [g for g in golden if not g["passed"]]
        checks.append(
            {
                "gate": "golden",
                "baseline": None,
                "candidate": f"{len(golden) - len(failed)}/{len(golden)} passed",
                "limit": "all",
                "rule": "every golden request answers its expected outputs within tolerance",
                "source": sources.get("golden", ""),
                "passed": not failed,
                "note": "; ".join(f"{g['name']}: {g['detail']}" for g in failed),
            }
        )
    return {"passed": not any(c["passed"] is False for c in checks), "checks": checks}
