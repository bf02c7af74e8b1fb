"""The gates' verdict on one window: the candidate's figures against the
baseline's, each check with the numbers behind it. Pure: the driver reads
the figures and acts on the verdict."""

import math

from deployments.rollouts.plan import GATES

# A percentile of a few requests is their slowest one: to say a candidate's
# p95 is over its limit, the window needs a few requests beyond it (three
# beyond the 95th is 60 requests; beyond the 99th, 300).
_BEYOND = 3
_QUANTILES = {"p95_ms": 0.95, "p99_ms": 0.99}


def requests_needed(gate: str, gates: dict) -> int:
    """Candidate requests a window needs before `gate` may fail it."""
    needed = gates.get("min_requests", 1)
    if gate in _QUANTILES:
        needed = max(needed, math.ceil(_BEYOND / (1 - _QUANTILES[gate])))
    return needed


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
    else True; "checks": [...]}. A check with fewer candidate requests than
    it needs (requests_needed) cannot fail: it says how many it has."""
    served = candidate.get("requests") or 0
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
        elif served < requests_needed(name, gates):
            check.update(passed=None, note=f"{served} of the {requests_needed(name, gates)} requests needed to judge")
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
