"""Pod process launcher: a private mount namespace with the pod's volumes at their mountPaths, then exec.

Run by the node agent as `python -I -S podinit.py PLAN_JSON STATUS_FD` (standard library only, so
neither the pod's environment nor its PYTHONPATH can break it). PLAN_JSON holds the command
(`argv`), the container's `cwd` (workingDir, or null), the pod's own folder (`scratch`, the working
directory without workingDir), an empty `staging` folder, the pod's `hostname` (its own UTS
namespace), the `mounts` from `mounts.plan_mounts` and the host folders to `keep` visible.
On success the process becomes the pod's command (same pid, so signals and PDEATHSIG still apply)
and STATUS_FD closes on exec; on failure one JSON line {"reason", "message"} goes to STATUS_FD.

The host's file tree stays the pod's root - the venv, /tmp and the project tree stay visible - and
a mountPath whose folder does not exist is made without touching the host: its nearest existing
ancestor is "shadowed" in the pod's namespace by a tmpfs holding bind mounts of every original
entry, plus the new folder. Everything is private to the namespace, which the kernel tears down
with the pod's last process: nothing is left on the host or in its mount table.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import stat
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
# statvfs f_flag bits (ST_*) -> mount flags: a read-only remount must keep them (and must, in a user
# namespace, where they are locked).
_KEPT_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
               (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The pod's mounts cannot be made; the message goes into the container status."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source and os.fsencode(source), os.fsencode(target), fstype and fstype.encode(),
                       ctypes.c_ulong(flags), data and data.encode()), f"mount {source or fstype} on {target}")


def enter_namespaces(hostname: str | None) -> None:
    """unshare -m -u as root; unprivileged, in a user namespace mapping our own ids (so mounts are
    allowed). The UTS namespace gives the pod its own hostname, as a container has."""
    if _libc.unshare(CLONE_NEWNS | CLONE_NEWUTS) != 0:
        uid, gid = os.getuid(), os.getgid()
        if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS) != 0:
            errno = ctypes.get_errno()
            raise SetupError(
                f"cannot create a mount namespace for the pod's volumes ({os.strerror(errno)}): run the node "
                "agent as root, or enable unprivileged user namespaces (sysctl user.max_user_namespaces)")
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    # Private: nothing mounted here propagates back to the host's namespace (or from it).
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if hostname:
        _check(_libc.sethostname(hostname.encode(), len(hostname.encode())), f"sethostname {hostname}")


class Namespace:
    """The pod's view of the file tree, grown one mount at a time."""

    def __init__(self, staging: str, keep: dict[str, int], placeholders: frozenset[str] = frozenset()) -> None:
        self.staging = staging  # an empty folder of the pod's own, used once to build a new root
        # Folders backed by a tmpfs of ours (shadowed ones and those made in them): mkdir is safe there,
        # while a bound entry inside a shadowed folder is still the host's own.
        self.ours: set[str] = set()
        self.keep = keep  # host folders to keep visible (symlinks resolved) -> open descriptors
        # Mount points for host entries that an earlier start of the container made inside a writable
        # volume (the volume outlives a restart, the bind mount does not), and those made now.
        self.earlier_placeholders = placeholders
        self.placeholders: list[str] = []

    def _shadow(self, folder: str) -> None:
        """Cover `folder` with a tmpfs holding bind mounts of its original entries."""
        st = os.stat(folder)
        options = f"mode={stat.S_IMODE(st.st_mode):o},uid={st.st_uid},gid={st.st_gid}"
        original = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            target = self.staging if folder == "/" else folder
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
            for name in os.listdir(original):
                # /proc/self/fd/N/<name> still reaches the covered entry (and what is mounted on it).
                self._copy_entry(f"/proc/self/fd/{original}/{name}", os.path.join(target, name))
            if folder == "/":
                # A mount on top of "/" is not seen from the old root: move it there and chroot into it
                # (what switch_root does), then drop the view of it that the bind of /tmp (say) carried.
                os.chdir(self.staging)
                mount(self.staging, "/", None, MS_MOVE)
                os.chroot(".")
                os.chdir("/")
                _libc.umount2(os.fsencode(self.staging), MNT_DETACH)  # fails harmlessly when not there
        finally:
            os.close(original)
        self.ours.add(folder)

    @staticmethod
    def _copy_entry(source: str, target: str) -> None:
        st = os.lstat(source)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), target)
            return
        if stat.S_ISDIR(st.st_mode):
            if not os.path.isdir(target):  # an empty folder left by an earlier start is reused
                os.mkdir(target)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
        mount(source, target, None, MS_BIND | MS_REC)

    def mountpoint(self, path: str, is_dir: bool) -> str:
        """Make `path` exist in this namespace (never on the host); returns it with symlinks resolved."""
        full = os.path.realpath(path)
        if os.path.lexists(full):
            if os.path.isdir(full) != is_dir:
                kind = "a folder" if is_dir else "a file"
                raise SetupError(f"mountPath {path}: exists and is not {kind}")
            return full
        ancestor = os.path.dirname(full)
        missing = [os.path.basename(full)]
        while not os.path.lexists(ancestor):
            missing.insert(0, os.path.basename(ancestor))
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise SetupError(f"mountPath {path}: {ancestor} is not a folder")
        if ancestor not in self.ours:
            self._shadow(ancestor)
        current = ancestor
        for i, name in enumerate(missing):
            current = os.path.join(current, name)
            if i < len(missing) - 1 or is_dir:
                os.mkdir(current, 0o755)
                self.ours.add(current)
            else:
                os.close(os.open(current, os.O_WRONLY | os.O_CREAT, 0o644))
        return full

    def bind(self, source: int, target: str, read_only: bool) -> None:
        """Bind the folder or file open as `source` (an O_PATH descriptor) at `target`."""
        try:
            is_dir = stat.S_ISDIR(os.fstat(source).st_mode)
            where = self.mountpoint(target, is_dir)
            mount(f"/proc/self/fd/{source}", where, None, MS_BIND | MS_REC)
            self.ours.discard(where)  # now the volume's folder, not our tmpfs
            self._keep_visible(where, read_only)
            if read_only:
                flags = os.statvfs(where).f_flag
                kept = sum(ms for st, ms in _KEPT_FLAGS if flags & st)
                mount(None, where, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError as e:
            raise SetupError(f"mountPath {target}: {e.strerror}") from e

    def _keep_visible(self, covering: str, read_only: bool) -> None:
        """The host folders to keep (open in self.keep) stay visible under the volume just mounted.

        These are the host folders a pod process runs from (its venv, the project tree) or that tests
        hand files through (/tmp). A writable volume mounted exactly there (an emptyDir at /tmp, as
        charts with a read-only root filesystem have) keeps its own entries and new files, and shows
        the host's entries beside them (also after a restart, over the mount points an earlier start
        left in the volume, which it listed in the pod's folder); a volume mounted above one gets it
        bound back in.
        """
        for path, host in self.keep.items():
            if path == covering and not read_only:
                for name in os.listdir(host):
                    inside = os.path.join(path, name)
                    if os.path.lexists(inside) and inside not in self.earlier_placeholders:
                        continue  # the volume's own entry wins
                    with contextlib.suppress(OSError, SetupError):  # an entry the host removed meanwhile
                        self._copy_entry(f"/proc/self/fd/{host}/{name}", inside)
                        self.placeholders.append(inside)
            elif path.startswith(covering.rstrip("/") + "/"):
                mount(f"/proc/self/fd/{host}", self.mountpoint(path, is_dir=True), None, MS_BIND | MS_REC)


PLACEHOLDERS_FILE = ".podinit-placeholders.json"  # in the pod's own folder, beside its volumes


def _read_placeholders(scratch_fd: int) -> frozenset[str]:
    try:
        fd = os.open(PLACEHOLDERS_FILE, os.O_RDONLY | os.O_CLOEXEC, dir_fd=scratch_fd)
    except FileNotFoundError:
        return frozenset()
    with os.fdopen(fd) as f:
        listed = json.load(f)
    return frozenset(p for p in listed if isinstance(p, str))


def _write_placeholders(scratch_fd: int, paths: list[str]) -> None:
    fd = os.open(PLACEHOLDERS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600, dir_fd=scratch_fd)
    with os.fdopen(fd, "w") as f:
        json.dump(sorted(paths), f)


def _report(status_fd: int, reason: str, message: str) -> None:
    os.write(status_fd, (json.dumps({"reason": reason, "message": message}) + "\n").encode())


def _open_sources(mounts: list[dict[str, Any]]) -> list[int]:
    """Every source, opened before the first mount: a volume mounted over /tmp (say) must not hide
    the sources of the mounts after it, which live in the agent's folder."""
    fds = []
    for m in mounts:
        try:
            fds.append(os.open(m["source"], os.O_PATH | os.O_CLOEXEC))
        except OSError as e:
            raise SetupError(f"mountPath {m['target']}: source {m['source']}: {e.strerror}") from e
    return fds


def setup(plan: dict[str, Any]) -> None:
    """Mounts and working directory; the pod's own folder is the working directory without workingDir."""
    mounts, cwd, scratch, hostname = plan["mounts"], plan.get("cwd"), plan["scratch"], plan.get("hostname")
    if mounts or hostname or (cwd and not os.path.isdir(cwd)):
        enter_namespaces(hostname)
        # Opened in the new namespace (a descriptor from the host's namespace cannot be a bind source).
        scratch_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        sources = _open_sources(mounts)
        keep = {os.path.realpath(k): os.open(k, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                for k in plan.get("keep") or [] if os.path.isdir(k)}
        namespace = Namespace(plan["staging"], keep, _read_placeholders(scratch_fd))
        for m, fd in zip(mounts, sources, strict=True):
            namespace.bind(fd, m["target"], m["readOnly"])
            os.close(fd)
        _write_placeholders(scratch_fd, namespace.placeholders)
        if cwd and not os.path.isdir(cwd):
            namespace.mountpoint(cwd, is_dir=True)  # runtimes create a missing workingDir
        if not cwd and not os.path.isdir(scratch):
            os.fchdir(scratch_fd)  # a volume covers the pod's folder: still start in it
            return
    os.chdir(cwd or scratch)


def main(argv: list[str]) -> int:
    plan = json.loads(argv[1])
    status_fd = int(argv[2])
    os.set_inheritable(status_fd, False)  # closes on exec: EOF tells the agent the command started
    try:
        setup(plan)
    except (SetupError, OSError) as e:
        message = str(e) if isinstance(e, SetupError) else f"{e.filename or 'pod setup'}: {e.strerror}"
        _report(status_fd, "CreateContainerError", message)
        return 1
    command = plan["argv"]
    try:
        os.execvp(command[0], command)
    except OSError as e:
        _report(status_fd, "RunContainerError", f"cannot start {command[0]!r}: {e.strerror}")
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
