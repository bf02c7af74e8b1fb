"""Run a command where this host has no user namespaces left to give: in a
user namespace of its own whose max_user_namespaces is 0, as a user other
than root there (uid 1, which is this machine's root outside, so files stay
readable). Usage: python -m tests.no_user_namespaces COMMAND [ARG ...]

Needs root outside (to map the namespace's ids). ctypes, because Python 3.11
has no os.unshare."""

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000


def main() -> None:
    uid, gid = os.geteuid(), os.getegid()  # before: inside, unmapped ids read as 65534
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    for name, text in (("uid_map", f"1 {uid} 1"), ("setgroups", "deny"), ("gid_map", f"1 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    # Still holding this namespace's capabilities (until exec as uid 1): forbid nested ones.
    with open("/proc/sys/user/max_user_namespaces", "w") as handle:
        handle.write("0")
    os.execv(sys.argv[1], sys.argv[1:])  # noqa: S606 - the test's own command


if __name__ == "__main__":
    main()
