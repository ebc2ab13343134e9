"""A PostgreSQL restart under a gateway and a worker, started as a user starts them, with a fake
SIM7600 on a pty as the store's modem and a backlog of texts: the server is restarted (`pg_ctl
restart -m fast`) mid-run, then stopped for a while and started again. Every text is stored once
and handled, every reply reaches its phone once (or more often only when marked possibly
repeated), and while the server is down the gateway leaves what arrives in the modem's storage,
then catches up.

The server is the test's own throwaway cluster (initdb into a temporary directory, a free port,
trust authentication), never the one the other tests share. As root, PostgreSQL refuses to run, so
the cluster is run as the `postgres` user through `runuser`; the test is skipped where the
binaries or that user are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from channels.sms.simulator import SimulatedModem
from storage.db import Database
from tests.scaleout_support import Cluster, number

BACKLOG = 300
WHILE_DOWN = 40


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnServer:
    """A PostgreSQL cluster of this test's own: `pg_ctl` on its data directory, nothing else."""

    bindir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}\n{self.log()}")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def pg_ctl(self, action: str) -> None:
        extra = ["-o", self._options(), "-l", str(self.root / "server.log")] if action in ("start", "restart") else []
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", *extra, action)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def server() -> Iterator[OwnServer]:
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="huddle-own-pg-"))
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        runuser = shutil.which("runuser")
        try:
            postgres = pwd.getpwnam("postgres")
        except KeyError:
            postgres = None
        if runuser is None or postgres is None:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root, and no `postgres` user or `runuser` to run PostgreSQL as")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    own = OwnServer(bindir, root, _free_port(), as_user)
    try:
        own.initdb()
        own.pg_ctl("start")
        yield own
    finally:
        with contextlib.suppress(Exception):
            own.pg_ctl("stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=15)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


async def _until(predicate: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError, ConnectionError):
            if await predicate():  # type: ignore[operator]
                return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_postgresql_restarts_and_stops_under_a_gateway_and_a_worker_lose_and_double_nothing(
        server: OwnServer, sim: SimulatedModem) -> None:
    admin = await asyncpg.connect(server.url("postgres"))
    await admin.execute('CREATE DATABASE "huddle"')
    await admin.close()
    url = server.url("huddle")
    db = Database(url, durable=False)
    await db.upgrade()
    await db.close()
    sim.cmgs_delay = (0.005, 0.02)
    c = Cluster(url, server.root, sim)
    try:
        gateway = await c.start("gateway", "gateway")
        worker = await c.start("worker", "worker")
        c.deliver(BACKLOG)

        async def handled(n: int) -> bool:
            return (await c.counts())[1] >= n

        await _until(lambda: handled(60))
        server.pg_ctl("restart")  # mid-run: every connection of both processes is cut
        await c.db.engine.dispose()
        await _until(lambda: handled(150))
        server.pg_ctl("stop")
        slots = [slot for i in range(BACKLOG, BACKLOG + WHILE_DOWN)  # they come while the database is down
                 for slot in sim.deliver(number(i), f"hi, what are your hours? #{i}")]
        await asyncio.sleep(3)
        # Read by the gateway, perhaps, but never deleted: the modem keeps them until committed.
        assert None not in slots and set(slots) <= set(sim.stored())
        assert gateway.child.returncode is None and worker.child.returncode is None
        server.pg_ctl("start")
        await c.db.engine.dispose()
        await c.all_done(BACKLOG + WHILE_DOWN, timeout=150)
        assert sim.stored() == {}  # caught up: every slot freed once its text was stored
        figures = await c.check_once(BACKLOG + WHILE_DOWN)
        print(f"possibly repeated: {figures['resent']}, received twice: {figures['twice']}")
        assert gateway.child.returncode is None and worker.child.returncode is None
    finally:
        await c.close()
