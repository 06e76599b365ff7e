"""How long a `crmbot` command takes from the shell, start-up included.

    python bench/cli_startup.py                    # 15 runs of each command
    python bench/cli_startup.py --runs 40
    python bench/cli_startup.py --against 9b4395f  # beside the same commands at that revision

Each command runs as its own process (``python -m bot.cli ...``) on a demo database made once
in a temporary folder (``crmbot demo``, 1,000 customers), and is timed by wall clock and by
the CPU time the process used. Printed beside them, from the same run:

* floor: ``python -c pass``, the interpreter's own start (no command can beat it);
* eager: importing every command module at once, what each command paid before the command
  line loaded its modules lazily;
* libraries: importing only the libraries `customer find` cannot do without (Typer, SQLAlchemy
  and SQLModel, pydantic-settings, Rich's tables, rapidfuzz): the floor of that command;
* the ten costliest imports of each command (``python -X importtime``).

Goal: ``crmbot version`` under 0.3 s and ``crmbot customer find acme`` under 0.6 s of wall time
(the fastest of the runs, so that another program's burst does not count against a command).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"version": 0.3, "customer find acme": 0.6}
EAGER = "import " + ", ".join(
    f"bot.cli.{m}"
    for m in (
        "admin",
        "interactions",
        "customers",
        "deals",
        "followups",
        "imports",
        "users",
        "digests",
        "mail",
        "slack",
        "analytics",
    )
)

LIBRARIES = "import typer, sqlalchemy, sqlmodel, pydantic_settings, rich.table, rapidfuzz"


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {process.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def costliest_imports(argv: list[str], env: dict[str, str], cwd: Path, n: int = 10) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and len(name) - len(name.lstrip()) <= 3:
            rows.append((int(cumulative), name.strip()))  # top-level imports only
    return [f"{name} {us / 1000:.0f} ms" for us, name in sorted(rows, reverse=True)[:n]]


def prepare(code: Path, folder: Path) -> tuple[dict[str, str], list[str]]:
    """The environment and command line to run the crmbot in ``code`` on a demo database of its
    own in ``folder``, made (and the files it reads warmed) here."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "PYTHONPATH": str(code),
        "CRM_DATABASE_URL": f"sqlite:///{folder / 'crm.db'}",
    }
    cli = [sys.executable, "-m", "bot.cli"]
    for argv in ([*cli, "demo"], [*cli, "customer", "find", "acme"]):
        subprocess.run(argv, env=env, cwd=folder, check=True, capture_output=True)
    return env, cli


def export(revision: str, into: Path) -> Path:
    """The files of ``revision`` of this repository, unpacked into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--against", metavar="REV", help="also time the commands of this git revision"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmbot-startup-") as tmp:
        folder = Path(tmp)
        env, cli = prepare(ROOT, folder / "now")
        cases: dict[str, tuple[list[str], dict[str, str], Path]] = {
            "floor: python -c pass": ([sys.executable, "-c", "pass"], env, folder / "now"),
            "eager: every command module": ([sys.executable, "-c", EAGER], env, folder / "now"),
            "libraries find needs": ([sys.executable, "-c", LIBRARIES], env, folder / "now"),
        }
        for label in GOALS:
            cases[label] = ([*cli, *label.split()], env, folder / "now")
        if args.against:
            code = export(args.against, folder / "code-before")
            env_before, cli_before = prepare(code, folder / "before")
            for label in GOALS:
                argv = [*cli_before, *label.split()]
                cases[f"{label} at {args.against}"] = (argv, env_before, folder / "before")
        results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
        for _ in range(args.runs):  # round after round, so a burst of load hits every case
            for label, (argv, case_env, cwd) in cases.items():
                wall, cpu = timed(argv, case_env, cwd)
                results[label][0].append(wall)
                results[label][1].append(cpu)
        load = os.getloadavg()[0]
        print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load average {load:.1f}")
        print(f"{'':40} {'wall min':>9} {'wall median':>12} {'CPU min':>9}")
        for label, (walls, cpus) in results.items():
            print(
                f"{label:40} {min(walls):8.3f}s {statistics.median(walls):11.3f}s {min(cpus):8.3f}s"
            )
        for label in GOALS:
            print(f"\ncostliest imports of `crmbot {label}`:")
            argv, case_env, cwd = cases[label]
            for row in costliest_imports(argv, case_env, cwd):
                print(f"  {row}")
        print()
        met = True
        for label, goal in GOALS.items():
            fastest = min(results[label][0])
            ok = fastest < goal
            met &= ok
            verdict = "yes" if ok else "no"
            print(f"crmbot {label}: {fastest:.3f}s, goal under {goal:.1f}s: {verdict}")
        print(f"goal met: {'yes' if met else 'no'}")


if __name__ == "__main__":
    main()
