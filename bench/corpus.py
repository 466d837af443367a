"""Make a buildable estate from ../shared/bench/make_corpus.py output (shared by every benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MAKE_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "make_corpus.py"

# (simplified, traditional) names the generator uses: see make_corpus.py's DEPTS and TOPICS
DEPTS = [("客户服务部", "客戶服務部"), ("工程维修部", "工程維修部"), ("安全管理部", "安全管理部"),
         ("环境保洁部", "環境保潔部"), ("品质管理部", "品質管理部"), ("综合管理部", "綜合管理部")]
TOPICS = [("值班与交接班规程", "值班與交接班規程"), ("客户投诉处理程序", "客戶投訴處理程序"),
          ("报修工单处理流程", "報修工單處理流程"), ("客户回访管理规定", "客戶回訪管理規定"),
          ("装修管理规程", "裝修管理規程"), ("紧急事件处理预案", "緊急事件處理預案"),
          ("收费管理办法", "收費管理辦法"), ("档案管理制度", "檔案管理制度"),
          ("满意度调查程序", "滿意度調查程序"), ("钥匙管理规定", "鑰匙管理規定")]


def _table(kind: str, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for i, (simp, trad) in enumerate(pairs):
        aliases = f', aliases = ["{trad}"]' if trad != simp else ""
        rows.append(f'[[{kind}]]\nid = "{kind[:3]}-{i}"\nname = "{simp}"{aliases.replace(", aliases", chr(10) + "aliases")}\n')
    return "\n".join(rows)


def make_estate(n: int, root: Path, seed: int | None = None) -> tuple[Path, Path]:
    """Write N procedures under ROOT/procedures and an estate.toml; return (root, queries file)."""
    (root / "content").mkdir(parents=True, exist_ok=True)
    queries = root / f"queries-{n}.json"
    cmd = [sys.executable, str(MAKE_CORPUS), str(n), str(root / "procedures"), "--queries", str(queries)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    subprocess.run(cmd, check=True, capture_output=True)
    toml = '[estate]\nname = "基准花园"\n\n' + _table("departments", DEPTS) + "\n" + _table("categories", TOPICS)
    (root / "content" / "estate.toml").write_text(toml, encoding="utf-8")
    return root, queries


if __name__ == "__main__":
    print(make_estate(int(sys.argv[1]), Path(sys.argv[2])))
