"""One SQLite file in WAL mode with a connection per thread: the embedded mode's durable store.

Shared by the plan store (service) and the job store (worker), which keep
their own tables in the same file.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SQLiteFile:
    """Subclasses list their ``CREATE TABLE IF NOT EXISTS`` statements in ``SCHEMA``."""

    SCHEMA: tuple[str, ...] = ()

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()  # guards _connections and read-modify-write of documents
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in self.SCHEMA:
            conn.execute(statement)
        conn.commit()

    def _conn(self) -> sqlite3.Connection:
        # FastAPI runs ``def`` routes in a thread pool; an sqlite3 connection must stay in its thread.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across an API crash
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
