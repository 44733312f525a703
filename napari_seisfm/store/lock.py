"""One writer at a time: the store lock, ``<store>.lock`` beside the store (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from ..errors import SeisfmError

_HELD: dict[str, int] = {}  # lock files this process holds -> depth (extract -> create re-enter)


class StoreLock:
    """Exclusive writer lock of a store: ``<store>.lock`` beside it, JSON ``{pid, host, started}``.

    Beside, not inside, so it survives ``--overwrite`` removing the store and exists before the store
    does. A lock whose pid is dead on this host is stale and taken over; a lock from another host is
    never guessed stale (the message says which file to remove). Re-entrant within one process.
    """

    def __init__(self, store):
        self.store = Path(store)
        self.path = self.store.with_name(self.store.name + ".lock")
        self._key = str(self.path.absolute())

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if self._key in _HELD:
            _HELD[self._key] += 1
            return
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(me))
        except OSError as exc:
            raise SeisfmError(f"{self.store}: cannot write the lock file {self.path} ({exc.strerror or exc})") from None
        try:
            for _ in range(20):
                try:
                    _link(tmp, self.path)  # atomic: the lock appears with its content, or not at all
                except FileExistsError:
                    owner = read_lock(self.path)
                    if owner is not None and not _is_stale(owner):
                        raise SeisfmError(
                            f"{self.store}: in use by another writer (pid {owner.get('pid')} on {owner.get('host')} "
                            f"since {owner.get('started')}); wait for it, or remove {self.path} if that process is gone"
                        ) from None
                    self._take_over(owner)
                    continue
                _HELD[self._key] = 1
                return
        finally:
            tmp.unlink(missing_ok=True)
        raise SeisfmError(f"{self.store}: could not take the lock {self.path} (other writers keep replacing it)")

    def _take_over(self, stale) -> None:
        """Remove a stale lock without removing a live one that replaced it meanwhile."""
        aside = self.path.with_name(f".{self.path.name}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else took it over first: try again
        if read_lock(aside) != stale:  # a live lock slipped in between our read and the rename: put it back
            with contextlib.suppress(OSError):
                _link(aside, self.path)
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        depth = _HELD.get(self._key, 0)
        if depth > 1:
            _HELD[self._key] = depth - 1
            return
        if depth == 1:
            del _HELD[self._key]
            owner = read_lock(self.path)
            if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
                self.path.unlink(missing_ok=True)


def _link(src: Path, dst: Path) -> None:
    """Hard link, or exclusive create + copy where the file system has no hard links."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(src.read_bytes())


def read_lock(path) -> dict | None:
    """The owner recorded in a lock file, or None when it is gone or unreadable."""
    try:
        owner = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _is_stale(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return False
    try:
        pid = int(owner.get("pid"))
    except (TypeError, ValueError):
        return True
    return pid <= 0 or not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:  # a killed but not yet reaped process (zombie) is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
