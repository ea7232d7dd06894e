"""The bubblewrap (``bwrap``) command line both sandboxes build: the server's fork server
(``workers.sandbox.isolation``) and the client's isolated prediction (``lwm_client.isolated``).

One implementation of what the two views share: new user, PID, mount, network, IPC and UTS
namespaces, a cleared environment, read-only ``/usr`` (with the merged-/usr links), the
Python runtime and the code read-only, ``/proc``, ``/dev``, a size-limited ``/tmp`` as the
working folder, and bwrap's own root tmpfs remounted read-only. What differs (identity, the
call folders, extra files) is passed in. Standard library only: the client ships ``specs``
without the server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

SYSTEM_LINKS = ("bin", "lib", "lib64", "sbin")  # symlinks into /usr on merged-/usr systems, folders otherwise


def runtime_dirs() -> list[str]:
    """The interpreter's prefix and the virtualenv (the same folder outside one), resolved."""
    return list(dict.fromkeys([str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve())]))


def bwrap_argv(
    bwrap: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    ro_binds: Iterable[tuple[str, str]],
    mounts: Sequence[str] = (),
    options: Sequence[str] = (),
    tmp_bytes: int,
) -> list[str]:
    """The ``bwrap`` argv running ``command``.

    Parameters
    ----------
    env : the whole environment inside (``--clearenv`` first).
    ro_binds : (host path, path inside) pairs shown read-only, in order; repeats are dropped.
    mounts : further bwrap mount options, in order, after the read-only binds (e.g. the call folder).
    options : further bwrap options before the environment (e.g. ``--uid``, ``--hostname``).
    tmp_bytes : size limit of the ``/tmp`` tmpfs, the only writable place besides ``mounts``.
    """
    argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", *options]
    argv.append("--clearenv")
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in SYSTEM_LINKS:
        target = Path("/") / link
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            argv += ["--ro-bind", str(target), str(target)]
    for source, inside in dict.fromkeys(ro_binds):  # dict: keeps order, drops repeats
        argv += ["--ro-bind", source, inside]
    argv += [*mounts, "--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    # bwrap's root is a tmpfs with no size limit, holding the mount points above (e.g. the folders
    # leading to the virtualenv): read-only, so the only writable places are the size-limited /tmp
    # and the writable ``mounts``.
    argv += ["--chdir", "/tmp", "--remount-ro", "/"]
    return [*argv, "--", *command]
