"""Atomic writes and a run-folder lock.

Files: write to a temporary name in the same folder, then rename; a reader (or a crash) never sees
a half-written file, either the old file or the new one. Folders (``atomic_dir``): build a temporary
sibling folder, rename it into place at the end. ``run_lock``: one writer per run folder at a time.
See docs/guarantees.md.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask() can only be read by setting it, which races with threads


def _named(e: OSError, path: str | os.PathLike) -> OSError:
    """The same error naming ``path`` (the file the user asked for, not a temporary name)."""
    return OSError(e.errno, os.strerror(e.errno) if e.errno else str(e), str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # a read-only or full folder: name the target, not the temporary file
        raise _named(e, path) from e
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would (umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            # name the file the user asked for, not our temporary one (a full disk: write() names none)
            raise _named(e, path) from e
        raise
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Build a folder all or nothing: yield a temporary sibling, rename it onto ``path`` at the end.

    ``path`` must not exist yet or be empty, unless ``replace``: then the old folder is moved aside,
    the new one renamed in, the old one removed. On any error the temporary folder is removed and
    ``path`` is left as it was; a process killed mid-way leaves only a hidden
    ``.<name>.*.partial`` sibling (see :func:`remove_partials`), never a partial ``path``.
    An OSError on a file inside names that file under ``path``, not under the temporary folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as e:
        raise _named(e, path) from e
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        old = None
        if path.is_dir() and (replace or not any(path.iterdir())):
            old = path.with_name(f".{path.name}.{os.getpid()}.partial")
            os.rename(path, old)
        os.rename(tmp, path)  # fails (EEXIST/ENOTEMPTY) rather than replace a folder someone filled
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno is not None:
            inside = e.filename and str(e.filename).startswith(str(tmp) + os.sep)
            if inside or not e.filename:  # name the file the user will look for, not the temporary one
                raise _named(e, path / os.path.relpath(e.filename, tmp) if inside else path) from e
        raise


def remove_partials(path: str | os.PathLike) -> None:
    """Remove the ``.<name>.*.partial`` siblings that killed :func:`atomic_dir` calls left (hold the lock)."""
    path = Path(path)
    if path.parent.is_dir():
        for p in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
            shutil.rmtree(p, ignore_errors=True)


LOCK_NAME = ".datacarto.lock"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _lock_holder(lock: Path) -> int | None:
    """The pid in a lock file, or None if it is unreadable (being written, or garbage)."""
    try:
        text = lock.read_text(encoding="utf-8").split()
        return int(text[0]) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, *, what: str = "another datacarto process") -> Iterator[Path]:
    """Hold ``<folder>/.datacarto.lock`` while writing into ``folder``; refuse if another process holds it.

    The lock file is created with ``O_CREAT | O_EXCL`` and holds the holder's pid. A lock whose pid
    is no longer running (a killed process) is stale: it is removed and taken over. Released (the
    file removed) when the block ends, also on errors. Raises DatacartoError when held by a live
    process. Not reentrant: a process that holds the lock and asks again is refused too.
    """
    from .errors import DatacartoError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    for attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _lock_holder(lock)
            if pid is not None and not _pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()  # stale: its process is gone
                continue
            if pid is None and attempt < 2:  # being written right now: look again
                import time

                time.sleep(0.05)
                continue
            holder = f"process {pid}" if pid is not None else what
            raise DatacartoError(f"{folder} is in use by {holder} (lock file {lock}): wait for it to finish, "
                                 f"or remove {lock} if no datacarto process is running") from None
        except OSError as e:
            raise _named(e, lock) from e
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as e:  # a full disk: no lock taken, none left behind
            os.close(fd)
            lock.unlink()
            raise _named(e, lock) from e
        os.close(fd)
        break
    else:
        raise DatacartoError(f"could not take the lock {lock}: it keeps changing hands")
    try:
        yield lock
    finally:
        if _lock_holder(lock) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...] | None = None, *,
                      flag: str = "--out", overwrite: bool = True) -> Path:
    """Refuse an output file with another extension (unless ``suffixes`` is None), one that names a
    directory, or (``overwrite=False``) one that exists, before any work."""
    from .errors import DatacartoError

    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise DatacartoError(f"unsupported output format for {path}: use {', '.join(suffixes)}")
    if path.is_dir():
        raise DatacartoError(f"{flag} {path} is a directory: name a file")
    if not overwrite:
        refuse_existing(path, flag)
    return path


def refuse_existing(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse to replace a file that exists (a reviewed queue, a corrected data set), naming ``--overwrite``."""
    from .errors import DatacartoError

    if os.path.lexists(path):
        raise DatacartoError(f"{flag} {path} exists: name a new file, or give --overwrite to replace it")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, _write)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_table_atomic(path: str | os.PathLike, table) -> Path:
    """Write a ``pyarrow.Table`` as Parquet, atomically."""
    import pyarrow.parquet as pq

    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_jsonl_atomic(path: str | os.PathLike, rows) -> Path:
    """One JSON object per line; floats written exactly (pandas' to_json keeps 10 digits), NaN as null."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    lines = (json.dumps({k: clean(v) for k, v in row.items()}, ensure_ascii=False, default=_json_default) + "\n"
             for row in rows)
    return write_text_atomic(path, "".join(lines))


def write_frame(df, path: str | os.PathLike, *, index: bool = True) -> Path:
    """Write a pandas DataFrame by extension (.parquet, .csv, .jsonl/.json), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    frame = df.reset_index() if index and df.index.name is not None else df
    if suffix == ".parquet":
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    if suffix == ".csv":
        return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    if suffix in (".jsonl", ".json"):
        import pyarrow as pa

        return write_jsonl_atomic(path, pa.Table.from_pandas(frame, preserve_index=False).to_pylist())
    from .errors import DatacartoError

    raise DatacartoError(f"unsupported output format {suffix!r} for {path}: use .parquet, .csv or .jsonl")


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, bytes)) or hasattr(obj, "isoformat"):
        return obj.decode() if isinstance(obj, bytes) else str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
