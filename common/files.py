"""Atomic writes: a file or directory appears complete under its final name, or not at all.

Every writer in the suite (JSON, PNG, `.keras` models, checkpoints, generated datasets,
extracted archives) goes through `atomic_path`, so an interrupted run never leaves a
half-written file where a reader would take it for a good one.
"""
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, directory=False):
    """Yield a temporary sibling of `path` to write into; rename it onto `path` on success.

    The temporary name keeps `path`'s suffix (Keras and matplotlib pick the format from it).
    With `directory=True` the yielded path is an empty directory, and an existing `path`
    directory is replaced. On an exception the temporary file or directory is deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (Path, os.PathLike)):
        return str(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path, obj):
    """Write `obj` as indented JSON at `path`, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=_json_default)
            f.write("\n")
    return Path(path)


def writable_dir(path, flag="--out"):
    """Create directory `path` (and its parents) if needed and check a file can be written in it; return it
    as a Path. Call it before any heavy work.

    Raises `DlsuiteError` (one line naming `flag` and the path) when `path`, or a folder above it, is a
    file, or when it cannot be created or written (under /proc, read-only, no permission); the folders
    it created for the check are removed again then.
    """
    from common.errors import DlsuiteError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise DlsuiteError(f"{flag} {path} is a file, not a folder; name a folder (it is created if missing)")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise DlsuiteError(f"{flag} {path}: {above} is a file, not a folder; name a folder you can write to")
    created = next((p for p in [*reversed(path.parents), path] if not p.exists()), None)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise DlsuiteError(f"{flag} {path} cannot be written ({e.strerror or e}); name a folder you can write to") \
            from None
    return path
