"""The two places job state can live, behind one small key-value interface: SQLite (one machine) or Redis.

Everything the job path knows about a job is in :mod:`.records` (pure logic on one JSON record); this module only
stores bytes under keys, atomically updates one key (:meth:`KV.update`), and keeps two hashes (active jobs, live
consumers). Keeping the interface this small is what lets the same logic run on either store, and be tested once.

- :class:`SQLiteKV`: one file (WAL, ``synchronous=NORMAL``), shared by every replica on the machine; a write is a
  ``BEGIN IMMEDIATE`` transaction, so read-modify-write needs no retry. Expiry is a column, pruned by the sweeper.
- :class:`RedisKV`: keys under a per-application prefix; read-modify-write is ``WATCH``/``MULTI`` (retried when
  another writer got there first). Every call waits out a Redis restart (connection refused, ``LOADING`` while it
  replays its append-only file) for up to ``outage_s``, so a job survives Redis going away for a while.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

logger = logging.getLogger("ray.serve")

T = TypeVar("T")
Updater = Callable[[bytes | None], tuple[bytes | None, T]]
"""``fn(current) -> (new value or None to leave it, what update() returns)``; may run more than once (Redis)."""


class KV(Protocol):
    """Bytes under string keys, with optional expiry; one-key atomic updates; small hashes."""

    def get(self, key: str) -> bytes | None: ...
    def get_many(self, keys: list[str]) -> list[bytes | None]: ...
    def put(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...
    def add(self, key: str, value: bytes, ttl_s: float | None = None) -> bool: ...
    def update(self, key: str, fn: Updater[T], ttl_s: float | None = None) -> T: ...
    def delete(self, *keys: str) -> None: ...
    def expire(self, keys: list[str], ttl_s: float) -> None: ...
    def hset(self, name: str, field: str, value: str) -> None: ...
    def hdel(self, name: str, *fields: str) -> None: ...
    def hgetall(self, name: str) -> dict[str, str]: ...
    def prune(self) -> int: ...
    def close(self) -> None: ...


class SQLiteKV:
    """The embedded store: one SQLite file in a private directory, one connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)  # documents and their text: never world-readable, even if it existed
        self._local = threading.local()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)")
            db.execute("CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS hashes (name TEXT, field TEXT, value TEXT, PRIMARY KEY (name, field))"
            )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
            self._local.db = db
        return db

    class _Txn:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _write(self) -> SQLiteKV._Txn:
        return SQLiteKV._Txn(self._db())

    @staticmethod
    def _expiry(ttl_s: float | None) -> float | None:
        return None if ttl_s is None else time.time() + ttl_s

    def get(self, key: str) -> bytes | None:
        row = (
            self._db()
            .execute(
                "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", (key, time.time())
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    def put(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, value, self._expiry(ttl_s)))

    def add(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        with self._write() as db:
            db.execute(
                "DELETE FROM kv WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?", (key, time.time())
            )
            cur = db.execute("INSERT OR IGNORE INTO kv VALUES (?, ?, ?)", (key, value, self._expiry(ttl_s)))
            return cur.rowcount == 1

    def update(self, key: str, fn: Updater[T], ttl_s: float | None = None) -> T:
        with self._write() as db:
            row = db.execute(
                "SELECT value, expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
            new, answer = fn(None if row is None else bytes(row[0]))
            if new is not None:
                expires = self._expiry(ttl_s) if ttl_s is not None else (row[1] if row is not None else None)
                db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, new, expires))
            return answer

    def delete(self, *keys: str) -> None:
        if keys:
            with self._write() as db:
                db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in keys])

    def expire(self, keys: list[str], ttl_s: float) -> None:
        if keys:
            with self._write() as db:
                db.executemany("UPDATE kv SET expires_at = ? WHERE key = ?", [(time.time() + ttl_s, k) for k in keys])

    def hset(self, name: str, field: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)", (name, field, value))

    def hdel(self, name: str, *fields: str) -> None:
        if fields:
            with self._write() as db:
                db.executemany("DELETE FROM hashes WHERE name = ? AND field = ?", [(name, f) for f in fields])

    def hgetall(self, name: str) -> dict[str, str]:
        rows = self._db().execute("SELECT field, value FROM hashes WHERE name = ?", (name,)).fetchall()
        return {f: v for f, v in rows}

    def prune(self) -> int:
        """Delete expired keys; returns how many."""
        with self._write() as db:
            return db.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),)
            ).rowcount

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class RedisKV:
    """The cluster store: keys under ``prefix`` in one Redis database, every call riding out a Redis restart."""

    def __init__(self, url: str, prefix: str, *, outage_s: float = 300.0) -> None:
        import redis

        self.prefix = prefix
        self.outage_s = outage_s
        self.redis = redis.Redis.from_url(
            url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=15, retry_on_timeout=False
        )
        self._transient = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
        self._watch_error = redis.WatchError

    def check(self, timeout_s: float = 30.0) -> None:
        """Fail fast, and clearly, when Redis is not there at all (a wrong URL, Redis not started): a replica that
        cannot reach its store should not start, and ``serve status`` then says why.

        Raises:
            RuntimeError: no answer to PING within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.redis.ping()
                return
            except self._transient as e:
                if time.monotonic() > deadline:
                    where = self.redis.connection_pool.connection_kwargs
                    raise RuntimeError(
                        f"jobs.store: no answer from Redis at {where.get('host')}:{where.get('port')} within "
                        f"{timeout_s:.0f} s ({e}); start it (docs/scaling.md, 'Jobs at cluster scale') or set "
                        "jobs.store to 'embedded' on one machine"
                    ) from None
                time.sleep(1.0)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, tried again with backoff while Redis is unreachable or loading, for up to ``outage_s``."""
        deadline = time.monotonic() + self.outage_s
        wait = 0.2
        while True:
            try:
                return fn()
            except self._transient as e:
                if time.monotonic() > deadline:
                    raise
                logger.warning("job store: Redis unreachable during %s (%s); retrying in %.1f s", what, e, wait)
                time.sleep(wait)
                wait = min(wait * 2, 5.0)

    def get(self, key: str) -> bytes | None:
        return cast("bytes | None", self._call("get", lambda: self.redis.get(self._k(key))))

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        return cast("list[bytes | None]", self._call("mget", lambda: self.redis.mget([self._k(k) for k in keys])))

    def put(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        self._call("set", lambda: self.redis.set(self._k(key), value, px=px))

    def add(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        return bool(self._call("set nx", lambda: self.redis.set(self._k(key), value, px=px, nx=True)))

    def update(self, key: str, fn: Updater[T], ttl_s: float | None = None) -> T:
        full = self._k(key)

        def attempt() -> T:
            with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(full)
                        new, answer = fn(cast("bytes | None", pipe.get(full)))
                        if new is None:
                            pipe.unwatch()
                            return answer
                        pipe.multi()
                        if ttl_s is not None:
                            pipe.set(full, new, px=max(1, int(ttl_s * 1000)))
                        else:
                            pipe.set(full, new, keepttl=True)
                        pipe.execute()
                        return answer
                    except self._watch_error:
                        continue  # another writer changed it between our read and our write: read again

        return self._call("update", attempt)

    def delete(self, *keys: str) -> None:
        if keys:
            self._call("delete", lambda: self.redis.delete(*[self._k(k) for k in keys]))

    def expire(self, keys: list[str], ttl_s: float) -> None:
        if not keys:
            return

        def run() -> None:
            with self.redis.pipeline(transaction=False) as pipe:
                for k in keys:
                    pipe.pexpire(self._k(k), max(1, int(ttl_s * 1000)))
                pipe.execute()

        self._call("expire", run)

    def hset(self, name: str, field: str, value: str) -> None:
        self._call("hset", lambda: self.redis.hset(self._k(name), field, value))

    def hdel(self, name: str, *fields: str) -> None:
        if fields:
            self._call("hdel", lambda: self.redis.hdel(self._k(name), *fields))

    def hgetall(self, name: str) -> dict[str, str]:
        raw = cast("dict[bytes, bytes]", self._call("hgetall", lambda: self.redis.hgetall(self._k(name))))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def prune(self) -> int:
        return 0  # Redis expires keys itself

    def close(self) -> None:
        self.redis.close()
