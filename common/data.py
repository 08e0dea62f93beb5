"""Dataset download, cache and extraction, shared by every domain.

`resolve_dataset` is what a domain reader calls: it returns a directory holding the
dataset's own layout, taken from `--data-dir`, from the cache, or downloaded from
the canonical address (SHA-1 checked). Offline it fails within seconds with one
line naming what is missing, where it looked, the address, and the way out.
"""
import hashlib
import os
import socket
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from common.errors import DatasetError
from common.files import atomic_path

CACHE_ENV = "DLSUITE_CACHE"
DEFAULT_TIMEOUT_S = 5.0
_CHUNK = 1 << 20
_RESOLVED = {}  # dataset name -> directory, as resolve_dataset found it in this process


def resolved_datasets():
    """Name -> directory of every dataset `resolve_dataset` returned in this process (what a run read)."""
    return dict(_RESOLVED)


def cache_root():
    """The dataset cache: `$DLSUITE_CACHE`, else `~/.cache/dlsuite`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dlsuite")


def demo_cache_dir(name, *parts, version):
    """Cache folder of an offline `--demo` set: `cache_root()/name/parts...` with `-v<version>`
    added to the last component. `version` is the generating module's `GENERATOR_VERSION` (an int
    bumped whenever the bytes the generator writes change), so a changed generator writes a fresh
    folder instead of silently reusing a set cached by its older code."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an int >= 1, got {version!r}")
    names = [name, *parts]
    names[-1] = f"{names[-1]}-v{version}"
    return cache_root().joinpath(*names)


def shared_data_dir():
    """`../shared/data` beside the project checkout (real test data), or None if absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


def sha1_of(path):
    """Hex SHA-1 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url, sha1, cache_dir=None, timeout=DEFAULT_TIMEOUT_S):
    """Download `url` into `cache_dir` (default `cache_root()`) and return its path.

    A cached file with the right SHA-1 is reused. The body streams to a temporary file
    that is renamed into place only after its SHA-1 matches; on a mismatch nothing is
    left behind and `DatasetError` names both hashes. Connection failures raise
    `DatasetError` after at most `timeout` seconds of silence, with no retries.
    """
    cache_dir = Path(cache_dir or cache_root())
    target = cache_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if target.exists() and (sha1 is None or sha1_of(target) == sha1):
        return target
    digest = hashlib.sha1()
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", None) or e
                raise DatasetError(
                    f"cannot download {url} ({reason}); put the files in a directory and pass "
                    f"--data-dir, or copy {target.name} into {cache_dir}"
                ) from None
        if sha1 is not None and digest.hexdigest() != sha1:
            raise DatasetError(
                f"SHA-1 mismatch for {url}: expected {sha1}, got {digest.hexdigest()}; "
                "the download is corrupt or the file changed upstream (nothing was cached)"
            )
    return target


def _safe_members(names, dest):
    root = dest.resolve()
    for name in names:
        path = (root / name).resolve()
        if path != root and root not in path.parents:
            raise DatasetError(f"archive entry {name!r} escapes the target directory {dest}; refusing to extract")


def extract(archive, dest):
    """Extract a zip or tar archive into `dest` (created) and return `dest`.

    Entries that would land outside `dest` (absolute paths, `..`, links pointing out)
    raise `DatasetError` before anything is written. Extraction goes to a temporary
    sibling directory that is renamed into place, so a failure leaves no half tree.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with atomic_path(dest, directory=True) as tmp:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    _safe_members(z.namelist(), tmp)
                    z.extractall(tmp)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as t:
                    members = t.getmembers()
                    _safe_members([m.name for m in members], tmp)
                    for m in members:
                        if m.issym() or m.islnk():
                            _safe_members([str(Path(m.name).parent / m.linkname)], tmp)
                    t.extractall(tmp, filter="data")
            else:
                raise DatasetError(f"{archive} is not a zip or tar archive (corrupt download?); delete it and retry")
        return dest
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise DatasetError(f"corrupt archive {archive} ({e}); delete it and retry") from None


def layouts(root, required, folders=None):
    """Every directory among `root` and its sub-directories holding every `required` path, `root`
    first: the named `folders` below it, or else every sub-directory one level down, then two, each
    level sorted."""
    root = Path(root)
    if folders is not None:
        candidates = [root] + [root / f for f in folders]
    else:
        candidates = [root] + sorted(p for p in root.glob("*") if p.is_dir())
        candidates += sorted(p for p in root.glob("*/*") if p.is_dir())
    return [c for c in candidates if all((c / r).exists() for r in required)]


def find_layout(root, required):
    """Return `root` or the first sub-directory (two levels deep) holding every `required` path."""
    return next(iter(layouts(root, required)), None)


def resolve_dataset(name, *, required, url=None, sha1=None, data_dir=None, hint="", folders=None,
                    timeout=DEFAULT_TIMEOUT_S):
    """Return a directory holding the dataset's own layout (all `required` relative paths).

    With `data_dir` the files must be there, or in the one folder one or two levels below that holds
    them all (several such folders are an error, not a guess); `folders` (e.g. the folder the archive
    extracts to) narrows that search to `data_dir/<folder>`, nothing deeper. Otherwise the
    extracted copy in `cache_root()/name` is used, downloading and extracting `url`
    first when needed. `hint` names the offline alternative (e.g. "--demo"). The result
    is remembered for `resolved_datasets` (recorded in a run's config.json).
    """
    found = _resolve(name, required, url, sha1, data_dir, hint, folders, timeout)
    _RESOLVED[name] = found.resolve()
    return found


def _resolve(name, required, url, sha1, data_dir, hint, folders, timeout):
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DatasetError(f"--data-dir {data_dir} does not exist or is not a directory")
        found = layouts(data_dir, required, folders)
        if not found:
            missing = next(r for r in required if not (data_dir / r).exists())
            raise DatasetError(f"{name}: {data_dir / missing} not found; --data-dir must hold {' and '.join(required)}"
                               + (f" itself, or {' or '.join(f + '/' for f in folders)} holding them" if folders else ""))
        if found[0] == data_dir:
            return data_dir
        if len(found) > 1:  # e.g. --data-dir /tmp holding several runs' copies: which one is meant?
            raise DatasetError(f"{name}: --data-dir {data_dir} holds {len(found)} copies ({found[0]}, {found[1]}"
                               f"{', ...' if len(found) > 2 else ''}); pass the folder to read")
        return found[0]  # the one copy below --data-dir (config.json records which folder was read)
    extracted = cache_root() / name
    found = find_layout(extracted, required) if extracted.is_dir() else None
    if found is not None:
        return found
    if url is None:
        raise DatasetError(f"{name} is not in {extracted}; pass --data-dir" + (f" or use {hint}" if hint else ""))
    try:
        archive = download(url, sha1, cache_root() / "downloads", timeout=timeout)
    except DatasetError as e:
        raise DatasetError(
            f"{name} not found in {extracted} and the download failed: {e}" + (f"; or use {hint}" if hint else "")
        ) from None
    extract(archive, extracted)
    found = find_layout(extracted, required)
    if found is None:
        raise DatasetError(f"{archive} does not contain {', '.join(required)}; is it the right archive?")
    return found


def epoch_seed(seed, epoch):
    """A 32-bit seed for (`seed`, `epoch`) from `numpy.random.SeedSequence`.

    Unlike `seed + epoch`, run seed s at epoch e+1 does not replay run seed s+1 at epoch e:
    different pairs give unrelated streams. Every per-epoch shuffle, negative sample and
    augmentation draws from this (or `epoch_rng`), so a resumed run sees the same data.
    """
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


def epoch_rng(seed, epoch):
    """`numpy.random.Generator` for (`seed`, `epoch`); see `epoch_seed`."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))


def shuffle_for_epoch(dataset, buffer_size, seed, epoch):
    """Shuffle `dataset` in an order fixed by (`seed`, `epoch`).

    Use it inside the `epoch -> Dataset` function given to `common.training.fit`: a
    resumed run then sees the same batches, and 1 and N replicas see the same order
    (tf.data's default `reshuffle_each_iteration=True` changes the order whenever Keras
    iterates the dataset one extra time, which it does under MirroredStrategy).
    """
    return dataset.shuffle(buffer_size, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)


def epoch_dataset(arrays, batch_size, seed, epoch, fill_last=False, groups=None):
    """Batches of `arrays` (a nested tuple of equal-length arrays) in a NumPy permutation
    drawn from `epoch_rng(seed, epoch)`.

    Shuffling in NumPy rather than with `Dataset.shuffle` keeps the order identical
    however the strategy distributes the pipeline, so 1 and N replicas see the same batches.
    The batches are cut in NumPy too (full batches as one `(batches, batch_size, ...)` array,
    then the short last one): the same batches as `from_tensor_slices(...).batch(batch_size)`
    without tf.data's per-example work, which cost ML-100K MF 0.23 s of its 0.35 s an epoch.
    `fill_last`: top the short last batch up with the permutation's first examples (cyclically,
    for data smaller than a batch), so every batch has one shape and an XLA step compiles once
    (a second shape cost ML-100K MF a second compilation, 0.9 s); those examples are seen twice.
    `groups`: the example indices of each group (`group_members`), for a cache-blocked shuffle: the groups
    in a random order, each group's examples together and in a random order (all drawn from the same
    generator; 0.57 s for 21M examples in 32 groups, against 0.97 s for the plain permutation).
    """
    import tensorflow as tf

    leaves = tf.nest.flatten(arrays)
    n = len(leaves[0])
    rng = epoch_rng(seed, epoch)
    if groups is None:
        order = rng.permutation(n)
    else:
        order = np.concatenate([rng.permutation(groups[g]) for g in rng.permutation(len(groups))])
    if fill_last and n % batch_size:
        order = np.resize(order, -(-n // batch_size) * batch_size)
        n = len(order)
    shuffled = [np.asarray(a)[order] for a in leaves]
    full = n // batch_size * batch_size
    if not full:  # one short batch, or none for no data
        return tf.data.Dataset.from_tensor_slices(tf.nest.pack_sequence_as(arrays, shuffled)).batch(batch_size)
    dataset = tf.data.Dataset.from_tensor_slices(tf.nest.pack_sequence_as(
        arrays, [a[:full].reshape(-1, batch_size, *a.shape[1:]) for a in shuffled]))
    if full < n:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(
            tf.nest.pack_sequence_as(arrays, [a[full:] for a in shuffled])))
    return dataset.prefetch(tf.data.AUTOTUNE)


def group_members(groups):
    """The ascending example indices of each group id 0..max of int `groups` `(n,)` (ids >= 0): a list of int64
    arrays, what `epoch_dataset(groups=...)` takes. Computed once per dataset, not per epoch (0.46 s for 21M
    examples; up to 65,536 groups the stable sort is NumPy's O(n) radix sort on 16-bit keys)."""
    groups = np.asarray(groups)
    keys = groups.astype(np.uint16) if len(groups) and groups.max() < 1 << 16 else groups
    return np.split(np.argsort(keys, kind="stable"), np.cumsum(np.bincount(groups))[:-1])


def split_indices(n, fraction, seed, min_held=0):
    """Disjoint sorted int64 index arrays `(keep, held)` covering `range(n)`: a seeded validation
    (or hold-out) part split off a training set.

    `held` is the first `round(fraction * n)` (at least `min_held` when `fraction` > 0) entries of
    the permutation `numpy.random.default_rng(seed).permutation(n)`, `keep` the rest; `seed` is an
    int or a sequence of ints (e.g. `[seed, 15]` for a stream independent of other uses of `seed`).
    The same on every machine and NumPy version with the PCG64 generator.
    """
    held = max(min_held, round(fraction * n)) if fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def checked_image_size(path, formats=None, what="image"):
    """(width, height) of the image file at `path`, after checking that all of its data is there.

    A PNG has every chunk's checksum checked (`PIL.Image.verify`, no decompression: 0.06 ms for
    256 x 256); any other format is decoded (a JPEG at 1/8 scale, which still reads every byte:
    under 1 ms for 500 x 375). `formats` (PIL names, e.g. {"JPEG"}) are those the caller's
    decoder takes. A file that is empty, truncated, corrupt or of another format raises
    `DatasetError` naming it, so the reader fails, not TensorFlow's decoder mid-epoch.
    """
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as image:
            size, kind = image.size, image.format
            if formats is not None and kind not in formats:
                raise DatasetError(f"{path} is a {kind} file; a {what} must be {' or '.join(sorted(formats))}")
            if kind == "PNG":
                image.verify()
            else:
                if kind == "JPEG":
                    image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).replace(str(path), "").strip(" '") or type(e).__name__
        raise DatasetError(f"{path} is not a readable {what} ({reason}); replace it with an intact copy") from None
    return size


def fingerprint(path, limit=100_000):
    """A short hex digest of the names and sizes of the files under `path` (or of one file).

    Cheap (no file contents are read) and stable across copies: it tells whether a data
    directory still holds what a run was trained on.
    """
    path = Path(path)
    digest = hashlib.sha1()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())[:limit]
    for f in files:
        digest.update(f"{f.relative_to(path) if f != path else f.name}\t{f.stat().st_size}\n".encode())
    return digest.hexdigest()[:12]
