"""Start-up time of the commands a newcomer types first, against Python's own floor.

    python -m bench.startup [--runs 7]

Each command runs as a whole process, several times, in a scratch folder with its own SQLite
file (demo data seeded once beforehand). Baselines measured in the same run: `python -c pass`
(the interpreter alone) and `python -c "import sqlalchemy"` (the database toolkit every command
needs). Targets on a quiet 2-core machine: `--help` and `status` under 1 s, `python main.py` to
the console banner under 2 s. The last table says which heavy provider libraries each command
imported (`python -X importtime`): none of aiogram, openai, slack_sdk for `status`.
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiogram", "openai", "slack_sdk", "slack_bolt", "prometheus_client", "jinja2", "playwright")


def _env(workdir: Path) -> dict[str, str]:
    # Python caches compiled modules in __pycache__ unless told not to: a user's machine does, and
    # the installed libraries of the baselines come compiled. Without it, compiling Huddle's own
    # sources again on every run is a quarter of a command's time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUDDLE_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HUDDLE_DATABASE_URL=str(workdir / "huddle.db"), HUDDLE_HTTP_PORT="0")
    return env


CPU: dict[str, list[float]] = {}


def timed(argv: list[str], cwd: Path, env: dict[str, str], name: str = "") -> float:
    """Wall seconds of one run; its CPU seconds (user + sys) go to CPU[name]: steadier on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(name, []).append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return wall


def to_banner(cwd: Path, env: dict[str, str], banner: bytes = b"Huddle console", timeout: float = 60.0) -> float:
    """Seconds from exec to the console's banner on a terminal, then a clean /quit."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: python main.py on the pty
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, str(ROOT / "main.py")], env)
    start = time.perf_counter()
    seen = b""
    try:
        while banner not in seen:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"no console banner after {timeout:.0f} s: {seen[-300:]!r}")
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
        elapsed = time.perf_counter() - start
        os.write(fd, b"/quit\n")
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            with __import__("contextlib").suppress(OSError):
                if select.select([fd], [], [], 0.05)[0]:
                    os.read(fd, 65536)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return elapsed
    finally:
        os.close(fd)


def heavy_imports(argv: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    found = set()
    for line in proc.stderr.splitlines():
        name = line.rpartition("|")[2].strip()
        top = name.split(".")[0]
        if top in HEAVY:
            found.add(top)
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="huddle-startup-"))
    env = _env(work)
    py = sys.executable
    main_py = str(ROOT / "main.py")
    try:
        subprocess.run([py, main_py, "db", "upgrade"], cwd=work, env=env, check=True, capture_output=True)
        to_banner(work, env)  # seeds the demo data once: later starts are what a user sees daily
        commands = {
            "python -c pass": [py, "-c", "pass"],
            'python -c "import sqlalchemy"': [py, "-c", "import sqlalchemy"],
            "main.py --help": [py, main_py, "--help"],
            "main.py status": [py, main_py, "status"],
        }
        figures: dict[str, list[float]] = {name: [] for name in commands}
        figures["main.py → console banner"] = []
        for _ in range(args.runs):  # interleaved, so drift hits every command alike
            for name, argv in commands.items():
                figures[name].append(timed(argv, work, env, name))
            figures["main.py → console banner"].append(to_banner(work, env))
        base = statistics.median(figures["python -c pass"])
        sqla = statistics.median(figures['python -c "import sqlalchemy"'])
        targets = {"main.py --help": 1.0, "main.py status": 1.0, "main.py → console banner": 2.0}
        print(f"start-up, {args.runs} runs each, wall seconds (median, min–max)\n")
        print(f"{'command':<30}{'median':>8}{'min':>8}{'max':>8}{'× pass':>9}{'× sqla':>9}{'target':>9}")
        for name, values in figures.items():
            med = statistics.median(values)
            target = f"< {targets[name]:.0f} s" if name in targets else ""
            ok = (" ✓" if med < targets[name] else " ✗") if name in targets else ""
            print(f"{name:<30}{med:>8.3f}{min(values):>8.3f}{max(values):>8.3f}"
                  f"{med / base:>9.1f}{med / sqla:>9.1f}{target:>9}{ok}")
        cpu_sqla = statistics.median(CPU['python -c "import sqlalchemy"'])
        print("\nCPU seconds (user + sys, median; steadier than wall time when the machine is busy)")
        for name, values in CPU.items():
            med = statistics.median(values)
            print(f"  {name:<28}{med:>8.3f}   × sqla {med / cpu_sqla:>5.1f}")
        print("\nprovider libraries imported (python -X importtime):")
        for name in ("main.py --help", "main.py status"):
            found = heavy_imports(commands[name], work, env)
            print(f"  {name:<28} {', '.join(found) if found else 'none'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
