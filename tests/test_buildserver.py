"""The resident build server (handbook/buildserver.py), as a user meets it: `python build.py` run again and
again, with the server started, stale, killed, hung, stopped or turned off.

Each test has its own socket folder (TMPDIR) and turns the server on for its own processes only (conftest
turns it off for every other test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
TODAY = ["--today", "2026-11-22"]
HANDED = "built by the resident build server"
pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX") or not hasattr(os, "fork"), reason="POSIX only")


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    """The environment of a user whose builds may use a server, with a socket folder of this test's own
    (short: a Unix socket's path has ~100 bytes). The server is stopped and its folder removed after."""
    base = tempfile.mkdtemp(prefix="eds-", dir="/tmp")
    environ = {**os.environ, "TMPDIR": base, "ESTATE_DESK_BUILD_SERVER": "2"}
    environ.pop("XDG_RUNTIME_DIR", None)
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    yield environ
    for pid in _server_pids(environ):
        _kill(pid)
    shutil.rmtree(base, ignore_errors=True)


def _build(env: dict[str, str], *args: str, code: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, str(code / "build.py"), *args], env=env, capture_output=True, text=True,
                         encoding="utf-8", timeout=120)
    if check:
        assert run.returncode == 0, run.stderr
    return run


def _folder(env: dict[str, str]) -> Path:
    return Path(env["TMPDIR"]) / f"estate-desk-{os.getuid()}"


def _server_pids(env: dict[str, str]) -> list[int]:
    """The pids written in the lock files of servers whose lock is still held."""
    pids = []
    for lock in _folder(env).glob("build-*.lock"):
        text = lock.read_text().strip()
        if text.isdigit() and _alive(int(text)):
            pids.append(int(text))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:  # a zombie is not alive
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:  # no /proc (macOS): ps says
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
        return bool(state.strip()) and not state.strip().startswith("Z")


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.kill(pid, signal.SIGKILL)


def _wait_for(predicate, timeout: float = 20) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _serving(env: dict[str, str]) -> int:
    """Wait for a server to listen (its socket made after its lock: a killed one's may still be there); its pid."""
    def listening() -> bool:
        locks, sockets = list(_folder(env).glob("*.lock")), list(_folder(env).glob("*.sock"))
        return bool(_server_pids(env) and sockets and sockets[0].stat().st_mtime_ns >= locks[0].stat().st_mtime_ns)

    assert _wait_for(listening), "no server started"
    return _server_pids(env)[0]


def _edit(root: Path, old: str, new: str) -> None:
    src = root / "procedures/duty.md"
    src.write_text(src.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def _site(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_build_is_handed_to_the_server_and_writes_what_a_build_here_writes(env: dict[str, str], tmp_path: Path,
                                                                                estate_copy) -> None:  # noqa: ANN001
    here, there = estate_copy("mini", tmp_path / "a"), estate_copy("mini", tmp_path / "b")
    first = _build(env, "--root", str(here), *TODAY, "-v")
    assert HANDED not in first.stderr  # no server yet: built here, then one is started
    server = _serving(env)
    for root in (here, there):
        _edit(root, "值班员须准时到岗", "值班员须提前十分钟到岗")
    handed = _build(env, "--root", str(here), *TODAY, "-v")
    assert HANDED in handed.stderr
    assert f"pid {server}" not in handed.stderr  # a child of the server built it, not the server itself
    assert "完成：写入" in handed.stdout  # the summary, on the client's own stdout
    _build(env, "--root", str(there), *TODAY, "--no-server")
    assert _site(here / "site") == _site(there / "site")
    assert "值班员须提前十分钟到岗" in (here / "site/staff/procedures/t-001.html").read_text(encoding="utf-8")
    assert _server_pids(env) == [server]  # the same server goes on


def test_problems_and_the_exit_code_come_back_from_the_server(env: dict[str, str], mini: Path) -> None:
    _build(env, "--root", str(mini), *TODAY)
    _serving(env)
    page = (mini / "site/staff/procedures/t-001.html").read_bytes()
    _edit(mini, "owner: 客服主管\n", "")
    failed = _build(env, "--root", str(mini), *TODAY, "-v", check=False)
    assert failed.returncode == 1
    assert HANDED in failed.stderr
    assert "duty.md:" in failed.stderr and "owner" in failed.stderr and "构建失败" in failed.stderr
    assert (mini / "site/staff/procedures/t-001.html").read_bytes() == page  # the last good site stays
    usage = _build(env, "--root", str(mini), "--no-such-option", check=False)
    assert usage.returncode == 2 and "unrecognized arguments" in usage.stderr  # argparse, as a process would
    helped = _build(env, "--help")
    assert "--stop-server" in helped.stdout


def test_a_server_whose_code_changed_is_not_used(env: dict[str, str], tmp_path: Path, mini: Path) -> None:
    """A copy of the program: touching one of its modules makes the running server stale."""
    code = tmp_path / "code"
    code.mkdir()
    shutil.copyfile(REPO / "build.py", code / "build.py")
    for package in ("handbook", "render", "estate", "processor"):
        shutil.copytree(REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**env, "PYTHONPATH": str(code)}  # on the library path too, as an editable install puts it
    _build(env, "--root", str(mini), *TODAY, code=code)
    old = _serving(env)
    (code / "site").mkdir()  # the checkout's folder changes (its own estate's site/, var/): not its code
    (code / "notes.txt").write_text("x", encoding="utf-8")
    assert HANDED in _build(env, "--root", str(mini), *TODAY, "-v", code=code).stderr
    module = code / "handbook/models.py"
    os.utime(module, ns=(time.time_ns(), module.stat().st_mtime_ns + 10**9))
    stale = _build(env, "--root", str(mini), *TODAY, "-v", code=code)
    assert HANDED not in stale.stderr  # built here, by the changed code
    assert _wait_for(lambda: not _alive(old)), "the stale server did not end"
    new = _serving(env)
    assert new != old
    assert HANDED in _build(env, "--root", str(mini), *TODAY, "-v", code=code).stderr


def test_a_killed_server_is_replaced_and_a_hung_one_is_passed_by(env: dict[str, str], mini: Path) -> None:
    _build(env, "--root", str(mini), *TODAY)
    killed = _serving(env)
    os.kill(killed, signal.SIGKILL)  # its socket file stays behind
    assert _wait_for(lambda: not _alive(killed))
    after = _build(env, "--root", str(mini), *TODAY, "-v")
    assert HANDED not in after.stderr and "完成" in after.stdout
    hung = _serving(env)
    assert hung != killed
    os.kill(hung, signal.SIGSTOP)
    try:
        started = time.monotonic()
        passed = _build(env, "--root", str(mini), *TODAY, "-v")  # its stdout is a pipe: had the stopped
        assert HANDED not in passed.stderr and "完成" in passed.stdout  # server got it, this would hang
        assert time.monotonic() - started < 20
    finally:
        os.kill(hung, signal.SIGCONT)


@pytest.mark.parametrize("last_words, expected, said", [
    (b"", None, "ended before building; building here"),           # gone before it began: build here
    (b"building\n", 1, "ended unexpectedly in the build server"),  # gone mid-build: say so, exit 1
])
def test_a_build_child_that_ends_without_an_exit_code(env: dict[str, str], mini: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str], last_words: bytes,
                                                      expected: int | None, said: str) -> None:
    """A stand-in server answers with a pid (of a process that does not exist), takes the terminal, and hangs up."""
    from handbook import buildserver

    for name in ("TMPDIR", "ESTATE_DESK_BUILD_SERVER"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    errors: list[BaseException] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(buildserver.address(buildserver.folder()))
        listener.listen(1)
        listener.settimeout(20)

        def answer() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    assert buildserver._receive(conn)["argv"] == ["--root", str(mini)]
                    conn.sendall(b"pid 999999999\n")
                    go, fds, _, _ = socket.recv_fds(conn, 16, 3)
                    for fd in fds:
                        os.close(fd)
                    assert go == buildserver.GO and len(fds) == 3
                    conn.sendall(last_words)
            except BaseException as exc:  # noqa: BLE001 - failed in the thread: the test reports it
                errors.append(exc)

        thread = threading.Thread(target=answer)
        thread.start()
        assert buildserver.hand_off(["--root", str(mini)]) == expected
        thread.join(timeout=20)
    assert not errors and not thread.is_alive()
    assert said in capfd.readouterr().err


def test_a_killed_client_interrupts_its_build(env: dict[str, str], tmp_path: Path, mini: Path) -> None:
    """kill -9 of `build.py` while the server builds: the build stops, as it would have in the client."""
    big = _big_estate(env, mini)
    out = tmp_path / "out.txt"
    with out.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen([sys.executable, str(REPO / "build.py"), "--root", str(big), "--clean", *TODAY],
                                env=env, stdout=fh, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        _wait_for_parse(proc)
        proc.kill()
        proc.wait(timeout=10)
    time.sleep(3)
    assert "完成" not in out.read_text(encoding="utf-8")  # the build child did not go on to the end


def _big_estate(env: dict[str, str], big: Path) -> Path:
    """BIG (a copy of the mini estate), built once (so a server runs), then grown by 600 procedures: a build
    that takes a while."""
    body = (big / "procedures/duty.md").read_text(encoding="utf-8")
    _build(env, "--root", str(big), *TODAY)
    _serving(env)
    for i in range(600):
        text = body.replace("id: T-001", f"id: T-{i + 100:03d}").replace("supersedes: T-000\n", "")
        (big / f"procedures/copy-{i}.md").write_text(text, encoding="utf-8")
    return big


def _wait_for_parse(proc: subprocess.Popen) -> None:
    """Until the build says it is parsing (its first progress line, on stderr)."""
    for line in proc.stderr:
        if "解析" in line:
            return
    pytest.fail("the build never said it was parsing")


def test_off_and_no_server_start_none_and_an_unsafe_folder_is_not_used(env: dict[str, str], mini: Path) -> None:
    _build({**env, "ESTATE_DESK_BUILD_SERVER": "off"}, "--root", str(mini), *TODAY)
    _build(env, "--root", str(mini), *TODAY, "--no-server")
    _build(env, "--root", str(mini), *TODAY, "--no-s")  # as argparse takes it
    time.sleep(1.0)
    assert not _folder(env).exists() or not list(_folder(env).iterdir())
    _folder(env).mkdir(exist_ok=True)
    _folder(env).chmod(0o777)  # another user could replace the socket: never used
    _build(env, "--root", str(mini), *TODAY)
    time.sleep(1.0)
    assert list(_folder(env).iterdir()) == []


def test_the_server_ends_when_idle_and_when_asked(env: dict[str, str], mini: Path) -> None:
    _build({**env, "ESTATE_DESK_BUILD_SERVER": "0.02"}, "--root", str(mini), *TODAY)  # 1.2 s without a build
    idle = _serving(env)
    assert _wait_for(lambda: not _alive(idle)), "an idle server went on"
    assert not list(_folder(env).glob("*.sock"))
    _build(env, "--root", str(mini), *TODAY)
    asked = _serving(env)
    assert "构建服务器已停止" in _build(env, "--stop-server").stdout
    assert _wait_for(lambda: not _alive(asked))
    assert "没有运行中的构建服务器" in _build(env, "--stop-server").stdout


def test_watch_is_never_handed_over(env: dict[str, str], mini: Path) -> None:
    _build(env, "--root", str(mini), *TODAY)
    _serving(env)
    proc = subprocess.Popen([sys.executable, "-u", str(REPO / "build.py"), "--root", str(mini), "--serve",
                             "--port", "0", "-v", *TODAY], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "http://127.0.0.1:" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=15)
    out = "".join(seen) + rest
    assert "http://127.0.0.1:" in out and HANDED not in out
    assert proc.returncode == 0


def test_ctrl_c_reaches_the_build_the_server_runs(env: dict[str, str], mini: Path) -> None:
    """Ctrl+C while the server builds: the build stops, and the client ends by SIGINT as a local build would."""
    big = _big_estate(env, mini)
    proc = subprocess.Popen([sys.executable, str(REPO / "build.py"), "--root", str(big), "--clean", *TODAY],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    _wait_for_parse(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, (out, err)
    assert "完成" not in out
