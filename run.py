#!/usr/bin/env python3
"""Set up and run Estate Desk with nothing but python3 (standard library only).

    python3 run.py start   create .venv, install, process the sample forms, build the example estate,
                           serve it on http://127.0.0.1:8000 (Ctrl+C stops)
    python3 run.py test    create .venv, install test tools (and Debian's chromium + CJK fonts when
                           missing and we are root), run the whole test suite
    python3 run.py build | watch | serve | process [ARGS...]   the everyday commands, inside .venv
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
CHROMIUM = Path("/usr/bin/chromium")
APT_PACKAGES = ["chromium", "fonts-noto-cjk"]


def say(text: str) -> None:
    print(f"[run.py] {text}", flush=True)


def ensure_venv(extra: str = "test") -> None:  # one extra for every command: no reinstall when switching
    """Create .venv and install the project (editable) once per pyproject.toml version."""
    if not PY.exists():
        say("创建虚拟环境 .venv (creating the virtual environment)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if stamp.exists():
        return
    say("安装依赖 (installing dependencies)")
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=False)
    subprocess.run([*pip, "-e", f"{ROOT}[{extra}]" if extra else str(ROOT)], check=True)
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()


def ensure_browser() -> None:
    """Browser tests drive Debian's chromium; without CJK fonts screenshots show empty boxes."""
    fonts_ok = any(Path("/usr/share/fonts").rglob("NotoSansCJK*")) if Path("/usr/share/fonts").exists() else False
    if CHROMIUM.exists() and fonts_ok:
        return
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        say(f"安装 {' '.join(APT_PACKAGES)} (installing the browser and CJK fonts with apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], check=True, env=env)
        subprocess.run([apt, "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES], check=True, env=env)
    else:
        say(f"缺少 {CHROMIUM} 或中文字体：请先运行 sudo apt-get install {' '.join(APT_PACKAGES)}")


def venv_run(*args: str) -> int:
    """Run python ARGS inside .venv from the project root."""
    return subprocess.run([str(PY), *args], cwd=ROOT).returncode


def seed_inbox() -> None:
    """On the first start, drop the bundled sample forms into the inbox so the demo has real tickets.

    "First" means no form was ever processed here (no journal yet): a build alone also creates var/.
    """
    if (ROOT / "var" / "journal.jsonl").exists():
        return
    inbox = ROOT / "inbox"
    inbox.mkdir(exist_ok=True)
    samples = ROOT / "content" / "sample-forms"
    count = 0
    for form in sorted(samples.rglob("*")):
        if form.is_file():
            dest = inbox / form.name
            shutil.copy2(form, dest)
            count += 1
    say(f"已放入 {count} 份示例表单到 inbox/ (dropped the sample forms)")


def start(args: list[str]) -> int:
    ensure_venv()
    seed_inbox()
    if (ROOT / "processor" / "__main__.py").exists():
        venv_run("-m", "processor", "once")
    return venv_run("build.py", "--serve", *args)


def test(args: list[str]) -> int:
    ensure_venv("test")
    ensure_browser()
    code = venv_run("-m", "pytest", *args)
    return 0 if code == 5 and args else code


COMMANDS = {
    "start": start,
    "test": test,
    "build": lambda a: (ensure_venv(), venv_run("build.py", *a))[1],
    "watch": lambda a: (ensure_venv(), venv_run("build.py", "--watch", *a))[1],
    "serve": lambda a: (ensure_venv(), venv_run("build.py", "--serve", *a))[1],
    "process": lambda a: (ensure_venv(), venv_run("-m", "processor", *a))[1],
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
