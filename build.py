#!/usr/bin/env python3
"""Build the estate's handbook and notice board into site/ (thin CLI over handbook.build).

    python build.py                 build ./ into ./site
    python build.py --root DIR      build another estate folder (holding content/ and procedures/)
    python build.py --watch         rebuild on every change
    python build.py --serve         build, serve on http://127.0.0.1:8000 with live reload, and watch

A one-off build is handed to the resident build server when one runs (see handbook/buildserver.py); the
builder itself is imported only when this process builds, which is why the imports below sit in functions.
"""

from __future__ import annotations

import os
import sys

from handbook import buildserver

TYPE_CHECKING = False  # typing's, without importing typing (~15 ms a handed-over build would wait for)
if TYPE_CHECKING:
    import argparse
    from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import argparse
    from datetime import date
    from pathlib import Path

    p = argparse.ArgumentParser(description="构建员工手册与业主公告站点 (build the handbook and notice board)")
    p.add_argument("--root", type=Path, default=Path("."), help="estate folder holding content/ and procedures/")
    p.add_argument("--out", type=Path, help="output folder (default: the estate's site/)")
    p.add_argument("--clean", action="store_true", help="empty the output folder first (after validation passes)")
    p.add_argument("--watch", action="store_true", help="rebuild whenever a source file changes")
    p.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1 with live reload (implies --watch)")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0 picks a free one)")
    p.add_argument("--today", type=date.fromisoformat, help="pretend today is this date (YYYY-MM-DD), for badges")
    p.add_argument("--workers", type=int, help="processes for a full build (default: one per core)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems and the summary")
    p.add_argument("-v", "--verbose", action="store_true", help="print debug logging")
    p.add_argument("--no-server", action="store_true",
                   help="build in this process and start no resident build server (also: ESTATE_DESK_BUILD_SERVER=off)")
    p.add_argument("--stop-server", action="store_true", help="stop the resident build server, and build nothing")
    return p.parse_args(argv)


def stays_running(args: argparse.Namespace) -> bool:
    """Runs the build server does not take: --watch and --serve live on; --stop-server is for the server."""
    return args.watch or args.serve or args.stop_server


def main(argv: list[str] | None = None) -> int:
    import logging

    from estate.config import ConfigError, load_config

    args = parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    if buildserver.inside():
        logging.getLogger("build").debug("由常驻构建服务器构建，进程 %d (built by the resident build server, pid %d)",
                                         os.getpid(), os.getpid())
    if args.stop_server:
        stopped = buildserver.stop()
        print("构建服务器已停止 (build server stopped)" if stopped else "没有运行中的构建服务器 (no build server running)")
        return 0
    try:
        config = load_config(args.root)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    out = args.out or config.path(config.build.site_dir)
    watching = args.watch or args.serve  # keep caches warm for the rebuilds that follow
    ok = run_build(config, out, clean=args.clean, today=args.today, workers=args.workers, watching=watching)
    if not (args.watch or args.serve):
        buildserver.start(sys.argv[1:] if argv is None else argv)  # the next build is then handed to it
        return 0 if ok else 1
    from handbook.serve import serve_and_watch

    return serve_and_watch(config, out, serve=args.serve, port=args.port, today=args.today, workers=args.workers)


def run_build(config, out: Path, **kwargs) -> bool:  # noqa: ANN001, ANN003
    """Build once; print problems as file:line: message and return whether it succeeded."""
    from estate.config import ConfigError
    from handbook.build import BuildFailed, build

    try:
        result = build(config, out, **kwargs)
    except BuildFailed as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"构建失败：{len(exc.problems)} 个问题，site/ 保持不变 (build failed; output left untouched)",
              file=sys.stderr)
        return False
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return False
    print(result.summary())
    return True


def finish() -> None:
    """Once the build cache is on disk and all is printed, the process may end (see exit_now).

    Only what this process loaded: a build handed to the server never loads the cache or logging (~25 ms).
    """
    import contextlib

    if "handbook.cache" in sys.modules:
        sys.modules["handbook.cache"].wait_for_writes()
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # e.g. a closed pipe: what was printed is gone either way
            stream.flush()


def exit_now(code: int) -> None:
    """End the process without tearing down its heap: freeing ~10^5 parsed objects one by one took ~25 ms
    of a 0.45 s one-page rebuild. (mypy ends the same way.)"""
    finish()
    os._exit(code)


if __name__ == "__main__":
    handed = buildserver.hand_off(sys.argv[1:])
    exit_now(main() if handed is None else handed)
