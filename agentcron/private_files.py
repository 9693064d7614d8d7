"""Files and folders only their owner may read: the embedded data dir (0700) and its SQLite files
(0600): the ledger holds run results and errors, the embedded broker every queued message.

Folders created here are 0700 whatever the umask; files are created 0600 before SQLite or kombu
opens them (SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents with mode 0700; ``tighten`` also sets an existing
    folder of ours to 0700 (the data dir: it is agentcron's own)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    if tighten and not missing:
        _restrict(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` (empty) with mode 0600 if missing; an existing file of ours is set to 0600."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
        os.chmod(path, FILE_MODE)
    except FileExistsError:
        _restrict(path, FILE_MODE)
    return path


def _restrict(path: Path, mode: int) -> None:
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
        os.chmod(path, mode)
