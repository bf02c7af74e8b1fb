"""verify_chain: the whole chain, and every anchor line against it."""

from dataclasses import dataclass

from deployments.audit.anchors import AnchorError, read_anchors
from deployments.audit.chain import walk_chain


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str = ""
    # The newest anchor the chain was checked against (None: not anchored yet).
    anchored_seq: int | None = None
    anchored_at: str = ""


def verify_chain(batch_size: int = 2000) -> ChainReport:
    """Walk the whole chain in seq order; report the first event that does not
    fit, or the first event an anchor saw that is gone."""
    try:
        anchors = read_anchors()
    except AnchorError as exc:
        return ChainReport(False, 0, None, str(exc))
    seen_by_anchor = {anchor["seq"]: anchor for anchor in anchors}
    newest = max(anchors, key=lambda anchor: anchor["seq"], default=None)
    # The first anchor sealed the legacy prefix: no unkeyed event beyond it.
    legacy_through = anchors[0]["legacy_through"] if anchors else None
    anchored = {"anchored_seq": newest["seq"], "anchored_at": newest["at"]} if newest else {}

    walk = walk_chain(legacy_through=legacy_through, seen_by_anchor=seen_by_anchor, batch_size=batch_size)
    if walk.bad_seq is not None:
        return ChainReport(False, walk.checked, walk.bad_seq, walk.problem, **anchored)
    if newest is not None and newest["seq"] > walk.last_seq:
        missing = walk.last_seq + 1
        return ChainReport(
            False,
            walk.checked,
            missing,
            f"events from seq {missing} are missing: the anchor of {newest['at']} saw the chain up to "
            f"seq {newest['seq']}",
            **anchored,
        )
    return ChainReport(True, walk.checked, None, **anchored)
