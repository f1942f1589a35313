"""Finding data files: cache, offline mirror, then download with pooch, every file hash-checked.

Lookup order for a registered file (:func:`fetch`):

1. the cache, ``<data_dir>/<subdir>/<name>``, where ``data_dir`` is the argument, else
   ``$RNN_MFT_DATA``, else the user cache folder (``pooch.os_cache("rnn_mft")``);
2. the offline mirrors, ``<mirror>/<subdir>/<name>``, in this order: the ``mirror`` argument,
   the folders in ``$RNN_MFT_MIRROR`` (``os.pathsep``-separated), ``../shared/data`` beside the
   repository that holds this package, and ``../shared/data`` relative to the current folder.
   A mirror file is used in place (never copied) once its hash matches;
3. a download from each registered URL in turn (pooch, progress bar, hash check), unless
   ``download=False`` or ``$RNN_MFT_OFFLINE=1``. The download goes to a private temporary
   folder inside the cache; only a file whose hash matches is moved (``os.replace``) to its
   final name, so a partial or corrupted download is never taken for a valid file.

A file whose hash does not match is never used: a corrupted cache file is deleted, a corrupted
mirror file is skipped with a warning, a corrupted download is deleted and raises
:class:`HashMismatchError`. When no source has the file, :class:`DataUnavailableError` says
which file, which hash, and where to put it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from .._io import default_file_mode
from ..settings import current as current_settings
from .registry import FileEntry

__all__ = ["DataUnavailableError", "HashMismatchError", "data_dir", "mirror_dirs", "fetch",
           "file_hash", "verify", "offline", "import_pooch"]


class DataUnavailableError(FileNotFoundError):
    """No source (cache, mirror, network) could provide a registered file."""


class HashMismatchError(ValueError):
    """A file's content does not match its registered hash (the file is not used)."""


_TRUE = ("1", "true", "yes", "on")


def offline() -> bool:
    """True when ``$RNN_MFT_OFFLINE`` asks never to download."""
    return current_settings().offline


def data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``data_dir`` if given, else ``$RNN_MFT_DATA``, else the user cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = current_settings().data                 # RNN_MFT_DATA (stripped; None: unset or empty)
    if env:
        return Path(env).expanduser()
    try:
        return Path(import_pooch().os_cache("rnn_mft"))
    except ImportError:              # without pooch (offline machines): the same folder on Linux
        return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "rnn_mft"


def import_pooch():
    """The ``pooch`` module, imported without tqdm.auto's warning about missing notebook widgets.

    Raises ``ImportError`` where pooch is not installed (downloads then fail with a clear
    :class:`DataUnavailableError`; files still come from the cache and the mirror)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*IProgress not found.*")
        import pooch
    return pooch


class _ProgressBar:
    """A plain-text tqdm bar in the shape pooch expects of a custom progress bar (``total``,
    ``update``, ``reset``, ``close``); works in terminals and in notebooks without ipywidgets."""

    def __init__(self, entry: FileEntry):
        from tqdm.std import tqdm

        self._bar = tqdm(desc=entry.name, total=entry.bytes, unit="B", unit_scale=True,
                         ncols=79, leave=True, ascii=os.name == "nt")

    @property
    def total(self):
        return self._bar.total

    @total.setter
    def total(self, value):
        self._bar.total = value
        self._bar.refresh()

    def update(self, n):
        self._bar.update(n)

    def reset(self):
        self._bar.reset(total=self._bar.total)

    def close(self):
        self._bar.close()

    def __bool__(self):
        return True


resolve_data_dir = data_dir  # the name `data_dir` is also a parameter below


def _repo_root() -> Path | None:
    """The source checkout holding this package (src layout), if there is one."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() else None


def default_mirrors() -> list[Path]:
    """``../shared/data`` beside the repository, then relative to the current folder."""
    out = []
    root = _repo_root()
    if root is not None:
        out.append(root.parent / "shared" / "data")
    out.append(Path.cwd().parent / "shared" / "data")
    return out


def mirror_dirs(mirror: str | os.PathLike | None | bool = None) -> list[Path]:
    """Mirror folders in lookup order (existing or not, duplicates removed).

    Parameters
    ----------
    mirror : path, None or False
        An explicit mirror folder, searched first. ``False`` disables every mirror (the
        environment variable and the defaults included).
    """
    if mirror is False:
        return []
    cands: list[Path] = []
    if mirror is not None and mirror is not True:
        cands.append(Path(mirror).expanduser())
    cands += [Path(p).expanduser() for p in current_settings().mirror]     # RNN_MFT_MIRROR, os.pathsep-separated
    cands += default_mirrors()
    seen, out = set(), []
    for c in cands:
        key = os.path.normcase(os.path.abspath(c))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


_VERIFIED: dict[tuple, str] = {}
#: (url, hash) -> (time, reason) of failed downloads; not retried within _RETRY_AFTER seconds.
_FAILED: dict[tuple[str, str], tuple[float, str]] = {}
_RETRY_AFTER = 300.0


def file_hash(path: str | os.PathLike, alg: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (streamed; ``alg`` is ``"sha256"`` or ``"md5"``)."""
    if alg not in ("sha256", "md5"):
        raise ValueError(f"alg={alg!r}; allowed: sha256, md5")
    h = hashlib.new(alg)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike, known_hash: str) -> tuple[bool, str]:
    """``(matches, actual_hash)`` of the file at ``path`` against ``"<alg>:<hex>"``.

    Results are remembered per (path, size, mtime) for the life of the process.
    """
    alg, _, expected = known_hash.partition(":")
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, alg)
    actual = _VERIFIED.get(key)
    if actual is None:
        actual = file_hash(path, alg)
        _VERIFIED[key] = actual
    return actual == expected.lower(), f"{alg}:{actual}"


def _describe_size(entry: FileEntry) -> str:
    return f", {entry.bytes:,} bytes" if entry.bytes else ""


def fetch(entry: FileEntry, *, data_dir: str | os.PathLike | None = None,
          mirror: str | os.PathLike | None | bool = None, download: bool | None = None,
          progressbar: bool = True, timeout: float = 60.0) -> Path:
    """Path of a valid copy of ``entry``: from the cache, a mirror, or a fresh download.

    Parameters
    ----------
    entry : FileEntry
        The file (see :func:`rnn_mft.data.get_entry`).
    data_dir : path, optional
        Cache folder; default ``$RNN_MFT_DATA``, else the user cache folder.
    mirror : path, None or False, optional
        Extra mirror folder searched first; ``False`` disables mirrors.
    download : bool, optional
        Allow downloading; default True unless ``$RNN_MFT_OFFLINE`` is set.
    progressbar : bool
        Show pooch's progress bar while downloading.
    timeout : float
        Seconds before a silent connection is abandoned.

    Raises
    ------
    HashMismatchError
        A downloaded file did not match its hash (it was deleted).
    DataUnavailableError
        No cache, mirror or URL could provide the file; the message names the file, its hash,
        and the folders where it can be put.
    """
    if download is None:
        download = not offline()
    cache = resolve_data_dir(data_dir) / entry.subdir
    target = cache / entry.name
    looked: list[str] = []
    if cache.is_dir():
        clean_stale_downloads(cache)          # left by a download killed earlier

    # 1. the cache
    if target.is_file():
        ok, actual = verify(target, entry.hash)
        if ok:
            return target
        try:
            target.unlink(missing_ok=True)
            gone = "deleted"
        except OSError as exc:           # a read-only cache: look elsewhere, leave the file
            gone = f"could not be deleted: {exc.strerror or exc}"
        warnings.warn(f"cached {target} does not match {entry.hash} (found {actual}); {gone}",
                      RuntimeWarning, stacklevel=2)
        looked.append(f"cache:  {target} (corrupt, {gone})")
    else:
        looked.append(f"cache:  {target} (missing)")

    # 2. the offline mirrors
    mirrors = mirror_dirs(mirror)
    for m in mirrors:
        p = m / entry.subdir / entry.name
        if not p.is_file():
            looked.append(f"mirror: {p} (missing)")
            continue
        ok, actual = verify(p, entry.hash)
        if ok:
            return p
        warnings.warn(f"mirror file {p} does not match {entry.hash} (found {actual}); "
                      "skipping it", RuntimeWarning, stacklevel=2)
        looked.append(f"mirror: {p} (hash mismatch: {actual})")

    # 3. the network
    attempts: list[str] = []
    if download and entry.urls:
        for url in entry.urls:
            failed = _FAILED.get((url, entry.hash))
            if failed and time.monotonic() - failed[0] < _RETRY_AFTER:
                attempts.append(f"{url}: {failed[1]} (earlier in this process; not retried)")
                continue
            try:
                return _download(entry, url, cache, progressbar=progressbar, timeout=timeout)
            except HashMismatchError:
                raise
            except Exception as exc:  # network, HTTP status, unreachable host, disk
                reason = f"{type(exc).__name__}: {exc}"
                _FAILED[(url, entry.hash)] = (time.monotonic(), reason)
                attempts.append(f"{url}: {reason}")
    elif not download:
        attempts.append("downloading disabled (download=False or RNN_MFT_OFFLINE set)")
    else:
        attempts.append("no download URL registered")

    mirror_hint = (f"{mirrors[0] / entry.subdir}/" if mirrors else "<mirror>/" + entry.subdir + "/")
    msg = "\n".join([
        f"{entry.dataset} file {entry.name!r} ({entry.hash}{_describe_size(entry)}) is not "
        "available: not in the cache, not in any mirror, and not downloadable.",
        "  looked at:", *(f"    {s}" for s in looked),
        "  download:", *(f"    {s}" for s in attempts),
        "  to fix it, put the file, byte for byte as distributed"
        + (f" (from {entry.urls[0]})" if entry.urls else "") + ", at",
        f"    {target}",
        f"  or into a mirror folder such as {mirror_hint} (set RNN_MFT_MIRROR=<mirror> or pass "
        f"mirror=<mirror>; files go in <mirror>/{entry.subdir}/).",
    ])
    raise DataUnavailableError(msg)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


#: a staging folder without an owner record older than this is stale
_STALE_S = 600.0


def clean_stale_downloads(cache: Path) -> list[Path]:
    """Remove ``.download-*`` staging folders in ``cache`` left by a killed download: those whose
    owner process (``.owner`` file: pid) is gone, or, without an owner record, older than
    10 minutes. Returns what was removed."""
    removed = []
    try:
        candidates = list(Path(cache).glob(".download-*"))
    except OSError:
        return removed
    for d in candidates:
        if not d.is_dir():
            continue
        try:
            owner = d / ".owner"
            if owner.is_file():
                try:
                    stale = not _pid_alive(int(owner.read_text().split()[0]))
                except (ValueError, IndexError):
                    stale = True
            else:
                stale = time.time() - d.stat().st_mtime > _STALE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(d)
    return removed


def _download(entry: FileEntry, url: str, cache: Path, *, progressbar: bool,
              timeout: float) -> Path:
    """Download ``url`` into a private temporary folder in ``cache``, check, then rename.

    Staging folders of downloads killed earlier (``kill -9``) are removed first
    (:func:`clean_stale_downloads`); the file gets the umask's mode (e.g. 0644)."""
    pooch = import_pooch()
    cache.mkdir(parents=True, exist_ok=True)
    clean_stale_downloads(cache)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{entry.name}-", dir=cache))
    (staging / ".owner").write_text(f"{os.getpid()}\n")
    bar = None
    try:
        downloader = None
        if url.startswith(("http://", "https://")):
            bar = _ProgressBar(entry) if progressbar else None
            downloader = pooch.HTTPDownloader(progressbar=bar or False, timeout=timeout)
        try:
            got = pooch.retrieve(url, known_hash=entry.hash, fname=entry.name, path=staging,
                                 downloader=downloader, progressbar=False)
        except ValueError as exc:
            if "hash" not in str(exc).lower():
                raise
            raise HashMismatchError(
                f"download of {entry.dataset} file {entry.name!r} from {url} does not match "
                f"{entry.hash}; the file was deleted and nothing was kept ({exc})") from None
        ok, actual = verify(got, entry.hash)  # pooch checked already; never trust blindly
        if not ok:
            raise HashMismatchError(
                f"download of {entry.dataset} file {entry.name!r} from {url} has {actual}, "
                f"expected {entry.hash}; the file was deleted and nothing was kept")
        final = cache / entry.name
        os.chmod(got, default_file_mode())
        os.replace(got, final)
        return final
    finally:
        if bar is not None:
            bar.close()
        shutil.rmtree(staging, ignore_errors=True)
