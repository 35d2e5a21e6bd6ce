"""Bounded, steady loads run in the background while a test disturbs the stage: shoppers checking out
(`CheckoutLoad`), and shoppers browsing and buying (`MixedLoad`); each records every order placed and
every request that failed.

Both are the load generator's own shoppers (`services.load_generator.users.WebsiteUser`, the OpenTelemetry
Demo's Locust user), driven through Locust's library API (an `Environment`, its local runner, the request
event for each request) with a short constant pause instead of the demo's 1 to 10 s: `CheckoutLoad` runs
only their checkout task, `MixedLoad` all their tasks by the demo's weights. Locust runs in a child process
(`run_child`), because it patches the standard library for gevent as it is imported, which this process
(threads, asyncio, kubectl and pyinfra subprocesses, Playwright) must not be; the child prints one JSON
line per finished request and this side keeps every one. Bounded by time (in both processes) and by a
count; told to stop, the shoppers finish the task they are in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Self

REPO = Path(__file__).resolve().parents[2]
#: how long a shopper told to stop may take to finish the task it is in (a checkout: a few requests)
STOP_TIMEOUT_SECONDS = 30.0
#: a request's own bound (connect and read), as the hand-written loads had
REQUEST_TIMEOUT_SECONDS = 30.0
#: the child imports Locust first, so that gevent patches the standard library before anything uses it
CHILD = "import locust; from tests.integration.load import run_child; run_child()"


@dataclass
class Answer:
    """One request of a load: when it ended, what it was, its status (0: no answer), the version of
    frontend-proxy that answered it (or, without an answer, the error)."""

    at: float
    what: str
    status: int
    version: str


@dataclass(frozen=True)
class LoadFigures:
    """What one load did, for the run's summary: its kind, requests, those that failed, orders placed."""

    kind: str
    requests: int
    failed: int
    placed: int
    seconds: float


@dataclass
class ShopLoad:
    """`shoppers` Locust users against `shop_url`, pausing `pause_seconds` between tasks, for at most
    `max_seconds`; `answers` holds every finished request, `placed` the orders checked out."""

    #: the user's tasks this load runs, by name (None: all, by their weights)
    tasks: ClassVar[tuple[str, ...] | None] = None
    #: every load of this process once stopped, in order (the suite's summary reports them by test)
    finished: ClassVar[list[LoadFigures]] = []

    shop_url: str
    shoppers: int = 2
    max_seconds: float = 300.0
    pause_seconds: float = 0.2
    answers: list[Answer] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _child: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None
    _stderr: IO[str] | None = None
    _stopping: bool = False
    _started: float = 0.0
    _reported: bool = False

    def __enter__(self) -> Self:
        config = {
            "shop_url": self.shop_url,
            "users": self.shoppers,
            "max_seconds": self.max_seconds,
            "pause_seconds": self.pause_seconds,
            "tasks": self.tasks,
        }
        self._started = time.monotonic()
        self._child, self._stderr = start_child(config)
        self._reader = threading.Thread(target=self._read, name=f"{type(self).__name__}-reader", daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Tell the shoppers to stop, and wait until they have finished their tasks and every answer is in."""
        child = self._child
        if child is None:
            return
        self._halt()
        try:
            child.wait(timeout=STOP_TIMEOUT_SECONDS + 30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if self._reader is not None:
            self._reader.join(timeout=30)
        if self._stderr is not None:
            self._stderr.close()
        if self._reported:
            return
        self._reported = True
        with self._lock:
            figures = LoadFigures(
                type(self).__name__,
                len(self.answers),
                len(self._failures),
                len(self.placed),
                time.monotonic() - self._started,
            )
        ShopLoad.finished.append(figures)

    @property
    def failures(self) -> list[str]:
        """Every request that failed (a status of 400 or more, or no answer), naming it, in order."""
        with self._lock:
            return list(self._failures)

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.at > moment]

    def _bounded(self) -> bool:
        """Whether the load has done all it should (called with the lock held, after each answer)."""
        return False

    def _halt(self) -> None:
        self._stopping = True
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGTERM)

    def _read(self) -> None:
        assert self._child is not None
        assert self._child.stdout is not None
        for line in self._child.stdout:
            self._record(json.loads(line))
        code = self._child.wait()
        if code != 0 and not self._stopping:
            with self._lock:
                self._failures.append(f"the load's Locust process exited with {code}: {self._child_errors()}")

    def _record(self, event: dict[str, Any]) -> None:
        answer = Answer(event["at"], event["what"], event["status"], event["version"])
        with self._lock:
            self.answers.append(answer)
            if event["order"]:
                self.placed.append(event["order"])
            if event["failed"]:
                moment = time.strftime("%H:%M:%S", time.localtime(answer.at))
                self._failures.append(
                    f"{moment} {answer.what}: {answer.status or 'no answer'} {event['failed']}"
                )
            bounded = self._bounded()
        if bounded and not self._stopping:
            self._halt()

    def _child_errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]


@dataclass
class CheckoutLoad(ShopLoad):
    """`shoppers` users, each putting a product in its cart and checking out in turn, until `stop()`,
    `max_seconds` or `max_checkouts` (all together, placed or failed) is reached, whichever comes first."""

    tasks: ClassVar[tuple[str, ...] | None] = ("checkout",)

    max_checkouts: int = 600

    @property
    def attempts(self) -> int:
        return len(self.placed) + len(self._failures)

    def _bounded(self) -> bool:
        return self.attempts >= self.max_checkouts


@dataclass
class MixedLoad(ShopLoad):
    """`shoppers` users browsing and buying as the load generator's do (the home page, products,
    recommendations, the cart, adding to it, checkouts), until `stop()`, `max_seconds` or `max_requests`,
    whichever comes first. Every request is kept (`answers`): the failures name the request; `placed` the
    orders checked out."""

    shoppers: int = 4
    max_seconds: float = 600.0
    pause_seconds: float = 0.05
    max_requests: int = 20_000

    def _bounded(self) -> bool:
        return len(self.answers) >= self.max_requests


def start_child(
    config: dict[str, Any], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], IO[str]]:
    """`run_child(config)` in a new Python process (this one's interpreter, from the repository's root):
    the process, its stdout a pipe of JSON lines, and its stderr in a temporary file."""
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by the load's stop)
    child_env = {k: v for k, v in os.environ.items() if k != "FLAGS_FILE"} | (env or {})
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(config)],
        cwd=REPO,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    return child, stderr


def run_child() -> None:
    """The child's side: run the load generator's users as `sys.argv[1]` (JSON) says, printing one JSON
    line per finished request, until SIGTERM, its time is up, or (`once`) each task has run once.

    `users`, `pause_seconds`, `max_seconds`, `shop_url`; `tasks`: the user's task names to run (all, by
    weight, when null); `once`: run those tasks once each, in order, in one user, then stop; `details`:
    add the headers each request sent and the JSON each answer had.
    """
    import gevent
    from gevent.event import Event
    from locust import constant
    from locust.env import Environment
    from locust.exception import StopUser

    from services.load_generator.users import WebsiteUser

    config = json.loads(sys.argv[1])
    parent = os.getppid()
    done = Event()
    chosen = [getattr(WebsiteUser, name) for name in config["tasks"]] if config["tasks"] else None

    class Shopper(WebsiteUser):
        wait_time = constant(config["pause_seconds"])
        network_timeout = connection_timeout = REQUEST_TIMEOUT_SECONDS

    if config.get("once"):

        def every_task_once(user: WebsiteUser) -> None:
            for task in chosen or []:
                task(user)
            done.set()
            raise StopUser()

        Shopper.tasks = [every_task_once]
    elif chosen is not None:
        Shopper.tasks = chosen
    details = bool(config.get("details"))

    def report(request_type: str, response: Any, exception: Any, url: str, **_: Any) -> None:
        status = int(response.status_code or 0) if response is not None else 0
        path = url.split("://", 1)[-1].partition("/")[2]
        answered = status != 0
        event: dict[str, Any] = {
            "at": time.time(),
            "what": f"{request_type} /{path.split('?', 1)[0]}",
            "status": status,
            "version": response.headers.get("x-service-version", "") if answered else repr(exception),
            "failed": ((answered and response.text[:200]) or repr(exception)) if exception else "",
            "order": None,
        }
        if answered and not exception and request_type == "POST" and path == "api/checkout":
            event["order"] = str(response.json()["order_id"])
        if details:
            sent = response.request.headers if response is not None and response.request else {}
            event["path"] = "/" + path
            event["sent"] = {name.lower(): sent[name] for name in ("baggage", "cookie") if name in sent}
            is_json = answered and "json" in response.headers.get("content-type", "")
            event["json"] = response.json() if is_json else None
        print(json.dumps(event), flush=True)

    environment = Environment(
        user_classes=[Shopper], host=config["shop_url"], stop_timeout=STOP_TIMEOUT_SECONDS
    )
    environment.events.request.add_listener(report)
    runner = environment.create_local_runner()

    def orphaned() -> None:
        while os.getppid() == parent:
            gevent.sleep(1)
        done.set()

    gevent.spawn(orphaned)
    gevent.signal_handler(signal.SIGTERM, done.set)
    runner.start(config["users"], spawn_rate=config["users"])
    done.wait(timeout=config["max_seconds"])
    runner.stop()
    runner.quit()
