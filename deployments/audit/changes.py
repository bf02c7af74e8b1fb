"""What one audit event changed: its `before` and `after` compared key by
key, for the event's page and the API. Objects inside them (a spec's
resources, a traffic split) are compared key by key too, each key named by
its path ("resources.gpu_cores"); lists and other values are compared whole."""

import difflib
import json
from dataclasses import dataclass
from typing import Any

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"


@dataclass(frozen=True)
class Change:
    path: str
    kind: str
    before: Any = None
    after: Any = None

    @property
    def before_text(self) -> str:
        return readable(self.before)

    @property
    def after_text(self) -> str:
        return readable(self.after)

    @property
    def spans_lines(self) -> bool:
        """Shown as a block (an entry script, an object) rather than inline."""
        return "\n" in self.before_text or "\n" in self.after_text

    @property
    def text_diff(self) -> str:
        """A line diff of a changed text of several lines (an entry script):
        the two whole versions side by side hide a one-line change."""
        if self.kind != CHANGED or not (isinstance(self.before, str) and isinstance(self.after, str)):
            return ""
        if not self.spans_lines:
            return ""
        lines = difflib.unified_diff(
            self.before.splitlines(), self.after.splitlines(), "before", "after", lineterm="", n=2
        )
        return "\n".join(lines)


def readable(value) -> str:
    """Text as it is; anything else as JSON, objects indented and sorted."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _same(a, b) -> bool:
    # Compared as JSON, not with ==: True == 1 in Python, and the log must
    # show a flag that became a number.
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def changes(before, after, path: str = "") -> list[Change]:
    """Every key of either side with what happened to it, sorted by key at
    each level; an object that is only on one side (a creation, a deletion)
    counts as empty there, so each of its keys is added or removed."""
    if before is None and after is None:
        return []
    if isinstance(before, dict) or isinstance(after, dict):
        if before is None:
            before = {}
        if after is None:
            after = {}
    if not (isinstance(before, dict) and isinstance(after, dict)):
        if _same(before, after):
            return [Change(path, UNCHANGED, before, after)]
        if before is None:
            return [Change(path, ADDED, after=after)]
        if after is None:
            return [Change(path, REMOVED, before=before)]
        return [Change(path, CHANGED, before, after)]
    found = []
    for key in sorted(set(before) | set(after), key=str):
        here = f"{path}.{key}" if path else str(key)
        if key not in after:
            found.append(Change(here, REMOVED, before=before[key]))
        elif key not in before:
            found.append(Change(here, ADDED, after=after[key]))
        elif _same(before[key], after[key]):
            found.append(Change(here, UNCHANGED, before[key], after[key]))
        elif isinstance(before[key], dict) and isinstance(after[key], dict):
            found.extend(changes(before[key], after[key], here))
        else:
            found.append(Change(here, CHANGED, before[key], after[key]))
    return found
