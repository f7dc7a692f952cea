"""Where studies live: a journal file by default (safe for many processes), or any RDB URL.

SQLite under concurrent writers fails with "database is locked", so the default is Optuna's
``JournalStorage`` over an append-only file with a lock file: any number of worker processes on
one machine (or on a shared file system) can add trials to one study. ``postgresql://`` (or any
SQLAlchemy URL) lets workers on many machines share a study; there Optuna's heartbeats fail the
trial of a worker that died and :class:`RetryHeartbeatStaleTrialCallback` queues it again.
The journal has no heartbeats, so :func:`fail_dead_trials` does the same from the pid and host
each trial records when it starts.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.processes import pid_alive, start_ticks

#: File name of the default journal inside ``results/studies/<study>/``.
JOURNAL_NAME = "journal.log"
#: Seconds between heartbeats of a running trial (RDB storages) and the silence after which
#: another worker declares it dead. Trials take minutes, so a minute is cheap and prompt.
HEARTBEAT_INTERVAL = 60
GRACE_PERIOD = 180
#: How often a dead worker's trial is queued again before it is left failed.
MAX_RETRY = 2

try:  # Optuna >= 4.9 renamed the callback; keep working on the 4.x the project allows.
    from optuna.storages import RetryHeartbeatStaleTrialCallback as RetryCallback

    _STALE_KW = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - older Optuna
    from optuna.storages import RetryFailedTrialCallback as RetryCallback

    _STALE_KW = "failed_trial_callback"


def is_url(ref: str) -> bool:
    return "://" in ref


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str | None, default_dir: str | Path, *, heartbeat_interval: int = HEARTBEAT_INTERVAL,
                 grace_period: int = GRACE_PERIOD) -> BaseStorage:
    """An Optuna storage: ``None`` → ``default_dir/journal.log``; a path → that journal file;
    ``scheme://…`` → an RDB storage with heartbeats and retry of dead workers' trials."""
    if url is None or not is_url(url):
        path = Path(url) if url else Path(default_dir) / JOURNAL_NAME
        if path.is_dir():
            path = path / JOURNAL_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return _open_rdb(url, heartbeat_interval, grace_period)


def _driver_url(url: str) -> str:
    """Pick the PostgreSQL driver that is installed: SQLAlchemy >= 2.1 defaults to psycopg 3, the
    project's ``postgres`` extra installs psycopg2."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}{sep}{rest}"
    return f"postgresql{sep}{rest}"


def _open_rdb(url: str, heartbeat_interval: int, grace_period: int) -> RDBStorage:
    url = _driver_url(url)
    # SQLite waits for the lock instead of failing at once; servers drop idle connections.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    last: Exception | None = None
    for attempt in range(3):  # workers started together may race to create the tables
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                          _STALE_KW: RetryCallback(max_retry=MAX_RETRY)}
                return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as ImportError
            raise ConfigError(f"--storage {redact(url)}: its database driver is not installed "
                              f"(pip install 'harness[postgres]' for PostgreSQL)") from exc
        except Exception as exc:  # sqlalchemy errors: bad URL, server down, table race
            last = exc
            if type(exc).__name__ not in ("OperationalError", "IntegrityError", "ProgrammingError"):
                break  # a malformed URL or unknown dialect: retrying cannot help
            time.sleep(0.5 + attempt)
    first = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
    raise ConfigError(f"--storage {redact(url)}: cannot open the database ({first})") from last


# -- worker identity and dead workers ------------------------------------------------------------
def worker_attrs() -> dict[str, str | int | None]:
    """Who runs a trial: stored as user attributes so another worker can tell if it died."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": start_ticks(os.getpid())}


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker process on this host is gone, and queue each again.

    Returns the numbers of the trials this call failed (another worker may win the race)."""
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or "pid" not in attrs or pid_alive(int(attrs["pid"]), attrs.get("pid_start")):
            continue
        try:
            frozen = study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            continue  # another worker failed it first
        failed.append(trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            RetryCallback(max_retry=MAX_RETRY)(study, frozen)
    return failed
