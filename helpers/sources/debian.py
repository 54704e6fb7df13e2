"""Sample libraries from Debian packages: pinned ``.deb`` files fetched with their SHA256 and
unpacked in pure Python (no root, no apt, any OS).

Several free sample libraries the demo set is rendered from are shipped by Debian (bookworm,
main) rather than by pip: SoundFonts, Gravis UltraSound patches, folders of sample files.
:data:`DEBIAN_PACKAGES` pins five of them by pool path, size and SHA256 (taken from
``apt-get --print-uris download NAME``). ``fetch_package(name)`` downloads one through a pooch
registry (which checks the SHA256 and never leaves a half or mismatched file under the
``.deb``'s name), unpacks its data member into ``<root>/<name>/`` (``<root>`` defaults to
``data/sources``) and deletes the ``.deb``, so the disk holds just the unpacked tree::

    <root>/denemo-data/usr/share/sounds/sf2/A320U.sf2
    <root>/denemo-data/.complete      stamp (JSON: name, version, sha256), written last
    <root>/.download/                 pooch's cache: the .deb while it is being unpacked

A ``.deb`` is an ``ar`` archive holding ``debian-binary``, ``control.tar.*`` and
``data.tar.*``; :func:`unpack_deb` reads the ``ar`` headers itself and extracts the data tar
with :mod:`tarfile`. Every member is checked before anything is written (an absolute path or a
``..`` component refuses the whole package); regular files and folders are extracted (through
tarfile's ``"data"`` filter where the Python has it); a symbolic or hard link whose target lies
inside the package becomes a copy of that target (a hard link where the file system allows,
so it takes no extra space; a ``.deb``'s absolute link targets are read relative to the package
root, where dpkg would install them), so nothing depends on symbolic links working on the
user's file system; links pointing outside the package and special files are
skipped. The folder is filled next to its final place and renamed into it
(:func:`helpers.files.atomic_folder`), so an interrupted run never leaves a folder that looks
complete.

Environment: ``$HELPERS_DEBIAN_MIRROR`` replaces the Debian mirror (tests point it at a local
server; any Debian mirror's base URL works), ``HELPERS_DEBIAN_OFFLINE=1`` downloads nothing
(packages not unpacked yet are reported missing).
Used in: helpers/sources (the demo set's sample libraries).
"""

from __future__ import annotations

import json
import lzma
import os
import posixpath
import shutil
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any
from urllib.parse import quote

from helpers import paths
from helpers.download import DownloadError, UnsafeArchiveError
from helpers.files import atomic_folder, remove_leftovers, write_json

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DOWNLOAD_DIR = ".download"
STAMP = ".complete"
RETRIES = 1  # pooch's retry_if_failed: one more try after a failed download (tests set 0)

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60
# The data member's name -> tarfile's stream mode ("" for zstd: decompressed here first).
DATA_MEMBERS: dict[str, str] = {
    "data.tar.xz": "r|xz",
    "data.tar.gz": "r|gz",
    "data.tar.zst": "r|",
    "data.tar.bz2": "r|bz2",
    "data.tar": "r|",
}
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")  # Python >= 3.10.12, 3.11.4, 3.12
_FILTER_ERRORS: tuple[type[Exception], ...] = (
    (tarfile.FilterError,) if _HAS_DATA_FILTER else ()
)
_UNREADABLE = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error)


class SourceUnavailable(DownloadError):
    """A package could not be downloaded (network, HTTP error, SHA256 mismatch); nothing kept."""


@dataclass(frozen=True)
class DebPackage:
    """One pinned Debian package: where it lies in the pool and what it holds."""

    name: str
    version: str
    pool_path: str  # relative to the mirror's base URL, not percent-encoded
    size: int  # bytes of the .deb
    sha256: str
    licence: str
    summary: str  # what the demo reads from it

    @property
    def filename(self) -> str:
        """The ``.deb``'s file name, e.g. ``denemo-data_2.6.18-1_all.deb``."""
        return PurePosixPath(self.pool_path).name

    def stamp(self) -> dict[str, str]:
        """What the ``.complete`` stamp of an unpacked copy records."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


# Debian bookworm (main), from `apt-get --print-uris download NAME`.
DEBIAN_PACKAGES: dict[str, DebPackage] = {
    package.name: package
    for package in (
        DebPackage(
            name="denemo-data",
            version="2.6.18-1",
            pool_path="pool/main/d/denemo/denemo-data_2.6.18-1_all.deb",
            size=9659224,
            sha256="f9f78742295951f03d626dd1aaace480b70c6e7bf6eceb9607bfb9b275ca21be",
            licence="GPL-2+",
            summary="A320U.sf2, a General MIDI SoundFont (usr/share/sounds/sf2/A320U.sf2)",
        ),
        DebPackage(
            name="avldrums.lv2-soundfont",
            version="0.5.2-2",
            pool_path="pool/main/a/avldrums.lv2/avldrums.lv2-soundfont_0.5.2-2_all.deb",
            size=24667944,
            sha256="436813f10c950324f28cb6a71e922f153084b6ed00049cd47da3f0f055f3ffc5",
            licence="CC-BY-SA-3.0",
            summary="two acoustic drum kits as SoundFonts, Red_Zeppelin_4_LV2.sf2 and "
            "Black_Pearl_4_LV2.sf2 (usr/share/sounds/sf2/)",
        ),
        DebPackage(
            name="sonic-pi-samples",
            version="3.2.2~repack-8",
            pool_path="pool/main/s/sonic-pi/sonic-pi-samples_3.2.2~repack-8_all.deb",
            size=21882696,
            sha256="25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d",
            licence="CC0",
            summary="Sonic Pi's sample library, 165 FLAC one-shots and loops "
            "(usr/share/sonic-pi/samples/)",
        ),
        DebPackage(
            name="lmms-common",
            version="1.2.2+dfsg1-6",
            pool_path="pool/main/l/lmms/lmms-common_1.2.2+dfsg1-6_all.deb",
            size=8263276,
            sha256="7d9aa55dd05f11edc57104203ee1c350e3e41f8936ab3741da2bb1158fd46c37",
            licence="GPL-2+",
            summary="LMMS's sample files, OGG/WAV/FLAC instruments, drums and loops, plus "
            "DrumSynth .ds presets in drumsynth/ (usr/share/lmms/samples/)",
        ),
        DebPackage(
            name="freepats",
            version="20060219-4",
            pool_path="pool/main/f/freepats/freepats_20060219-4_all.deb",
            size=25089504,
            sha256="1282628c7ec015f0d39a8b1ee58a2d942220bbad38173d005bbfbaaf36e1d6f1",
            licence="GPL-2+ with exception",
            summary="FreePats GUS patches, .pat files in Tone_000/ and Drum_000/ "
            "(usr/share/midi/freepats/) and their TiMidity map (etc/timidity/freepats.cfg)",
        ),
    )
}


def mirror_url() -> str:
    """The Debian mirror's base URL: ``$HELPERS_DEBIAN_MIRROR`` or :data:`DEBIAN_MIRROR`."""
    return (os.environ.get("HELPERS_DEBIAN_MIRROR", "").strip() or DEBIAN_MIRROR).rstrip("/")


def package_url(package: DebPackage) -> str:
    """Download URL of a package's ``.deb``: the mirror plus its percent-encoded pool path."""
    return f"{mirror_url()}/{quote(package.pool_path)}"


def sources_dir() -> Path:
    """Where packages are unpacked by default: ``data/sources`` (follows ``HELPERS_DATA_DIR``)."""
    return paths.data_dir() / "sources"


def offline() -> bool:
    """True when ``HELPERS_DEBIAN_OFFLINE`` is 1/true/yes/on: nothing is downloaded."""
    flag = os.environ.get("HELPERS_DEBIAN_OFFLINE", "").strip().lower()
    return flag in ("1", "true", "yes", "on")


def _package(name: str) -> DebPackage:
    try:
        return DEBIAN_PACKAGES[name]
    except KeyError:
        raise KeyError(
            f"unknown Debian package {name!r}; known: {', '.join(sorted(DEBIAN_PACKAGES))}"
        ) from None


# --- unpacking ------------------------------------------------------------------------------


def _ar_members(deb: Path) -> dict[str, tuple[int, int]]:
    """The members of the ``ar`` archive ``deb``: name -> (offset of its data, size).

    Reads the global header and the 60-byte member headers (name, mtime, uid, gid, mode, size,
    the magic "`\\n"); GNU names end with "/", BSD long names (``#1/<length>``) are read after
    the header; each member's data is padded to an even offset.
    """
    total = deb.stat().st_size
    members: dict[str, tuple[int, int]] = {}
    with open(deb, "rb") as f:
        if f.read(len(AR_MAGIC)) != AR_MAGIC:
            raise DownloadError(
                f"{deb.name}: not a Debian package (it does not start with the ar archive "
                f"signature '!<arch>')"
            )
        pos = len(AR_MAGIC)
        while pos < total:
            f.seek(pos)
            header = f.read(AR_HEADER_SIZE)
            if len(header) < AR_HEADER_SIZE:
                if not header.strip(b"\n"):  # a final padding byte
                    break
                raise DownloadError(f"{deb.name}: truncated (a member header at byte {pos} "
                                    "is cut short)")
            if header[58:60] != b"`\n":
                raise DownloadError(f"{deb.name}: damaged ar archive (no member header at byte "
                                    f"{pos})")
            try:
                name = header[:16].decode("ascii").rstrip(" ")
                size = int(header[48:58].decode("ascii").strip())
            except ValueError:
                raise DownloadError(f"{deb.name}: damaged ar archive (unreadable member header "
                                    f"at byte {pos})") from None
            offset = pos + AR_HEADER_SIZE
            if name.startswith("#1/") and name[3:].isdigit():  # BSD: the name follows
                length = int(name[3:])
                name = f.read(length).decode("utf-8", "replace").rstrip("\0")
                offset, size = offset + length, size - length
            name = name.rstrip("/") if name not in ("/", "//") else name
            if size < 0 or offset + size > total:
                raise DownloadError(
                    f"{deb.name}: truncated (member {name!r} needs {size} bytes from byte "
                    f"{offset}, but the file ends at byte {total})"
                )
            members.setdefault(name, (offset, size))
            pos = offset + size + size % 2
    return members


class _Window:
    """Reads ``size`` bytes of ``file`` from ``offset`` on: one ar member, as a stream."""

    def __init__(self, file: IO[bytes], offset: int, size: int) -> None:
        file.seek(offset)
        self.file, self.left = file, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.file.read(n)
        self.left -= len(data)
        return data


def _zstandard(deb: Path, member: str) -> Any:
    try:
        import zstandard
    except ImportError:
        raise DownloadError(
            f"{deb.name}: its {member} is compressed with Zstandard, which needs the Python "
            "module 'zstandard': install it with `pip install zstandard` and rerun"
        ) from None
    return zstandard


def _data_member(deb: Path) -> tuple[str, int, int]:
    """The name, offset and size of ``deb``'s data member."""
    members = _ar_members(deb)
    for name in DATA_MEMBERS:
        if name in members:
            return (name, *members[name])
    raise DownloadError(
        f"{deb.name}: no data member ({', '.join(DATA_MEMBERS)}) among its members "
        f"{sorted(members)}"
    )


@contextmanager
def _open_data(deb: Path) -> Iterator[tarfile.TarFile]:
    """``deb``'s data tar, opened as a stream (members in order, read once)."""
    member, offset, size = _data_member(deb)
    with open(deb, "rb") as raw:
        stream: Any = _Window(raw, offset, size)
        if member.endswith(".zst"):
            zstandard = _zstandard(deb, member)
            stream = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
        with tarfile.open(fileobj=stream, mode=DATA_MEMBERS[member]) as tar:
            yield tar


def _unreadable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean a damaged data member (zstd's only if its module loads)."""
    zstd = sys.modules.get("zstandard")
    return _UNREADABLE + ((zstd.ZstdError,) if zstd is not None else ())


def _safe_name(member: tarfile.TarInfo, deb: Path) -> str:
    """``member``'s path relative to the package root ("" for the root itself); raises
    :class:`UnsafeArchiveError` if it is absolute or has a ``..`` component."""
    name = member.name.replace("\\", "/")  # a separator on Windows: checked as one everywhere
    problem = None
    if name.startswith("/") or PureWindowsPath(member.name).drive:
        problem = "absolute path"
    elif ".." in PurePosixPath(name).parts:
        problem = "'..' in its path"
    if problem:
        raise UnsafeArchiveError(
            f"{deb.name}: refusing member {member.name!r} ({problem}); nothing was extracted"
        )
    return "/".join(PurePosixPath(name).parts)  # drops "./" and empty components


def _link_target(member: tarfile.TarInfo, rel: str) -> str | None:
    """The package-relative path a link member points to, None if it lies outside."""
    target = member.linkname.replace("\\", "/")
    if member.issym() and not target.startswith("/"):
        target = posixpath.join(posixpath.dirname(rel), target)
    target = posixpath.normpath(target.lstrip("/"))  # hard links are relative to the root
    if target == ".." or target.startswith("../"):
        return None
    return "" if target == "." else target


def _copy_file(source: Path | str, dest: Path | str) -> None:
    """A hard link where the file system has them (no second copy on disk), else a copy."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _materialise(out: Path, links: list[tuple[str, str]]) -> list[str]:
    """Give each link's place a copy of its target (a file or a folder inside ``out``).

    Files are hard-linked where possible (:func:`_copy_file`), so a package's links cost no
    disk space. Links to links resolve over several rounds; a link whose target never appears,
    or a folder link into its own subtree, is skipped. Returns the files written.
    """
    written: list[str] = []
    root = out.resolve()
    pending = links
    while pending:
        waiting = []
        for rel, target in pending:
            source, dest = out / target, out / rel
            if not source.exists() or not source.resolve().is_relative_to(root):
                waiting.append((rel, target))
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_file():
                dest.unlink(missing_ok=True)
                _copy_file(source, dest)
                written.append(rel)
            elif source.is_dir() and not (rel + "/").startswith(target + "/" if target else ""):
                shutil.copytree(source, dest, copy_function=_copy_file, dirs_exist_ok=True)
                written += [f"{rel}/{p.relative_to(dest).as_posix()}"
                            for p in dest.rglob("*") if p.is_file()]
        if len(waiting) == len(pending):  # no progress: the rest point nowhere
            break
        pending = waiting
    return written


def unpack_deb(deb: Path, out: Path) -> list[str]:
    """Extract the data member of the Debian package ``deb`` into the folder ``out``.

    Every member is checked first: an absolute path or a ``..`` component raises
    :class:`UnsafeArchiveError` (naming the member and ``deb``) before anything is written.
    Regular files and folders are extracted; a link whose target lies inside the package is
    replaced by a copy of the target; links pointing outside and special files are skipped.
    A file that is not a readable ``.deb`` raises :class:`DownloadError` naming it. Returns the
    extracted files' paths relative to ``out`` (POSIX separators, sorted).
    Used in: :func:`fetch_package`.
    """
    deb, out = Path(deb), Path(out)
    try:
        with _open_data(deb) as tar:  # first pass: refuse the package before writing anything
            for member in tar:
                _safe_name(member, deb)
        out.mkdir(parents=True, exist_ok=True)
        files: list[str] = []
        links: list[tuple[str, str]] = []
        with _open_data(deb) as tar:
            for member in tar:
                rel = _safe_name(member, deb)
                if not rel:
                    continue
                if member.issym() or member.islnk():
                    target = _link_target(member, rel)
                    if target is not None:
                        links.append((rel, target))
                elif member.isreg() or member.isdir():
                    member.name = rel
                    if _HAS_DATA_FILTER:
                        tar.extract(member, out, filter="data")
                    else:  # checked above; no owner or mode taken from the archive
                        tar.extract(member, out, set_attrs=False)
                    if member.isreg():
                        files.append(rel)
    except _FILTER_ERRORS as err:
        raise UnsafeArchiveError(f"{deb.name}: refusing a member ({err})") from err
    except _unreadable_errors() as err:
        raise DownloadError(f"{deb.name}: its data member is not a readable tar archive "
                            f"({err})") from err
    files += _materialise(out, links)
    return sorted(set(files))


# --- fetching -------------------------------------------------------------------------------


class _Bar:
    """The progress bar pooch drives, created only once pooch sets the download's size.

    pooch sets ``total``, calls ``update`` per chunk, then ``reset``, ``update(total)`` and
    ``close``; a bar created up front would show a placeholder size (or, when delayed, never
    print its final line in the ``log`` mode of :mod:`helpers.progress`).
    """

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    @property
    def total(self) -> int | None:
        return self.bar.total if self.bar is not None else None

    @total.setter
    def total(self, total: int) -> None:
        from helpers.progress import progress

        self.close()
        self.bar = progress(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.desc)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def reset(self) -> None:  # pooch then adds the whole size; tqdm's reset would also
        if self.bar is not None:  # restart the clock (and report an absurd rate)
            self.bar.n = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _downloader(package: DebPackage, progress: bool) -> Callable[..., Any]:
    """A pooch downloader for one package: HTTP, with a fresh progress bar per attempt."""
    import pooch  # imported when a download starts, not with this module

    def download(url: str, output_file: Any, registry: Any, check_only: bool = False) -> Any:
        bar = _Bar(package.name) if progress and not check_only else None
        http = pooch.HTTPDownloader(progressbar=bar if bar is not None else False,
                                    chunk_size=1 << 16)
        try:
            return http(url, output_file, registry, check_only=check_only)
        finally:
            if bar is not None:
                bar.close()  # also when the download failed half way

    return download


def download_deb(package: DebPackage, cache: Path, progress: bool = True) -> Path:
    """Download ``package``'s ``.deb`` into ``cache`` through a pooch registry; return its path.

    pooch checks the SHA256 and keeps the file only if it matches; one failed attempt is
    retried. Raises :class:`SourceUnavailable` naming the package, the URL and the cause.
    """
    import pooch  # imported when a download starts, not with this module

    url = package_url(package)
    registry = pooch.create(
        path=cache,
        base_url=mirror_url() + "/",
        registry={package.filename: f"sha256:{package.sha256}"},
        urls={package.filename: url},
        retry_if_failed=RETRIES,
    )
    try:
        return Path(registry.fetch(package.filename,
                                   downloader=_downloader(package, progress)))
    # requests' errors are OSErrors; pooch reports a SHA256 mismatch as a ValueError
    except (OSError, ValueError) as err:
        raise SourceUnavailable(
            f"{package.name}: download from {url} failed ({err}). Nothing was kept; rerun to "
            "try again, or set $HELPERS_DEBIAN_MIRROR to another Debian mirror."
        ) from err


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_unpacked(name: str, root: Path | None = None) -> bool:
    """True when ``<root>/<name>/`` holds this pinned version (its stamp matches)."""
    package = _package(name)
    root = Path(root).expanduser() if root is not None else sources_dir()
    return _read_stamp(root / name) == package.stamp()


def fetch_package(name: str, root: Path | None = None, progress: bool = True) -> Path:
    """Make the Debian package ``name`` available unpacked; return ``<root>/<name>``.

    ``root`` defaults to :func:`sources_dir`. A folder whose stamp records this version is
    reused without any download; otherwise the ``.deb`` is downloaded and checked
    (:func:`download_deb`), unpacked into a fresh folder that replaces any older one, stamped,
    and deleted. Raises ``KeyError`` for an unknown name, :class:`SourceUnavailable` when the
    download fails or ``HELPERS_DEBIAN_OFFLINE=1`` and it is not unpacked yet, and
    :class:`DownloadError` when the ``.deb`` cannot be unpacked (then it is deleted).
    Used in: :func:`fetch_packages`.
    """
    package = _package(name)
    root = Path(root).expanduser() if root is not None else sources_dir()
    folder = root / name
    if is_unpacked(name, root):
        return folder
    if offline():
        raise SourceUnavailable(f"{name}: not unpacked in {folder} and HELPERS_DEBIAN_OFFLINE=1 "
                                "forbids downloading it (offline)")
    deb = download_deb(package, root / DOWNLOAD_DIR, progress)
    remove_leftovers(folder)  # temporaries of a killed earlier run (one writer per root)

    def fill(tmp: Path) -> None:
        unpack_deb(deb, tmp)
        write_json(tmp / STAMP, package.stamp())  # last: marks the folder complete

    try:
        atomic_folder(folder, fill)
    except DownloadError:  # damaged or refused: the same bytes would fail again
        deb.unlink(missing_ok=True)
        raise
    deb.unlink()  # the unpacked tree is all that is kept
    return folder


def fetch_packages(
    names: Iterable[str], root: Path | None = None, progress: bool = True
) -> tuple[dict[str, Path], dict[str, str]]:
    """Fetch each package of ``names``; return (name -> folder, name -> why it is missing).

    Never raises for a package that cannot be had (network, checksum, damaged ``.deb``,
    ``HELPERS_DEBIAN_OFFLINE=1``): it is reported missing, with a one-line notice on stderr,
    so the demo can be built from what is available. Unknown names raise ``KeyError`` before
    anything is fetched.
    Used in: helpers/sources (the demo set's sample libraries).
    """
    names = list(names)
    for name in names:
        _package(name)
    available: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for name in names:
        try:
            available[name] = fetch_package(name, root, progress)
        except DownloadError as err:
            missing[name] = " ".join(str(err).split())
            print(f"Debian package {name} is missing: {missing[name]}", file=sys.stderr)
    return available, missing


def package_table() -> list[dict[str, Any]]:
    """One row per pinned package (package, version, licence, size_mb, summary) for the docs."""
    return [
        {"package": p.name, "version": p.version, "licence": p.licence,
         "size_mb": round(p.size / 1e6, 1), "summary": p.summary}
        for p in DEBIAN_PACKAGES.values()
    ]
