"""helpers/download.py against a local HTTP server serving small fixture zips (no internet)."""

from __future__ import annotations

import hashlib
import shutil
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from helpers import download
from helpers.data import META_DIR, TEST_CSV, TRAIN_CSV, load_metadata
from helpers.download import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    archive_name,
    fetch_fsdkaggle2018,
    unpack_archive,
)

FIXTURES = Path(__file__).parents[1] / "helpers" / "resources" / "FSDKaggle2018.meta"
LAYOUT = ["FSDKaggle2018.audio_test", "FSDKaggle2018.audio_train", "FSDKaggle2018.meta"]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return path


def build_archives(folder: Path) -> None:
    """The four archives in the real layout: real CSVs, a few stand-in WAVs, a doc."""
    meta = {f"{META_DIR}/{n}": (FIXTURES / n).read_bytes() for n in (TRAIN_CSV, TEST_CSV)}
    write_zip(folder / archive_name("meta"), meta)
    write_zip(
        folder / archive_name("audio_train"),
        {
            "FSDKaggle2018.audio_train/00044347.wav": b"RIFF" + b"\0" * 200,
            "FSDKaggle2018.audio_train/001ca53d.wav": b"RIFF" + b"\1" * 200,
        },
    )
    write_zip(
        folder / archive_name("audio_test"),
        {"FSDKaggle2018.audio_test/00326aa9.wav": b"RIFF" + b"\2" * 200},
    )
    write_zip(folder / archive_name("doc"), {"FSDKaggle2018.doc/README.md": b"# doc\n"})


class FileServer:
    """Serves ``folder``'s files by base name on 127.0.0.1, recording every GET."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.requests, self.truncate = folder, [], set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/record/files"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                name = Path(urlsplit(self.path).path).name
                server.requests.append(name)
                path = server.folder / name
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.truncate:  # promise the whole body, send half, hang up
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path, monkeypatch):
    folder = tmp_path / "served"
    folder.mkdir()
    build_archives(folder)
    server = FileServer(folder)
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "FSDKAGGLE2018_DIR",
        "FSDKAGGLE2018_NO_VERIFY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("FSDKAGGLE2018_URL", server.url)
    for path in folder.glob("*.zip"):
        monkeypatch.setitem(download.REGISTRY, path.name, "md5:" + md5_of(path))
    yield server
    server.close()


def leftovers(root: Path) -> list[str]:
    """Files under ``root`` that could pass for a downloaded or unpacked archive."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.suffix in (".zip", ".unpacked")
        or p.name.startswith("tmp") or ".tmp-" in p.name  # pooch's and helpers.files' temporaries
        or p.name.startswith("FSDKaggle2018.")
    )


# The archive facts this project was given (a third-party loader's record of the Zenodo
# archives' MD5 sums, not verified against Zenodo from here; helpers/download.py says so).
RECORDED_MD5 = {
    "FSDKaggle2018.audio_train.zip": "a8b47ff4b52022c178f88fa5c6f080d0",
    "FSDKaggle2018.audio_test.zip": "f85c8665c3fc39311ea1b748e194a81d",
    "FSDKaggle2018.meta.zip": "f16828ac8be0e5285b9175a12f90d784",
    "FSDKaggle2018.doc.zip": "4f2d1ac88f33a62f9db3108b269ee1b7",
}


def test_registry_holds_the_recorded_archives_and_md5s(monkeypatch):
    """URLs follow the Zenodo record's pattern and the registry checks each archive against
    its recorded MD5 (a typo there would reject every real download)."""
    monkeypatch.delenv("FSDKAGGLE2018_URL", raising=False)
    assert download.archive_url("FSDKaggle2018.meta.zip") == (
        "https://zenodo.org/record/2552860/files/FSDKaggle2018.meta.zip?download=1"
    )
    assert download.REGISTRY == {name: f"md5:{md5}" for name, md5 in RECORDED_MD5.items()}
    assert sorted(download.REGISTRY) == sorted(archive_name(k) for k in download.ARCHIVES)
    with pytest.raises(ValueError, match="audio_train"):
        archive_name("audio")


def test_download_and_unpack_gives_layout(served, tmp_path):
    root = fetch_fsdkaggle2018(tmp_path / "fsd")
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == LAYOUT
    assert sorted(served.requests) == sorted(
        archive_name(k) for k in ("meta", "audio_train", "audio_test")
    )
    assert not list((root / ".download").glob("*.zip"))  # deleted once unpacked
    meta = load_metadata(root)
    assert len(meta) == 9473 + 1600
    assert meta.loc[meta["fname"] == "00044347.wav", "path"].iloc[0].is_file()


def test_rerun_downloads_nothing(served, tmp_path):
    fetch_fsdkaggle2018(tmp_path / "fsd")
    before = len(served.requests)
    fetch_fsdkaggle2018(tmp_path / "fsd")
    assert len(served.requests) == before == 3


def test_doc_archive_and_resume_after_partial_run(served, tmp_path):
    root = fetch_fsdkaggle2018(tmp_path / "fsd", archives=("meta",))
    fetch_fsdkaggle2018(root, archives=("meta", "doc"))
    assert served.requests == [archive_name("meta"), archive_name("doc")]
    assert (root / "FSDKaggle2018.doc" / "README.md").read_text() == "# doc\n"


def test_folder_without_stamp_is_replaced(served, tmp_path):
    root = tmp_path / "fsd"
    (root / META_DIR).mkdir(parents=True)
    (root / META_DIR / "half_written.csv").write_text("x")
    fetch_fsdkaggle2018(root, archives=("meta",))
    assert sorted(p.name for p in (root / META_DIR).iterdir()) == sorted([TEST_CSV, TRAIN_CSV])


def test_checksum_mismatch_names_archive_and_keeps_nothing(served, tmp_path, monkeypatch):
    name = archive_name("meta")
    actual = md5_of(served.folder / name)
    monkeypatch.setitem(download.REGISTRY, name, "md5:" + "0" * 32)
    root = tmp_path / "fsd"
    with pytest.raises(ChecksumError) as err:
        fetch_fsdkaggle2018(root, archives=("meta",))
    message = str(err.value)
    assert name in message and "0" * 32 in message and actual in message
    assert "FSDKAGGLE2018_NO_VERIFY=1" in message and "verify=False" in message
    assert leftovers(root) == []
    monkeypatch.setenv("FSDKAGGLE2018_NO_VERIFY", "1")  # the documented override works
    fetch_fsdkaggle2018(root, archives=("meta",))
    assert (root / META_DIR / TRAIN_CSV).is_file()


def test_the_command_line_prints_a_failed_download_as_one_message(served, tmp_path, monkeypatch, capsys):
    from helpers.cli import main

    monkeypatch.setitem(download.REGISTRY, archive_name("meta"), "md5:" + "0" * 32)
    assert main(["data", "fsdkaggle2018", "--out", str(tmp_path / "fsd")]) == 1
    err = capsys.readouterr().err
    assert f"\ndata: {archive_name('meta')}" in err and "Traceback" not in err


def test_server_closing_mid_body_leaves_nothing_and_retry_succeeds(served, tmp_path):
    name = archive_name("meta")
    served.truncate.add(name)
    root = tmp_path / "fsd"
    with pytest.raises(DownloadError, match=name) as err:
        fetch_fsdkaggle2018(root, archives=("meta",))
    assert not isinstance(err.value, ChecksumError) and "rerun" in str(err.value)
    assert leftovers(root) == []
    served.truncate.clear()
    fetch_fsdkaggle2018(root, archives=("meta",))
    assert (root / META_DIR / TEST_CSV).is_file()


@pytest.mark.parametrize("error", [ConnectionResetError, KeyboardInterrupt])
def test_raising_downloader_leaves_nothing_and_retry_succeeds(served, tmp_path, monkeypatch, error):
    def half_then_fail(url, output_file, pooch):
        body = (served.folder / archive_name("meta")).read_bytes()
        output_file.write(body[: len(body) // 2])
        raise error("connection lost")

    monkeypatch.setattr(download, "_http_downloader", lambda: half_then_fail)
    root = tmp_path / "fsd"
    with pytest.raises((DownloadError, KeyboardInterrupt)):
        fetch_fsdkaggle2018(root, archives=("meta",))
    assert leftovers(root) == []
    monkeypatch.undo()  # back to the real downloader, server and registry
    monkeypatch.setenv("FSDKAGGLE2018_URL", served.url)
    for path in served.folder.glob("*.zip"):
        monkeypatch.setitem(download.REGISTRY, path.name, "md5:" + md5_of(path))
    fetch_fsdkaggle2018(root, archives=("meta",))
    assert (root / META_DIR / TRAIN_CSV).is_file()


def _damage(path: Path, how: str) -> None:
    """Make ``path`` an unreadable archive: not a zip at all, or a zip whose member data no
    longer matches its CRC (the file list still reads)."""
    if how == "not a zip":
        path.write_bytes(b"<html>Service unavailable</html>")
        return
    data = bytearray(path.read_bytes())
    header = data.index(b"PK\x03\x04")  # the first member: 30-byte header + name, then data
    start = header + 30 + int.from_bytes(data[header + 26:header + 28], "little") \
        + int.from_bytes(data[header + 28:header + 30], "little")
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["not a zip", "bad CRC"])
def test_a_damaged_archive_is_named_deleted_and_fetched_again(served, tmp_path, monkeypatch, how):
    """An archive that downloads whole but does not unzip (its MD5 matches a damaged file, or
    the check is off) gets a message naming it, leaves nothing behind, and is not reused."""
    name = archive_name("meta")
    good = (served.folder / name).read_bytes()
    _damage(served.folder / name, how)
    monkeypatch.setitem(download.REGISTRY, name, "md5:" + md5_of(served.folder / name))
    root = tmp_path / "fsd"
    with pytest.raises(DownloadError, match=rf"{name}: .* is not a readable zip archive") as err:
        fetch_fsdkaggle2018(root, archives=("meta",))
    assert "deleted" in str(err.value) and "Rerun" in str(err.value)
    assert leftovers(root) == []
    (served.folder / name).write_bytes(good)  # the server has a good copy again
    monkeypatch.setitem(download.REGISTRY, name, "md5:" + md5_of(served.folder / name))
    fetch_fsdkaggle2018(root, archives=("meta",))
    assert served.requests == [name, name]  # downloaded again, not taken from the first try
    assert (root / META_DIR / TRAIN_CSV).is_file()


def test_zip_slip_through_fetch_is_refused(served, tmp_path, monkeypatch):
    name = archive_name("meta")
    evil = write_zip(
        served.folder / name, {f"{META_DIR}/{TRAIN_CSV}": b"fname,label\n", "../evil.txt": b"pwned"}
    )
    monkeypatch.setitem(download.REGISTRY, name, "md5:" + md5_of(evil))
    root = tmp_path / "fsd"
    with pytest.raises(UnsafeArchiveError, match=r"\.\./evil\.txt"):
        fetch_fsdkaggle2018(root, archives=("meta",))
    assert not (tmp_path / "evil.txt").exists()
    assert not (root / META_DIR).exists()
    assert not list(root.glob(".*.tmp-*"))


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "FSDKaggle2018.meta/../../evil.txt", "ABSOLUTE", "C:/evil.txt", "..\\evil.txt"],
)
def test_unsafe_member_refused_and_nothing_extracted(tmp_path, member):
    member = str(tmp_path / "evil.txt") if member == "ABSOLUTE" else member
    archive = write_zip(tmp_path / "bad.zip", {f"{META_DIR}/ok.csv": b"x", member: b"pwned"})
    root = tmp_path / "a" / "b"
    with pytest.raises(UnsafeArchiveError) as err:
        unpack_archive(archive, root, META_DIR)
    assert repr(member) in str(err.value) and "bad.zip" in str(err.value)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (root / META_DIR).exists()


def test_symlink_member_refused(tmp_path):
    archive = tmp_path / "link.zip"
    link = zipfile.ZipInfo(f"{META_DIR}/passwd")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        unpack_archive(archive, tmp_path / "root", META_DIR)
    assert not (tmp_path / "root" / META_DIR).exists()


def test_archive_without_expected_folder(tmp_path):
    archive = write_zip(tmp_path / "odd.zip", {"other/file.txt": b"x"})
    with pytest.raises(DownloadError, match=r"odd\.zip.*FSDKaggle2018\.meta"):
        unpack_archive(archive, tmp_path / "root", META_DIR)
    assert list((tmp_path / "root").iterdir()) == []


def test_existing_copy_short_circuits(served, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    for folder in LAYOUT:
        (copy / folder).mkdir(parents=True)
    for name in (TRAIN_CSV, TEST_CSV):
        shutil.copy(FIXTURES / name, copy / META_DIR / name)
    monkeypatch.setenv("FSDKAGGLE2018_DIR", str(copy))
    assert fetch_fsdkaggle2018() == copy
    assert fetch_fsdkaggle2018(tmp_path / "elsewhere") == copy
    assert served.requests == []
    assert not (tmp_path / "elsewhere").exists()


def test_incomplete_env_copy_is_completed_in_place(served, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "copy"
    monkeypatch.setenv("FSDKAGGLE2018_DIR", str(copy))
    assert fetch_fsdkaggle2018(archives=("meta",)) == copy
    assert f"$FSDKAGGLE2018_DIR={copy} lacks the metadata CSVs" in capsys.readouterr().out
    assert served.requests == [archive_name("meta")]
    assert (copy / META_DIR / TRAIN_CSV).is_file()


def test_module_has_no_shared_paths():
    source = Path(download.__file__).read_text()
    assert "/work/shared" not in source and "../shared" not in source
