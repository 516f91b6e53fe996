"""One record's whole life through the real `ledger` command, on a fresh SQLite file.

Run by ./scripts/demo. Each command is echoed before it runs; refusals are expected
where the demo shows an archive rule at work. Ends with the record's custody chain.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

LEDGER = str(Path(sys.executable).with_name("ledger"))
CODE = "Z001-WS·2012-D10-BGS-0001"


def run(*args: str, actor: str | None = None, expect: int = 0) -> str:
    env = dict(os.environ)
    if actor:
        env["LEDGER_ACTOR"] = actor
    shown = (f"LEDGER_ACTOR={actor} " if actor else "") + "ledger " + shlex.join(args)
    print(f"$ {shown}", flush=True)
    done = subprocess.run([LEDGER, *args], env=env, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    if done.returncode != expect:
        sys.exit(f"demo: expected exit {expect}, got {done.returncode}")
    return done.stdout.strip()


def life() -> None:
    run("init", "--director", "wang.zr", "--name", "王主任")
    for actor_id, name, role, level in [
        ("li.day", "李档案员", "archivist", "secret"),
        ("zhang.ll", "张联络人", "liaison", "internal"),
        ("zhao.ld", "赵领导", "leader", "top-secret"),
        ("qian.jy", "钱借阅人", "borrower", "secret"),
        ("sun.wb", "孙访客", "borrower", "internal"),
        ("zhou.jd", "周鉴定", "appraiser", "secret"),
        ("wu.jd", "吴鉴定", "appraiser", "secret"),
        ("zheng.js", "郑监销", "archivist", "internal"),
    ]:
        run(
            "actor",
            "add",
            actor_id,
            "--name",
            name,
            "--role",
            role,
            "--clearance",
            level,
            actor="wang.zr",
        )
    record = run(
        "receive",
        "--title",
        "2012年办公会议纪要",
        "--department",
        "办公室",
        "--year",
        "2012",
        "--carrier",
        "paper",
        "--pages",
        "24",
        "--secrecy",
        "secret",
        "--transferred-by",
        "zhang.ll",
        "--occurred-at",
        "2013-03-20T10:00:00+08:00",
        actor="li.day",
    )
    run(
        "arrange",
        record,
        "--category",
        "administration",
        "--retention",
        "10y",
        "--code",
        CODE,
        "--occurred-at",
        "2013-04-02T09:00:00+08:00",
        actor="li.day",
    )
    run(
        "shelve",
        CODE,
        "--location",
        "A1-03-2-4",
        "--occurred-at",
        "2013-04-03T09:00:00+08:00",
        actor="li.day",
    )
    print("# R6: a secret record needs a leader's approval, and a cleared reader")
    run(
        "consult",
        CODE,
        "--reader",
        "sun.wb",
        "--purpose",
        "查考",
        "--approved-by",
        "zhao.ld",
        "--occurred-at",
        "2015-05-11T10:00:00+08:00",
        actor="li.day",
        expect=3,
    )
    run(
        "consult",
        CODE,
        "--reader",
        "qian.jy",
        "--purpose",
        "查考",
        "--approved-by",
        "zhao.ld",
        "--occurred-at",
        "2015-05-11T10:30:00+08:00",
        actor="li.day",
    )
    run(
        "lend",
        CODE,
        "--to",
        "qian.jy",
        "--due",
        "2024-06-30",
        "--purpose",
        "专项审计",
        "--approved-by",
        "zhao.ld",
        "--occurred-at",
        "2024-06-01T09:00:00+08:00",
        actor="li.day",
    )
    print("# R8: no sub-lending")
    run(
        "lend",
        CODE,
        "--to",
        "sun.wb",
        "--due",
        "2024-07-30",
        "--purpose",
        "查阅",
        "--approved-by",
        "zhao.ld",
        "--occurred-at",
        "2024-06-02T09:00:00+08:00",
        actor="li.day",
        expect=3,
    )
    print("# R9: one page short at return opens a discrepancy")
    run(
        "return",
        CODE,
        "--pages",
        "23",
        "--condition",
        "intact",
        "--occurred-at",
        "2024-06-28T16:00:00+08:00",
        actor="li.day",
    )
    run(
        "repair",
        CODE,
        "--note",
        "第7页找回并修裱",
        "--occurred-at",
        "2024-07-01T10:00:00+08:00",
        actor="li.day",
    )
    run(
        "appraise",
        CODE,
        "--decision",
        "destroy",
        "--appraiser",
        "zhou.jd",
        "--appraiser",
        "wu.jd",
        "--basis",
        "保管期限已满,无继续保存价值",
        "--occurred-at",
        "2025-03-01T10:00:00+08:00",
        actor="zhou.jd",
    )
    print("# R12: a destruction needs two distinct witnesses")
    run(
        "destroy",
        CODE,
        "--approved-by",
        "zhao.ld",
        "--witness",
        "zheng.js",
        "--witness",
        "zheng.js",
        "--register",
        "XH-2025-001",
        "--occurred-at",
        "2025-03-15T09:00:00+08:00",
        actor="li.day",
        expect=3,
    )
    run(
        "destroy",
        CODE,
        "--approved-by",
        "zhao.ld",
        "--witness",
        "zheng.js",
        "--witness",
        "wang.zr",
        "--register",
        "XH-2025-001",
        "--method",
        "碎纸",
        "--occurred-at",
        "2025-03-15T10:00:00+08:00",
        actor="li.day",
    )
    run("custody", CODE)


def main() -> None:
    argparse.ArgumentParser(
        prog="scripts/demo", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    ).parse_args()  # no options: --help says what the demo shows, anything else is refused
    with tempfile.TemporaryDirectory(prefix="ledger-demo-") as folder:
        os.environ["LEDGER_DB"] = f"sqlite:///{folder}/ledger.db"
        os.environ.pop("LEDGER_ACTOR", None)
        life()


if __name__ == "__main__":
    main()
