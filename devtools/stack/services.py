"""The services the Airflow components use: a private PostgreSQL cluster and a private Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.stack.processes import (
    PID_DIR,
    StackError,
    free_port,
    signal_group,
    start_component,
    stop_components,
    wait_until,
    write_pid_file,
)
from devtools.stack.settings import DB_NAME, DB_PASSWORD, DB_USER

INSTALL_HINT = "run `make install` (scripts/install-services.sh installs it from Debian's packages)"


def postgres_bin() -> Path:
    """The PostgreSQL server binaries: ``$PATCHCYCLE_PG_BIN``, else Debian's newest, else the PATH."""
    candidates = []
    if configured := os.environ.get("PATCHCYCLE_PG_BIN"):
        candidates.append(Path(configured))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise StackError(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; {INSTALL_HINT}")


def redis_server() -> Path:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if not found:
        raise StackError(f"redis-server not found; {INSTALL_HINT}")
    return Path(found)


@dataclass
class Postgres:
    """A private PostgreSQL cluster: initdb into its own folder, loopback TCP and a socket in that folder."""

    folder: Path
    port: int
    bin: Path
    log_copy: Path
    run_as: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *argv: str | Path, timeout: float) -> None:
        result = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **self.run_as
        )
        if result.returncode:
            raise StackError(f"{Path(str(argv[0])).name} failed: {result.stdout}{result.stderr}")

    def start(self, timeout: float = 60.0) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(DB_PASSWORD)
        self._chown(pwfile)
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", DB_USER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions",
            timeout=timeout,
        )  # fmt: skip
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.folder}",
                "-c max_connections=200",
                # A throwaway cluster: durability buys nothing and costs the 2-core machine time.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ]
        )
        self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.folder / "postgres.log", "-o", options,
            "-w", "-t", str(int(timeout)), "start",
            timeout=timeout + 10,
        )  # fmt: skip
        self._run(
            self.bin / "createdb", "-h", self.folder, "-p", str(self.port), "-U", DB_USER, DB_NAME,
            timeout=30,
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(
                    self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "30", "stop", timeout=40
                )
            except (StackError, subprocess.TimeoutExpired):
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                signal_group(pid, signal.SIGKILL)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if (self.folder / "postgres.log").exists():
            shutil.copyfile(self.folder / "postgres.log", self.log_copy)

    def _chown(self, path: Path) -> None:
        if "user" in self.run_as:
            shutil.chown(path, self.run_as["user"], self.run_as["group"])


@contextmanager
def running_postgres(workdir: Path, log_dir: Path) -> Iterator[Postgres]:
    """PostgreSQL in ``workdir/postgres`` (PostgreSQL refuses root: as root it runs as ``postgres``).

    As root the cluster goes into a fresh folder that user can reach (pytest's tmp dirs are private to
    root), removed afterwards; its log is copied into ``log_dir`` either way.
    """
    bin_dir = postgres_bin()
    run_as: dict[str, Any] = {}
    cleanup: Path | None = None
    if os.geteuid() == 0:
        import pwd

        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None:
            raise StackError("running as root and no `postgres` or `nobody` user to run PostgreSQL as")
        entry = pwd.getpwnam(user)
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
        folder = Path(tempfile.mkdtemp(prefix="patchcycle-pg-"))
        cleanup = folder
        shutil.chown(folder, entry.pw_uid, entry.pw_gid)
        (workdir / "postgres.location").write_text(f"{folder}\n")
    else:
        folder = workdir / "postgres"
        folder.mkdir(parents=True, exist_ok=True)
    pg = Postgres(folder, free_port(), bin_dir, log_dir / "postgres.log", run_as)
    pid_file: Path | None = None
    try:
        pg.start()
        try:  # the postmaster's pid is the first line of its pid file
            postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
            pid_file = write_pid_file(workdir / PID_DIR, "postgres", postmaster)
        except (OSError, ValueError, IndexError):
            pass  # `status` shows it as not started; the stack itself does not need the file
        yield pg
    finally:
        pg.stop()
        if pid_file:
            pid_file.unlink(missing_ok=True)
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def running_redis(workdir: Path, log_dir: Path, timeout: float = 20.0) -> Iterator[str]:
    """A private Redis on a free loopback port, no persistence; yields its URL."""
    import redis

    folder = workdir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        str(redis_server()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
    ]  # fmt: skip
    component = start_component("redis", argv, dict(os.environ), log_dir, pid_dir=workdir / PID_DIR)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

        def pong() -> bool:
            component.check_alive()
            return bool(client.ping())

        wait_until("redis", pong, timeout, interval=0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_components([component], grace=10)
