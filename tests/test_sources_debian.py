"""helpers/sources/debian.py on tiny .deb files built here and served from 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import sys
import tarfile
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers.download import DownloadError, UnsafeArchiveError
from helpers.sources import debian
from helpers.sources.debian import (
    DEBIAN_PACKAGES,
    DebPackage,
    SourceUnavailable,
    fetch_package,
    fetch_packages,
    package_table,
    unpack_deb,
)

SF2 = b"RIFF\x10\x00\x00\x00sfbk" + bytes(range(256)) * 4
README = b"a small package\n"
# The files unpack_deb should leave (links become copies of their targets).
EXPECTED = {
    "usr/lib/tiny/kit.sf2": SF2,
    "usr/share/doc/tiny/README": README,
    "usr/share/sounds/sf2/kit.sf2": SF2,  # symlink -> ../../../lib/tiny/kit.sf2
    "usr/share/sounds/sf2/alias.sf2": SF2,  # symlink -> kit.sf2 (a link to a link)
    "usr/share/sounds/absolute.sf2": SF2,  # symlink -> /usr/lib/tiny/kit.sf2 (package root)
    "usr/share/doc/tiny/README.hard": README,  # hard link
    "usr/share/tiny-linked/kit.sf2": SF2,  # symlink to the folder usr/lib/tiny
}


# --- building .deb files -----------------------------------------------------------------------


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    """An ar archive in the GNU style (names end with "/"; data padded to even offsets)."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = (f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}").encode()
        out += header + b"`\n" + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def tar_bytes(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]],
              compression: str = "xz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w") as tar:
        for entry in entries:
            info, data = entry if isinstance(entry, tuple) else (entry, None)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None,
          link: str = "") -> tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, link, 1_700_000_000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return (info, data) if data is not None else info


def tiny_entries() -> list:
    d, sym, hard = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
    return [
        entry("./", d),
        entry("./usr/", d),
        entry("./usr/lib/", d),
        entry("./usr/lib/tiny/", d),
        entry("./usr/lib/tiny/kit.sf2", data=SF2),
        entry("./usr/share/", d),
        entry("./usr/share/doc/", d),
        entry("./usr/share/doc/tiny/", d),
        entry("./usr/share/doc/tiny/README", data=README),
        entry("./usr/share/doc/tiny/README.hard", hard, link="./usr/share/doc/tiny/README"),
        entry("./usr/share/sounds/", d),
        entry("./usr/share/sounds/sf2/", d),
        entry("./usr/share/sounds/sf2/alias.sf2", sym, link="kit.sf2"),  # before its target
        entry("./usr/share/sounds/sf2/kit.sf2", sym, link="../../../lib/tiny/kit.sf2"),
        entry("./usr/share/sounds/absolute.sf2", sym, link="/usr/lib/tiny/kit.sf2"),
        entry("./usr/share/tiny-linked", sym, link="../lib/tiny"),
        entry("./usr/share/outside", sym, link="../../../../etc/passwd"),  # skipped
        entry("./usr/share/dangling", sym, link="nowhere/file"),  # skipped
        entry("./usr/share/fifo", tarfile.FIFOTYPE),  # skipped
    ]


def build_deb(path: Path, entries: list | None = None, compression: str = "xz") -> Path:
    """A Debian package: debian-binary, control.tar.xz and data.tar.<compression>."""
    control = tar_bytes([entry("./control", data=b"Package: tiny\nVersion: 1.0\n")], "xz")
    data = tar_bytes(tiny_entries() if entries is None else entries, compression)
    data_name = "data.tar" + (f".{compression}" if compression else "")
    path.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control),
                                 (data_name, data)]))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- unpack_deb ----------------------------------------------------------------------------------


def test_pinned_packages_are_well_formed():
    assert sorted(DEBIAN_PACKAGES) == ["avldrums.lv2-soundfont", "denemo-data", "freepats",
                                       "lmms-common", "sonic-pi-samples"]
    for name, package in DEBIAN_PACKAGES.items():
        assert package.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", package.sha256), name
        assert package.size > 0 and package.licence and package.summary
        assert package.pool_path.startswith("pool/main/")
        assert package.filename.startswith(package.name + "_")
        assert package.filename == f"{package.name}_{package.version}_all.deb"
    assert [row["package"] for row in package_table()] == list(DEBIAN_PACKAGES)
    assert package_table()[0]["size_mb"] == 9.7  # denemo-data, 9,659,224 bytes


def test_urls_are_percent_encoded(monkeypatch):
    monkeypatch.delenv("HELPERS_DEBIAN_MIRROR", raising=False)
    assert debian.package_url(DEBIAN_PACKAGES["lmms-common"]) == (
        "http://deb.debian.org/debian/pool/main/l/lmms/lmms-common_1.2.2%2Bdfsg1-6_all.deb")
    monkeypatch.setenv("HELPERS_DEBIAN_MIRROR", "http://127.0.0.1:9/mirror/")
    assert debian.package_url(DEBIAN_PACKAGES["sonic-pi-samples"]) == (
        "http://127.0.0.1:9/mirror/pool/main/s/sonic-pi/sonic-pi-samples_3.2.2~repack-8_all.deb")


def test_sources_dir_follows_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    assert debian.sources_dir() == tmp_path / "sources"


@pytest.mark.parametrize("data_filter", [True, False], ids=["data filter", "own checks only"])
def test_unpack_extracts_files_and_materialises_internal_links(tmp_path, monkeypatch, data_filter):
    monkeypatch.setattr(debian, "_HAS_DATA_FILTER", data_filter and debian._HAS_DATA_FILTER)
    deb = build_deb(tmp_path / "tiny_1.0_all.deb")
    out = tmp_path / "out"
    files = unpack_deb(deb, out)
    assert files == sorted(EXPECTED)
    assert tree(out) == EXPECTED
    assert not [p for p in out.rglob("*") if p.is_symlink()]
    assert not (out / "usr/share/outside").exists() and not (out / "usr/share/fifo").exists()
    assert not (out / "usr/share/dangling").exists()


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_each_data_compression_unpacks(tmp_path, compression):
    deb = build_deb(tmp_path / "tiny.deb", compression=compression)
    unpack_deb(deb, tmp_path / "out")
    assert tree(tmp_path / "out") == EXPECTED


def test_zstd_without_its_module_names_package_and_module(tmp_path, monkeypatch):
    deb = tmp_path / "tiny_zst.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("data.tar.zst", b"\x28\xb5\x2f\xfd")]))
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if not installed
    with pytest.raises(DownloadError, match=r"tiny_zst\.deb: .*Zstandard.*pip install zstandard"):
        unpack_deb(deb, tmp_path / "out")


@pytest.mark.parametrize("member", ["../evil", "./usr/../../evil", "/tmp/evil", "..\\evil"])
def test_unsafe_member_is_refused_before_anything_is_written(tmp_path, member):
    entries = [entry("./usr/", tarfile.DIRTYPE), entry("./usr/ok", data=b"fine"),
               entry(member, data=b"pwned")]
    deb = build_deb(tmp_path / "evil_1_all.deb", entries)
    out = tmp_path / "a" / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        unpack_deb(deb, out)
    assert repr(member) in str(err.value) and "evil_1_all.deb" in str(err.value)
    assert not out.exists()
    assert not list(tmp_path.rglob("evil"))


@pytest.mark.parametrize("damage", ["not ar", "truncated", "no data member", "bad data"])
def test_malformed_deb_raises_download_error_naming_it(tmp_path, damage):
    deb = build_deb(tmp_path / "broken_1_all.deb")
    data = deb.read_bytes()
    if damage == "not ar":
        deb.write_bytes(b"<html>Service unavailable</html>")
    elif damage == "truncated":
        deb.write_bytes(data[: len(data) - 100])
    elif damage == "no data member":
        deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", b"x")]))
    else:
        deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("data.tar.xz", b"not xz")]))
    with pytest.raises(DownloadError, match=r"broken_1_all\.deb") as err:
        unpack_deb(deb, tmp_path / "out")
    assert not isinstance(err.value, UnsafeArchiveError)


# --- fetching from a local mirror ----------------------------------------------------------------


class Mirror:
    """Serves ``folder`` (laid out as a Debian pool) on 127.0.0.1, recording every request."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.requests = folder, []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/debian"

    def _handler(self):
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                mirror.requests.append(self.path)
                relative = unquote(urlsplit(self.path).path).removeprefix("/debian/")
                path = mirror.folder / relative
                if ".." in Path(relative).parts or not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.debian.binary-package")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


TINY = "tiny-sounds"
TINY_POOL = "pool/main/t/tiny/tiny-sounds_1.0~rc1+dfsg-1_all.deb"  # "~" and "+" as in the pins


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local mirror serving one tiny package, registered as DEBIAN_PACKAGES["tiny-sounds"]."""
    deb = tmp_path / "mirror" / TINY_POOL
    deb.parent.mkdir(parents=True)
    build_deb(deb)
    server = Mirror(tmp_path / "mirror")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy", "HELPERS_DEBIAN_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HELPERS_DEBIAN_MIRROR", server.url)
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HELPERS_PROGRESS", "off")
    monkeypatch.setattr(debian, "RETRIES", 0)  # no 1 s pause before pooch's retry
    monkeypatch.setitem(DEBIAN_PACKAGES, TINY, DebPackage(
        name=TINY, version="1.0~rc1+dfsg-1", pool_path=TINY_POOL, size=deb.stat().st_size,
        sha256=sha256_of(deb), licence="CC0", summary="a test package"))
    yield server
    server.close()


def sources(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sources"


def leftovers(root: Path) -> list[str]:
    """Files under ``root`` that could pass for a download or an unpacked package."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.suffix == ".deb" or p.name.startswith("tmp") or ".tmp-" in p.name
                  or p.name == TINY)


def test_fetch_downloads_unpacks_stamps_and_deletes_the_deb(mirror, tmp_path):
    folder = fetch_package(TINY, progress=False)
    assert folder == sources(tmp_path) / TINY
    assert tree(folder) == {**EXPECTED, ".complete": (folder / ".complete").read_bytes()}
    assert json.loads((folder / ".complete").read_text()) == {
        "name": TINY, "version": "1.0~rc1+dfsg-1", "sha256": DEBIAN_PACKAGES[TINY].sha256}
    assert mirror.requests == ["/debian/pool/main/t/tiny/tiny-sounds_1.0~rc1%2Bdfsg-1_all.deb"]
    assert not list(sources(tmp_path).rglob("*.deb"))
    assert not list(sources(tmp_path).glob(".*.tmp-*"))
    assert debian.is_unpacked(TINY)


def test_second_fetch_reuses_without_a_request_or_pooch(mirror, tmp_path, monkeypatch):
    fetch_package(TINY, progress=False)
    monkeypatch.setitem(sys.modules, "pooch", None)  # importing pooch would now fail
    assert fetch_package(TINY, progress=False) == sources(tmp_path) / TINY
    assert len(mirror.requests) == 1


@pytest.mark.parametrize("stamp", [None, {"name": TINY, "version": "0.9", "sha256": "0" * 64}])
def test_folder_with_another_or_no_stamp_is_replaced(mirror, tmp_path, stamp):
    folder = sources(tmp_path) / TINY
    folder.mkdir(parents=True)
    (folder / "old_file").write_text("from an older version")
    if stamp is not None:
        (folder / ".complete").write_text(json.dumps(stamp))
    fetch_package(TINY, progress=False)
    assert not (folder / "old_file").exists()
    assert (folder / "usr/share/sounds/sf2/kit.sf2").read_bytes() == SF2
    assert len(mirror.requests) == 1


def test_checksum_mismatch_keeps_nothing(mirror, tmp_path, monkeypatch):
    package = DEBIAN_PACKAGES[TINY]
    monkeypatch.setitem(DEBIAN_PACKAGES, TINY, replace(package, sha256="0" * 64))
    with pytest.raises(SourceUnavailable) as err:
        fetch_package(TINY, progress=False)
    message = str(err.value)
    assert message.startswith(f"{TINY}: ") and "0" * 64 in message and package.sha256 in message
    assert debian.package_url(package) in message
    assert leftovers(sources(tmp_path)) == []  # no .deb, no pooch temporary, no folder


def test_http_error_names_the_url_and_is_retried_once(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(debian, "RETRIES", 1)  # the real setting: one more try, after 1 s
    (mirror.folder / TINY_POOL).unlink()
    with pytest.raises(SourceUnavailable, match="404") as err:
        fetch_package(TINY, progress=False)
    assert isinstance(err.value, DownloadError)
    assert f"{mirror.url}/pool/main/t/tiny/tiny-sounds_1.0~rc1%2Bdfsg-1_all.deb" in str(err.value)
    assert len(mirror.requests) == 2
    assert leftovers(sources(tmp_path)) == []


def test_unreachable_mirror_raises_source_unavailable(mirror, tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/debian"
    monkeypatch.setenv("HELPERS_DEBIAN_MIRROR", closed)
    with pytest.raises(SourceUnavailable, match=re.escape(closed)):
        fetch_package(TINY, progress=False)
    assert leftovers(sources(tmp_path)) == []


def test_damaged_deb_is_deleted_and_named(mirror, tmp_path, monkeypatch):
    deb = mirror.folder / TINY_POOL
    deb.write_bytes(b"not a Debian package")
    package = DEBIAN_PACKAGES[TINY]
    monkeypatch.setitem(DEBIAN_PACKAGES, TINY, replace(package, sha256=sha256_of(deb)))
    with pytest.raises(DownloadError, match=re.escape(package.filename)):
        fetch_package(TINY, progress=False)
    assert leftovers(sources(tmp_path)) == []


def test_unknown_package_lists_the_known_ones(mirror):
    with pytest.raises(KeyError, match="denemo-data.*freepats"):
        fetch_package("no-such-package")
    with pytest.raises(KeyError, match="no-such-package"):
        fetch_packages([TINY, "no-such-package"])
    assert mirror.requests == []  # names are checked before anything is fetched


def test_fetch_packages_reports_the_unreachable_one(mirror, tmp_path, monkeypatch, capsys):
    missing_pool = "pool/main/g/gone/gone_1_all.deb"
    monkeypatch.setitem(DEBIAN_PACKAGES, "gone", DebPackage(
        name="gone", version="1", pool_path=missing_pool, size=1, sha256="0" * 64,
        licence="CC0", summary="not on the mirror"))
    available, missing = fetch_packages(["gone", TINY], progress=False)
    assert available == {TINY: sources(tmp_path) / TINY}
    assert list(missing) == ["gone"] and "404" in missing["gone"]
    assert "\n" not in missing["gone"] and missing_pool in missing["gone"]
    err = capsys.readouterr().err
    assert "Debian package gone is missing" in err and "Traceback" not in err


def test_offline_makes_no_request(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_DEBIAN_OFFLINE", "1")
    available, missing = fetch_packages([TINY, "denemo-data"], progress=False)
    assert available == {} and sorted(missing) == ["denemo-data", TINY]
    assert all("offline" in reason for reason in missing.values())
    assert mirror.requests == []
    monkeypatch.delenv("HELPERS_DEBIAN_OFFLINE")
    fetch_package(TINY, progress=False)
    monkeypatch.setenv("HELPERS_DEBIAN_OFFLINE", "1")  # what is unpacked stays available
    available, missing = fetch_packages([TINY], progress=False)
    assert available == {TINY: sources(tmp_path) / TINY} and missing == {}
    assert len(mirror.requests) == 1


def test_module_has_no_shared_paths():
    source = Path(debian.__file__).read_text()
    assert "/work/shared" not in source and "../shared" not in source
