"""Per-request response cache in SQLite.

One row per (request, attempt): a rerun after a crash or ``kill -9`` replays every finished call and sends
only the rest. WAL mode with ``synchronous=NORMAL``: a committed row survives the process being killed (the
OS holds it) at a fraction of the cost of an fsync per row. The API key is never part of a row or a key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from ..errors import LLMError
from .messages import key_view
from .types import Request

KEY_VERSION = 1


def cache_key(model: str, request: Request, attempt: int, view: list[dict] | None = None) -> str:
    """Hash of everything that changes the reply. The base URL is left out on purpose: several servers
    behind one run serve the same model, and moving from one to another must not re-buy answers."""
    payload = {
        "v": KEY_VERSION, "model": model, "messages": view if view is not None else key_view(request.messages),
        "temperature": request.temperature, "top_p": request.top_p, "max_tokens": request.max_tokens,
        "seed": request.seed, "stop": request.stop, "n": request.n, "response_format": request.response_format,
        "sample_index": request.sample_index, "attempt": attempt,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, "
                             "response TEXT NOT NULL, created REAL)")
        except sqlite3.Error as exc:
            raise LLMError(f"cache {self.path} cannot be opened: {exc}") from None

    def get(self, key: str) -> dict | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, response: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                         (key, model, json.dumps(response, ensure_ascii=False), time.time()))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
