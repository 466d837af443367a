"""The resident build server: `python build.py` hands its build to a process that has the builder imported.

Why: at 1,000 procedures a one-page rebuild is ~0.25 s of work, but a fresh Python process first spends
~0.15 s importing Jinja, Python-Markdown, YAML and the builder. Gradle's daemon and Bazel's server answer the
same cost the same way. The server imports everything once, then forks a child for each build (as Rails'
Spring preloader does): the child is a fresh copy that takes the client's arguments, working folder,
environment, umask and terminal (its stdin, stdout and stderr are passed over the socket), so the build
prints what it would have printed in the client, writes what it would have written, and exits with the same
code (or, on Ctrl+C, SIGTERM or SIGHUP, which the client passes on to its process group, the client ends by
that signal too). What it does not take: the client's resource limits, nice level and CPU affinity.

Lifecycle:
- `build.py` asks the server first. With none running, it builds in its own process, then starts one in the
  background. `--no-server`, or ESTATE_DESK_BUILD_SERVER=off, does neither.
- A server serves one checkout of Estate Desk under one interpreter and its settings (the socket's name
  says which), and only while the code it imported is the code on disk: a client that sees other code is
  told "stale", and the server ends; the client builds itself and starts a new one.
- It ends by itself after ESTATE_DESK_BUILD_SERVER minutes without a build (default IDLE_MINUTES), and on
  `build.py --stop-server`.
- No server, a hung one (no answer in HANDSHAKE_SECONDS), a child that ends before it builds: the client
  builds itself. A child that ends while building: the client says so and exits 1 (building again might
  only repeat what ended it). A client that hangs up mid-build (killed): its build is interrupted.
  --watch and --serve are never handed over: they are long-running already.

The socket lives in a folder only this user can enter ($XDG_RUNTIME_DIR, else $TMPDIR, else /tmp, then
estate-desk-<uid>/); a folder someone else owns or can write into, or whose path is too long for a socket,
is never used. That folder is why the request may be marshal data: only this user's processes can connect.

Standard library only, and little of it: build.py imports this module before anything else, so the
client's share of a handed-over build is Python's start-up and this module (~30 ms).
"""

from __future__ import annotations

import _socket  # socket.py wraps it in enums and selectors: 13 ms of the client's ~30 (see _Connection)
import marshal
import os
import stat
import sys
import zlib

ENV = "ESTATE_DESK_BUILD_SERVER"  # "off" (or 0, no, false): never; a number: the idle minutes
IDLE_MINUTES = 30.0
HANDSHAKE_SECONDS = 5.0   # a server that has not answered by then is hung: the client builds itself
RECEIVE_SECONDS = 2.0     # the server's patience with a client that connected but sends no request
POLL_SECONDS = 1.0        # how often the server reaps finished builds and looks at its idle clock, and the
                          # client looks whether its build child is still there
SOCKET_PATH_MOST = 100    # bytes: a Unix socket's path has 104 on macOS, 108 on Linux
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REAL_PROJECT = os.path.realpath(PROJECT)
CODE = ("build.py", "handbook", "render", "estate", "processor")  # everything a build may import of ours
_OFF = {"0", "off", "no", "false"}
_LOCAL = ("--no-server", "--stop-server")  # options that this process acts on itself
_REQUEST_MOST = 1 << 24  # bytes: a request is argv, folder and environment, a few KB
_LENGTH = 4  # bytes of the request's length prefix
GO = b"go\n"  # the client's word to a build child, carrying its standard streams
BUILDING = b"building\n"  # the child's, once it has the client's streams, folder and environment
# What a client and a server say to each other. Part of the socket's name: a server that cannot read a new
# client's request cannot tell it "stale" either, so a new protocol meets a new server.
PROTOCOL = 3

_inside = False  # set in a build child: a build the server runs starts no server


def inside() -> bool:
    """Is this process a build the server runs?"""
    return _inside


def available() -> bool:
    """Can this platform run one? (Unix sockets that carry file descriptors, and fork.)"""
    return hasattr(_socket, "AF_UNIX") and hasattr(_socket, "SCM_RIGHTS") and hasattr(os, "fork")


def enabled(argv: list[str]) -> bool:
    """May this build use or start a server? Not with --no-server or --stop-server (or an abbreviation
    argparse would take: --no-s, --st)."""
    if _inside or not available() or os.environ.get(ENV, "").strip().lower() in _OFF:
        return False
    return not any(len(arg) >= 4 and option.startswith(arg) for arg in argv for option in _LOCAL)


def idle_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV, IDLE_MINUTES))) * 60
    except ValueError:
        return IDLE_MINUTES * 60


# -- where the server is, and which server it must be ------------------------------------------------------

def identity() -> bytes:
    """Besides the code, what makes a server's builds this client's: the checkout, the interpreter and its
    settings (flags, -X and -W options, PYTHON* and locale variables, the library path)."""
    # PYTHON* and the locale: Python reads them at start-up (a child could not take the client's on)
    python_env = sorted((k, v) for k, v in os.environ.items()
                        if k.startswith(("PYTHON", "LC_")) or k in ("LANG", "LANGUAGE"))
    return repr((PROTOCOL, PROJECT, sys.executable, sys.version, tuple(sys.flags), sorted(sys._xoptions.items()),
                 sys.warnoptions, python_env, _library_path())).encode()


def _library_path() -> list[str]:
    """Where imports come from, after the script's own folder (build.py's, or the server's PROJECT)."""
    return [entry for entry in sys.path[1:] if entry]


def code_state() -> bytes:
    """Every file of our code (name, size, modification time), and the installed libraries' folders (pip
    changes their modification time). ~1 ms: cheaper than being told after a build that it was stale."""
    seen: list[tuple[str, int, int]] = []
    for name in CODE:
        _walk(os.path.join(PROJECT, name), seen)
    for entry in _library_path():
        if os.path.realpath(entry) != _REAL_PROJECT:  # an editable install's: its mtime is site/'s, var/'s...
            _note(entry, seen)
    return repr(seen).encode()


def _walk(path: str, seen: list) -> None:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except NotADirectoryError:
        _note(path, seen)
        return
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                _walk(entry.path, seen)
        else:
            _note(entry.path, seen)


def _note(path: str, seen: list) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    seen.append((path, st.st_size, st.st_mtime_ns))


def folder() -> str | None:
    """This user's private folder for sockets, or None when it cannot be made private."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    path = os.path.join(base, f"estate-desk-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    private = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
    fits = len(path) + len("/build-0123456789abcdef.sock") <= SOCKET_PATH_MOST
    return path if private and fits else None


def address(base: str, kind: str = ".sock") -> str:
    """The socket's path (or, by KIND, its .lock's or .log's): one per identity (two checkouts, or two
    interpreters, never share a server)."""
    data = identity()
    return os.path.join(base, f"build-{zlib.crc32(data):08x}{zlib.adler32(data):08x}{kind}")


# -- the client ----------------------------------------------------------------------------------------------

def hand_off(argv: list[str]) -> int | None:
    """Have the server build ARGV; its exit code, or None when this process must build (see the module).

    The terminal goes over only once a build child has answered: a request left in a hung server's queue
    must not hold the client's stdout open (a pipe reading it would never end) nor be built after all.
    """
    base = folder() if enabled(argv) else None
    if base is None:
        return None
    with _Connection(address(base)) as connection:
        try:
            answer = connection.ask(_request(argv))
        except OSError:  # none listening, a stale socket file, a hung server, a path too long: build here
            return None
        if not answer.startswith(b"pid "):  # "stale" (the server now ends) or nothing
            return None
        return _run(connection, int(answer.split()[1]))


def _run(connection: _Connection, pid: int) -> int | None:
    """Hand the terminal to build child PID and wait for its exit code, passing Ctrl+C (SIGINT), SIGTERM
    and SIGHUP on to its process group; a build ended by one ends this process by it too."""
    import _signal  # signal.py would import enum for its names: ~9 ms
    import contextlib

    forwarded: list[int] = []

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signum)
        with contextlib.suppress(OSError):  # it has just ended
            os.killpg(pid, signum)

    kinds = [_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP]
    previous = {kind: _signal.signal(kind, forward) for kind in kinds}  # before the terminal goes over
    try:
        try:
            connection.send_streams()
        except OSError:  # it is gone before it had anything
            return None
        connection.sock.settimeout(POLL_SECONDS)
        started, line = _outcome(connection, pid)
    finally:
        for kind, handler in previous.items():
            _signal.signal(kind, handler)
    if forwarded:
        _signal.signal(forwarded[0], _signal.SIG_DFL)
        os.kill(os.getpid(), forwarded[0])
        return 128 + forwarded[0]  # (a signal this process cannot die of)
    if line.startswith(b"exit "):
        return int(line.split()[1])
    if line.strip() == b"declined":
        return None
    if not started:  # it died before it built anything: build here
        print("构建服务器的进程未能开始构建，改在本进程构建 (the build server's process ended before building; "
              "building here)", file=sys.stderr)
        return None
    print("构建服务器中的构建进程意外结束 (the build ended unexpectedly in the build server)", file=sys.stderr)
    return 1


def _outcome(connection: _Connection, pid: int) -> tuple[bool, bytes]:
    """Whether the child started building, and its last word (b"" if it ended without one). Its end is
    noticed by its pid too: a process it forked may hold the connection open after it."""
    started = False
    while True:
        try:
            line = connection.line()
        except TimeoutError:
            if _exists(pid):
                continue
            line = b""
        except OSError:
            line = b""
        if line != BUILDING:
            return started, line
        started = True


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


class _Connection:
    """The client's end: a request out, then the client's stdin, stdout and stderr; lines back.

    On _socket, not socket: the client runs before every build, and this is all of socket it needs.
    """

    def __init__(self, path: str) -> None:
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(HANDSHAKE_SECONDS)
        self.path = path
        self.pending = b""

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def ask(self, body: bytes) -> bytes:
        """Connect, send BODY (its length first), and return the server's first line."""
        self.sock.connect(self.path)
        self.sock.sendall(len(body).to_bytes(_LENGTH, "big") + body)
        return self.line()

    def send_streams(self) -> None:
        """GO, with file descriptors 0, 1 and 2 (a closed one as /dev/null, as a new process would have it)."""
        fds, opened = [], []
        for fd in (0, 1, 2):
            try:
                os.fstat(fd)
                fds.append(fd)
            except OSError:
                opened.append(os.open(os.devnull, os.O_RDWR))
                fds.append(opened[-1])
        try:
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)  # SCM_RIGHTS: an array of C ints
            self.sock.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        finally:
            for fd in opened:
                os.close(fd)

    def line(self) -> bytes:
        """The next line from the server, or b"" once it has closed."""
        while b"\n" not in self.pending:
            more = self.sock.recv(4096)
            if not more:
                line, self.pending = self.pending, b""
                return line
            self.pending += more
        line, _, self.pending = self.pending.partition(b"\n")
        return line + b"\n"


def _request(argv: list[str]) -> bytes:
    umask = os.umask(0o22)
    os.umask(umask)
    streams = [_stream(s) for s in (sys.stdin, sys.stdout, sys.stderr)]
    return marshal.dumps({"identity": identity(), "code": code_state(), "argv": argv, "cwd": os.getcwd(),
                          "env": dict(os.environ), "umask": umask, "streams": streams})


def _stream(stream: object) -> tuple[str, str, bool, bool]:
    """How the build child should wrap this stream's file descriptor: as this process does."""
    return (getattr(stream, "encoding", None) or "utf-8", getattr(stream, "errors", None) or "strict",
            bool(getattr(stream, "line_buffering", False)), bool(getattr(stream, "write_through", False)))


def running() -> bool:
    """Is a server holding this identity's lock?"""
    base = folder()
    if base is None or not available():
        return False
    import fcntl

    try:
        fd = os.open(address(base, ".lock"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def start(argv: list[str]) -> None:
    """Start a server in the background (after a build done here), unless one runs or ARGV says not to.

    posix_spawn, not fork: after a cold build this process holds ~100s of MB that fork would map again.
    The server gets a session of its own (the terminal's Ctrl+C is not for it) and /dev/null for stdin; what
    it prints goes to a log beside its socket.
    """
    base = folder() if enabled(argv) else None
    if base is None or running():
        return
    log = address(base, ".log")
    # -c puts the working folder first on sys.path: a yaml.py there must not be what the server imports
    program = ("import sys; sys.path[:] = [sys.argv[1], *filter(None, sys.path)]; "
               "from handbook.buildserver import serve; serve(sys.argv[2])")
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),  # the log is emptied by the server
               (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),  # that gets the lock
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    try:
        os.posix_spawn(sys.executable, [sys.executable, *_options(), "-c", program, PROJECT, address(base)],
                       os.environ, file_actions=actions, setsid=True)
    except (OSError, NotImplementedError) as exc:  # (setsid: macOS before 10.15)
        print(f"构建服务器未能启动 (could not start the build server): {exc}", file=sys.stderr)


def _options() -> list[str]:
    """The interpreter options this process was started with (`python -X dev -b build.py` gives -X dev -b),
    for the server: its identity must be ours. Failing that (run by -c, say), rebuilt from sys.flags."""
    given, n = getattr(sys, "orig_argv", []), len(sys.argv)
    if len(given) > n and given[len(given) - n] == sys.argv[0]:
        return given[1:len(given) - n]
    f = sys.flags
    options = [flag for flag, on in (("-B", f.dont_write_bytecode), ("-E", f.ignore_environment),
                                     ("-s", f.no_user_site), ("-S", f.no_site), ("-I", f.isolated)) if on]
    options += ["-O"] * f.optimize + ["-b"] * f.bytes_warning
    options += [f"-W{w}" for w in sys.warnoptions]
    options += [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in sys._xoptions.items()]
    return options


def stop() -> bool:
    """Ask this identity's server to end; whether one was there to ask."""
    base = folder() if available() else None
    if base is None:
        return False
    with _Connection(address(base)) as connection:
        try:
            return connection.ask(marshal.dumps({"identity": identity(), "stop": True})).strip() == b"stopped"
        except OSError:
            return False


# -- the server ----------------------------------------------------------------------------------------------

def serve(expected: str) -> None:
    """The server's life: take the lock, import the builder, listen, fork a child per build, end when idle.

    EXPECTED is the socket the client that started it will look for: a server whose own identity differs
    (an interpreter option it was not given) would never be found, so it does not even start.
    """
    import fcntl
    import gc
    import socket

    os.closerange(3, 1 << 16)  # what the starting build inherited (a shell's 9>file, a caller's pipe) is not ours
    base = folder()
    if base is None or address(base) != expected:
        print(f"not serving: this process's socket would be {base and address(base)}, not {expected}")
        return
    path = address(base)
    lock = os.open(address(base, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another server has it (two builds finished at once): that one serves
        return
    os.ftruncate(1, 0)  # this server's log
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()}\n".encode())  # which process to look at (or kill), as a pid file says
    os.chdir("/")  # hold no folder busy (a USB stick must unmount); each build child moves to its client's
    code = code_state()  # before the imports: code edited meanwhile makes the next client see "stale"
    cli = _preload()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        if os.path.exists(path):
            os.unlink(path)  # left by a server that was killed: the lock says none holds it now
        listener.bind(path)
        listener.listen(16)
        gc.collect()
        gc.freeze()  # what is loaded now is shared with every build child; the collector never copies it
        held = _Held(path, os.stat(path).st_ino, lock, identity(), code, cli)
        try:
            _serve(listener, held)
        finally:
            if _same_file(path, held.inode):  # not a newer server's
                os.unlink(path)
    os.close(lock)


class _Held:
    """What a running server holds: its socket file (path, inode), its lock's file descriptor (no build child
    keeps it), the identity and code state it serves, and build.py's module."""

    def __init__(self, path: str, inode: int, lock: int, identity: bytes, code: bytes, cli: object) -> None:
        self.path, self.inode, self.lock = path, inode, lock
        self.identity, self.code, self.cli = identity, code, cli


def _preload():  # noqa: ANN202 - the build.py module
    """Import build.py and what a one-off rebuild imports (found by comparing sys.modules around one), compile
    the templates, and make the Markdown converter, which --watch also keeps from build to build."""
    import argparse  # noqa: F401 - build.py imports it when it parses its arguments
    import difflib  # noqa: F401 - a front-matter key of the estate's own
    import importlib.util
    import multiprocessing.connection  # noqa: F401 - parse and render workers, and the search packer
    import multiprocessing.pool  # noqa: F401
    import multiprocessing.popen_fork  # noqa: F401
    import multiprocessing.queues  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    import handbook.build  # noqa: F401
    from render.jinja import preload
    from render.markdown import render_markdown  # with Python-Markdown and YAML (handbook.parse)

    spec = importlib.util.spec_from_file_location("estate_desk_build", os.path.join(PROJECT, "build.py"))
    cli = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cli
    spec.loader.exec_module(cli)
    preload()
    import handbook.parse  # noqa: F401

    render_markdown("")  # builds the converter: ~15 ms of regular expressions each child need not compile
    return cli


def _same_file(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _serve(listener: _socket.socket, held: _Held) -> None:
    """Serve until idle, stale, asked to stop, or the socket file is no longer ours."""
    import time

    idle = idle_seconds()
    children: set[int] = set()
    last = time.monotonic()
    listener.settimeout(POLL_SECONDS)
    while True:
        _reap(children)
        if not _same_file(held.path, held.inode):  # removed or replaced: no client can reach this server
            return
        if not children and time.monotonic() - last >= idle:
            return
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        last = time.monotonic()
        with conn:
            body = _receive(conn)
            if body is None:
                continue
            last_word = _last_word(body, held)
            if last_word:
                conn.sendall(last_word)
                return
            pid = os.fork()
            if pid == 0:
                listener.close()
                os.close(held.lock)  # a build that outlives the server must not keep the next one from starting
                _build_child(conn, body, held.cli)  # never returns
            children.add(pid)


def _last_word(body: dict, held: _Held) -> bytes | None:
    """What a server that must end says to this request, if anything: "stale" to another identity (two
    checkouts whose names collide) or to other code, "stopped" when asked to stop."""
    if body.get("identity") != held.identity:
        return b"stale\n"
    if body.get("stop"):
        return b"stopped\n"
    return b"stale\n" if body.get("code") != held.code else None


def _receive(conn: _socket.socket) -> dict | None:
    """One request: its length, then marshal data; None if it is not one."""
    conn.settimeout(RECEIVE_SECONDS)
    try:
        size = int.from_bytes(_read(conn, _LENGTH), "big")
        body = marshal.loads(_read(conn, size)) if size <= _REQUEST_MOST else None
    except (OSError, ValueError, EOFError, TypeError):
        return None
    conn.settimeout(None)
    return body if isinstance(body, dict) else None


def _read(conn: _socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = conn.recv(min(size - len(data), 1 << 16))
        if not more:
            raise EOFError("cut short")
        data += more
    return data


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


def _build_child(conn: _socket.socket, body: dict, cli) -> None:  # noqa: ANN001
    """In the forked child: become the client's process, build, report the exit code, end (always by
    os._exit: a child must never return into the server's loop).

    Its own process group: the client's signals reach the workers and the search packer it forks too.
    """
    global _inside
    _inside = True
    code, finished = 1, None
    try:
        os.setpgid(0, 0)
        conn.sendall(f"pid {os.getpid()}\n".encode())
        fds = _streams(conn)
        if fds is None:  # the client gave up waiting: it builds itself
            os._exit(0)
        finished = _become_client(body, fds, conn)
        conn.sendall(BUILDING)
        args = cli.parse_args(body["argv"])
        if cli.stays_running(args):
            conn.sendall(b"declined\n")
            os._exit(0)
        code = cli.main(body["argv"])
    except SystemExit as exc:  # argparse's --help and usage errors, as a fresh process would end
        code = _exit_code(exc.code)
    except KeyboardInterrupt:  # the client's Ctrl+C, passed on (the client then ends by it)
        code = 130
    except BaseException:  # noqa: BLE001 - shown to the client as Python would have shown it
        import traceback

        traceback.print_exc()
    try:
        cli.finish()
        if finished is not None:
            finished.set()
        conn.sendall(f"exit {code}\n".encode())
    finally:
        os._exit(code)


def _streams(conn: _socket.socket) -> list[int] | None:
    """The client's GO and its three file descriptors, or None if it has gone."""
    import socket

    conn.settimeout(HANDSHAKE_SECONDS)
    try:
        data, fds, flags, _ = socket.recv_fds(conn, len(GO), 3)
    except OSError:
        return None
    if data == GO and len(fds) == 3 and not flags & socket.MSG_CTRUNC:
        conn.settimeout(None)
        return fds
    for fd in fds:
        os.close(fd)
    return None


def _exit_code(value: object) -> int:
    if value is None or isinstance(value, int):
        return value or 0
    print(value, file=sys.stderr)
    return 1


def _become_client(body: dict, fds: list[int], conn: _socket.socket):  # noqa: ANN202 - threading.Event
    """Take the client's standard streams (first: whatever fails next shows on its terminal), working folder,
    environment and umask. Returns the event to set once the build is done: until then, the client hanging up
    (killed, say) interrupts the build, as it would have been interrupted in the client."""
    import io
    import signal
    import threading
    import time

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    streams = []
    for target, (encoding, errors, line_buffering, write_through) in enumerate(body["streams"]):
        raw = io.FileIO(target, "r" if target == 0 else "w", closefd=False)
        buffered = io.BufferedReader(raw) if target == 0 else io.BufferedWriter(raw)
        streams.append(io.TextIOWrapper(buffered, encoding, errors, line_buffering=line_buffering,
                                        write_through=write_through))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(body["cwd"])
    os.environ.clear()
    os.environ.update(body["env"])
    time.tzset()  # the client's TZ
    os.umask(body["umask"])
    sys.argv = [os.path.join(PROJECT, "build.py"), *body["argv"]]
    finished = threading.Event()
    threading.Thread(target=_watch_client, args=(conn, finished), daemon=True).start()
    return finished


def _watch_client(conn: _socket.socket, finished) -> None:  # noqa: ANN001 - threading.Event
    """Ctrl+C to this build's process group once its client hangs up before the build is done."""
    import contextlib
    import signal

    with contextlib.suppress(OSError):
        conn.recv(1)  # the client sends nothing more: this returns when it hangs up
    if not finished.is_set():
        os.killpg(0, signal.SIGINT)
