"""`build.py --watch` and `--serve`: rebuild on change, serve site/ on 127.0.0.1 with live reload.

As in MkDocs' livereload: the watchdog handler only sets a flag; one worker waits for changes to
settle, rebuilds, logs errors and carries on. Live reload is injected into responses by the
server, so the files in site/ stay exactly what a USB copy gets.
"""

from __future__ import annotations

import functools
import http.server
import logging
import signal
import threading
import time
from datetime import date
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from estate.config import ConfigError, EstateConfig, load_config
from handbook.build import BuildFailed, build
from handbook.discover import source_paths
from render.jinja import STATIC, TEMPLATES

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.15
RELOAD_PATH = "/__livereload"
_RELOAD_SCRIPT = (
    "<script>(function(){var v=null;function poll(){fetch('" + RELOAD_PATH + "',{cache:'no-store'})"
    ".then(function(r){return r.text()}).then(function(t){if(v!==null&&t!==v){location.reload()}v=t;"
    "setTimeout(poll,700)}).catch(function(){setTimeout(poll,2000)})}poll()})();</script>"
)


class _Changes(FileSystemEventHandler):
    """Watchdog handler: note that something changed, nothing more."""

    def __init__(self, flag: threading.Event, ignore: Path):
        self.flag, self.ignore = flag, ignore.resolve()

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = Path(str(event.src_path))
        if event.event_type in ("opened", "closed_no_write") or path.name.startswith(".") or path.name.endswith("~"):
            return
        try:
            path.resolve().relative_to(self.ignore)
            return  # our own output
        except ValueError:
            self.flag.set()


class Rebuilder:
    """Rebuilds when the flag is set; `version` changes after each successful build."""

    def __init__(self, root: Path, out: Path, today: date | None, workers: int | None):
        self.root, self.out, self.today, self.workers = root, out, today, workers
        self.flag = threading.Event()
        self.stop = threading.Event()
        self.version = str(time.time_ns())

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.flag.wait(0.5):
                continue
            time.sleep(SETTLE_SECONDS)  # let an editor's save (write, rename, chmod) finish
            self.flag.clear()
            self.rebuild()

    def rebuild(self) -> None:
        try:
            config = load_config(self.root)
            result = build(config, self.out, today=self.today, workers=self.workers, watching=True)
        except (BuildFailed, ConfigError) as exc:
            log.error("构建失败，保留上一版站点 (build failed, previous site kept):\n%s", exc)
            return
        except Exception:  # keep watching whatever one build does
            log.exception("unexpected error while rebuilding")
            return
        self.version = str(time.time_ns())
        log.info("%s（重新渲染 %d 页）", result.summary(), len(result.rendered))


def _handler(out: Path, rebuilder: Rebuilder) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's API)
            if self.path.startswith(RELOAD_PATH):
                return self._send(rebuilder.version.encode(), "text/plain")
            path = Path(self.translate_path(self.path))
            if path.is_dir():
                path = path / "index.html"
            if path.suffix == ".html" and path.is_file():
                html = path.read_bytes().replace(b"</body>", _RELOAD_SCRIPT.encode() + b"</body>", 1)
                return self._send(html, "text/html; charset=utf-8")
            return super().do_GET()

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("http: " + format, *args)

    return functools.partial(Handler, directory=str(out))  # type: ignore[return-value]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl+C


def serve_and_watch(config: EstateConfig, out: Path, *, serve: bool, port: int, today: date | None,
                    workers: int | None) -> int:
    """Watch the sources (and serve OUT) until Ctrl+C."""
    signal.signal(signal.SIGTERM, _interrupt)
    rebuilder = Rebuilder(config.root, out, today, workers)
    observer = Observer()
    handler = _Changes(rebuilder.flag, out)
    for path in [*source_paths(config), TEMPLATES, STATIC]:
        if path.is_dir():
            observer.schedule(handler, str(path), recursive=True)
    observer.start()
    worker = threading.Thread(target=rebuilder.run, name="rebuilder", daemon=True)
    worker.start()
    server = None
    try:
        if serve:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(out, rebuilder))
            host, real_port = server.server_address[:2]
            print(f"正在服务 (serving)：http://{host}:{real_port}/staff/index.html"
                  f"  业主页面：http://{host}:{real_port}/public/index.html  （按 Ctrl+C 停止）", flush=True)
            server.serve_forever()
        else:
            print("正在监视改动，按 Ctrl+C 停止 (watching for changes)", flush=True)
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        print("已停止 (stopped)")
    finally:
        rebuilder.stop.set()
        observer.stop()
        observer.join(timeout=5)
        if server:
            server.server_close()
    return 0
