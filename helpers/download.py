"""Download FSDKaggle2018 from Zenodo (record 2552860): one pooch registry, MD5s, safe unzip.

``fetch_fsdkaggle2018()`` (or ``python -m helpers data fsdkaggle2018``) leaves::

    <root>/FSDKaggle2018.meta/        the two metadata CSVs read by helpers/data.py
    <root>/FSDKaggle2018.audio_train/ 9,473 WAVs
    <root>/FSDKaggle2018.audio_test/  1,600 WAVs
    <root>/FSDKaggle2018.doc/         README and licence (only if asked for)
    <root>/.download/                 stamps (and, mid-run, pooch's temporary files)

Why it cannot leave a half file that looks complete (checked in pooch 1.9's source,
``pooch.core.stream_download`` and ``pooch.utils.temporary_file``): pooch streams into a
``tmpXXXXXXXX`` file in the cache folder, checks its hash and only then ``shutil.move``\\ s it to
the archive's name; the temporary file is removed in a ``finally`` block, so an exception, a
Ctrl-C or a checksum mismatch leaves nothing under the archive's name. Unzipping goes into a
temporary folder next to the target and is renamed into place (:mod:`helpers.files`); a stamp
written last marks an archive as unpacked. tests/test_download.py checks all of this against a local HTTP server.

Environment: ``$FSDKAGGLE2018_DIR`` points at an unpacked copy (then nothing is downloaded),
``$FSDKAGGLE2018_URL`` replaces the Zenodo base URL (tests), ``FSDKAGGLE2018_NO_VERIFY=1``
skips the MD5 check.
Used in: helpers/cli.py (``python -m helpers data fsdkaggle2018``).
"""

from __future__ import annotations

import copy
import hashlib
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, BinaryIO

from helpers.data import META_DIR, TEST_CSV, TRAIN_CSV, dataset_root
from helpers.files import atomic_folder, atomic_write_text

if TYPE_CHECKING:  # pooch is imported when a download starts, not with this module
    import pooch

ZENODO_URL = "https://zenodo.org/record/2552860/files"
DOWNLOAD_DIR = ".download"
ARCHIVES: tuple[str, ...] = ("meta", "audio_train", "audio_test", "doc")

# The project's one data registry: archive name -> "md5:<hash>".
# CAUTION: these MD5 sums were recorded by a third-party FSDKaggle2018 loader and have NOT
# been verified against the files on Zenodo from this project. If a fresh download fails
# the check, compare with the checksums Zenodo shows for record 2552860 before trusting
# either side; `FSDKAGGLE2018_NO_VERIFY=1` skips the check.
REGISTRY: dict[str, str] = {
    "FSDKaggle2018.audio_train.zip": "md5:a8b47ff4b52022c178f88fa5c6f080d0",
    "FSDKaggle2018.audio_test.zip": "md5:f85c8665c3fc39311ea1b748e194a81d",
    "FSDKaggle2018.meta.zip": "md5:f16828ac8be0e5285b9175a12f90d784",
    "FSDKaggle2018.doc.zip": "md5:4f2d1ac88f33a62f9db3108b269ee1b7",
}

_OVERRIDE_HINT = (
    "To override: rerun with verification off (`fetch_fsdkaggle2018(verify=False)` or "
    "`FSDKAGGLE2018_NO_VERIFY=1 python -m helpers data fsdkaggle2018`), or point "
    "$FSDKAGGLE2018_DIR at an unpacked copy."
)


class DownloadError(RuntimeError):
    """A download or unpack step failed; the message names the archive."""


class ChecksumError(DownloadError):
    """A downloaded archive's MD5 differs from the registry; the download was deleted."""


class UnsafeArchiveError(DownloadError):
    """A zip member would land outside the target (absolute, ``..``, symlink)."""


def archive_folder(key: str) -> str:
    """The folder an archive unpacks to, e.g. ``"meta"`` -> ``"FSDKaggle2018.meta"``."""
    if key not in ARCHIVES:
        raise ValueError(f"unknown archive {key!r}; choose from {', '.join(ARCHIVES)}")
    return f"FSDKaggle2018.{key}"


def archive_name(key: str) -> str:
    """The Zenodo file name of an archive, e.g. ``"meta"`` -> ``"FSDKaggle2018.meta.zip"``."""
    return archive_folder(key) + ".zip"


def base_url() -> str:
    """Zenodo's file URL for the record, or ``$FSDKAGGLE2018_URL`` (used by the tests)."""
    return (os.environ.get("FSDKAGGLE2018_URL", "").strip() or ZENODO_URL).rstrip("/")


def archive_url(name: str) -> str:
    """Download URL of one archive."""
    return f"{base_url()}/{name}?download=1"


def verify_requested(verify: bool = True) -> bool:
    """``verify`` unless ``FSDKAGGLE2018_NO_VERIFY`` is set to 1/true/yes."""
    flag = os.environ.get("FSDKAGGLE2018_NO_VERIFY", "").strip().lower()
    return verify and flag not in ("1", "true", "yes", "on")


def registry(cache: Path, verify: bool = True) -> pooch.Pooch:
    """The pooch registry of the four archives, storing downloads in ``cache``.

    With ``verify=False`` the hashes are left out, so pooch checks nothing.
    """
    import pooch

    return pooch.create(
        path=cache,
        base_url=base_url() + "/",
        registry={name: (md5 if verify else None) for name, md5 in REGISTRY.items()},
        urls={name: archive_url(name) for name in REGISTRY},
        retry_if_failed=0,
    )


class _HashingWriter:
    """A binary file wrapper that computes the MD5 of what is written through it."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.md5 = hashlib.md5()

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def _http_downloader() -> Callable[..., Any]:
    """pooch's HTTP downloader with a progress bar (tests replace this)."""
    import pooch

    from helpers.progress import progress

    # pooch sets the real total once it knows the size; the short delay keeps the placeholder
    # total of 1 from being drawn.
    return pooch.HTTPDownloader(progressbar=progress(total=1, unit="B", unit_scale=True,
                                                     unit_divisor=1024, delay=0.5))


class _CheckedDownload:
    """A pooch downloader that hashes while streaming and raises on an MD5 mismatch.

    pooch calls it with its temporary file; raising here makes pooch delete that file.
    """

    def __init__(self, name: str, expected: str | None, inner: Callable[..., Any]) -> None:
        self.name, self.expected, self.inner = name, expected, inner

    def __call__(self, url: str, output_file: str, pooch: Any, check_only: bool = False) -> Any:
        if check_only:  # pooch's availability check: nothing is written
            return self.inner(url, output_file, pooch, check_only=True)
        with open(output_file, "wb") as raw:
            writer = _HashingWriter(raw)
            self.inner(url, writer, pooch)
        actual = writer.md5.hexdigest()
        expected = (self.expected or "").split(":")[-1].lower()
        if expected and actual != expected:
            raise ChecksumError(
                f"{self.name}: MD5 mismatch, expected {expected} but got {actual}. "
                f"The download was deleted and nothing was unpacked. {_OVERRIDE_HINT}"
            )


def download_archive(name: str, cache: Path, verify: bool = True) -> Path:
    """Download one archive into ``cache`` through the registry; return its path.

    Raises :class:`ChecksumError` on an MD5 mismatch and :class:`DownloadError` on a network
    failure; in both cases no file is left under the archive's name.
    """
    expected = REGISTRY[name] if verify else None
    downloader = _CheckedDownload(name, expected, _http_downloader())
    try:
        return Path(registry(cache, verify).fetch(name, downloader=downloader))
    except ChecksumError:
        raise
    except (OSError, ValueError) as err:  # requests' errors are OSErrors
        raise DownloadError(
            f"{name}: download from {archive_url(name)} failed ({err}). Nothing was kept; "
            "rerun to try again."
        ) from err


def _member_problem(info: zipfile.ZipInfo, target: Path) -> str | None:
    """Why a zip member is unsafe to extract into ``target`` (None if it is safe)."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or PureWindowsPath(info.filename).drive:
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' in its path"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if not (target / name).resolve().is_relative_to(target.resolve()):
        return "path escapes the target folder"
    return None


def check_members(archive: zipfile.ZipFile, target: Path) -> None:
    """Refuse the whole archive if any member would land outside ``target``."""
    for info in archive.infolist():
        problem = _member_problem(info, target)
        if problem:
            raise UnsafeArchiveError(
                f"{Path(str(archive.filename)).name}: refusing member {info.filename!r} "
                f"({problem}); nothing was extracted"
            )


def unpack_archive(archive: Path, root: Path, folder: str) -> Path:
    """Unzip the top folder ``folder`` of ``archive`` into ``root/folder``, atomically.

    The members under ``folder/`` are extracted into a temporary folder next to the target
    that then replaces it (:func:`helpers.files.atomic_folder`); anything else at the
    archive's top level is discarded.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        check_members(zf, root)
        prefix = f"{folder}/"
        members = [info for info in zf.infolist()
                   if info.filename.replace("\\", "/").startswith(prefix)]
        if not members:
            found = sorted({info.filename.replace("\\", "/").split("/")[0]
                            for info in zf.infolist()})
            raise DownloadError(f"{archive.name}: no top folder {folder}/ (found {found})")

        def fill(tmp: Path) -> None:
            for info in members:
                inner = copy.copy(info)  # extracted under its name inside the top folder
                inner.filename = info.filename.replace("\\", "/")[len(prefix):]
                if inner.filename:  # empty: the entry of the top folder itself
                    zf.extract(inner, tmp)

        return atomic_folder(root / folder, fill)


def _stamp(root: Path, key: str) -> Path:
    return root / DOWNLOAD_DIR / f"{archive_name(key)}.unpacked"


def is_unpacked(root: Path, key: str) -> bool:
    """True once ``key``'s archive has been fully unpacked into ``root`` by this module."""
    return _stamp(root, key).is_file() and (root / archive_folder(key)).is_dir()


def _fetch_one(root: Path, key: str, verify: bool) -> None:
    """Download, check and unpack one archive unless its stamp says it is done."""
    if is_unpacked(root, key):
        return
    name = archive_name(key)
    zip_path = download_archive(name, root / DOWNLOAD_DIR, verify)
    try:
        unpack_archive(zip_path, root, archive_folder(key))
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:  # damaged: not a zip, cut short, bad CRC
        zip_path.unlink(missing_ok=True)  # else the next run would reuse it (unverified) and fail again
        raise DownloadError(
            f"{name}: {zip_path} is not a readable zip archive ({err}); it was deleted and "
            "nothing was unpacked. Rerun to download it again"
            + ("" if verify else " (with the MD5 check on, a damaged download is caught earlier)")
            + "."
        ) from err
    checked = REGISTRY[name] if verify else "md5 not checked"
    atomic_write_text(_stamp(root, key), f"{name} {checked}\n")
    zip_path.unlink()  # frees the archive's space; the stamp now records it as done


def _existing_copy(archives: Sequence[str]) -> Path | None:
    """``$FSDKAGGLE2018_DIR`` if it holds the meta CSVs and every requested folder."""
    env = os.environ.get("FSDKAGGLE2018_DIR", "").strip()
    if not env:
        return None
    root = Path(env).expanduser()
    meta = root / META_DIR
    complete = (meta / TRAIN_CSV).is_file() and (meta / TEST_CSV).is_file()
    complete = complete and all((root / archive_folder(k)).is_dir() for k in archives)
    return root if complete else None


def fetch_fsdkaggle2018(
    out: Path | None = None,
    archives: Sequence[str] = ("meta", "audio_train", "audio_test"),
    verify: bool = True,
) -> Path:
    """Make FSDKaggle2018 available and return its root (the layout helpers/data.py reads).

    Uses ``$FSDKAGGLE2018_DIR`` as is when it already holds an unpacked copy; otherwise
    downloads each archive in ``archives`` (any of ``ARCHIVES``) into ``out`` (default
    ``dataset_root("fsdkaggle2018")``), checks its MD5 unless ``verify=False`` or
    ``FSDKAGGLE2018_NO_VERIFY=1``, unpacks it and deletes the zip. Archives already unpacked
    are skipped, so an interrupted run resumes where it stopped.
    Used in: helpers/cli.py.
    """
    for key in archives:
        archive_folder(key)  # validates every key before anything is downloaded
    existing = _existing_copy(archives)
    if existing is not None:
        print(f"using the unpacked copy in $FSDKAGGLE2018_DIR={existing}; nothing downloaded")
        return existing
    root = Path(out).expanduser() if out is not None else dataset_root("fsdkaggle2018")
    env = os.environ.get("FSDKAGGLE2018_DIR", "").strip()
    if env:
        print(f"$FSDKAGGLE2018_DIR={env} lacks the metadata CSVs or a folder of "
              f"{', '.join(archives)}; downloading what is missing into {root}")
    checked = verify_requested(verify)
    for key in archives:
        _fetch_one(root, key, checked)
    return root
