"""The shop as local processes: the nine services wired to each other, the AWS emulator, Kafka and the
telemetry receiver, each on its own loopback port. Used by the service tests and the benchmarks."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from services.common.flag_contract import Flag, flag_definitions
from sim.supervisor.process import ManagedProcess, free_port, http_ok

HOST = "127.0.0.1"

MODULES = {
    "product-catalog": "services.product_catalog",
    "recommendation": "services.recommendation",
    "cart": "services.cart",
    "payment": "services.payment",
    "checkout": "services.checkout",
    "accounting": "services.accounting",
    "fraud-detection": "services.fraud_detection",
    "frontend": "services.frontend",
    "frontend-proxy": "services.frontend_proxy",
}

URL_VARIABLES = {
    "product-catalog": "PRODUCT_CATALOG_URL",
    "recommendation": "RECOMMENDATION_URL",
    "cart": "CART_URL",
    "payment": "PAYMENT_URL",
    "checkout": "CHECKOUT_URL",
    "accounting": "ACCOUNTING_URL",
    "fraud-detection": "FRAUD_DETECTION_URL",
    "frontend": "FRONTEND_URL",
}

# The services poll the flags file every 0.5 s; after this long all of them have the new values.
FLAGS_RELOAD_SECONDS = 1.2

# The peers each service calls: started before it.
PEERS = {
    "recommendation": ("product-catalog",),
    "checkout": ("cart", "product-catalog", "payment"),
    "frontend": ("product-catalog", "recommendation", "cart", "checkout"),
    "frontend-proxy": ("frontend",),
}

CART_TABLE = "shopstack-carts"
ORDERS_TABLE = "shopstack-orders"
CHECKOUTS_TABLE = "shopstack-checkouts"
CHECKOUTS_TTL_ATTRIBUTE = "expires_at"


def create_tables(aws_env: Mapping[str, str]) -> None:
    """Create the cart, orders and checkouts tables in the emulator, as the deploy does in the cloud."""
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    for table, key in (
        (CART_TABLE, "user_id"),
        (ORDERS_TABLE, "order_id"),
        (CHECKOUTS_TABLE, "checkout_key"),
    ):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    dynamodb.update_time_to_live(
        TableName=CHECKOUTS_TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": CHECKOUTS_TTL_ATTRIBUTE},
    )


@dataclass
class FlagsFile:
    """The flagd flags file every service reads; `set` rewrites it as the ConfigMap would."""

    path: Path
    values: dict[Flag, bool | float] = field(default_factory=dict)

    def write(self) -> None:
        """Replace the file atomically, as a ConfigMap volume update does."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(flag_definitions(self.values)))
        tmp.replace(self.path)

    def set(self, flag: Flag, value: bool | float) -> None:
        self.values[flag] = value
        self.write()
        time.sleep(FLAGS_RELOAD_SECONDS)

    def clear(self) -> None:
        if self.values:
            self.values.clear()
            self.write()
            time.sleep(FLAGS_RELOAD_SECONDS)


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


class Shop:
    """Starts, restarts and stops the services; `url(name)` addresses one."""

    def __init__(
        self,
        workdir: Path,
        *,
        aws_env: Mapping[str, str],
        kafka_bootstrap: str,
        otlp_endpoint: str | None,
        flags: FlagsFile,
    ) -> None:
        self.workdir = workdir
        self.flags = flags
        self.ports = {name: free_port(HOST) for name in MODULES}
        self.services: dict[str, ServiceProcess] = {}
        self.env: dict[str, str] = {
            "PATH": "/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "BIND_HOST": HOST,
            "FLAGS_FILE": str(flags.path),
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CART_TABLE": CART_TABLE,
            "ORDERS_TABLE": ORDERS_TABLE,
            "CHECKOUTS_TABLE": CHECKOUTS_TABLE,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_COLLECTOR_URL": otlp_endpoint or f"http://{HOST}:1",
            **aws_env,
            **{
                URL_VARIABLES[name]: f"http://{HOST}:{port}"
                for name, port in self.ports.items()
                if name in URL_VARIABLES
            },
        }
        if otlp_endpoint:
            self.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    def ensure(self, *names: str) -> None:
        """Start the named services, and the peers they call, unless they run already; wait until ready."""
        wanted: list[str] = []

        def add(name: str) -> None:
            for peer in PEERS.get(name, ()):
                add(peer)
            if name not in wanted and name not in self.services:
                wanted.append(name)

        for name in names or MODULES:
            add(name)
        self.start(wanted)
        self.wait_ready(wanted)

    def start(self, names: Iterable[str] = MODULES, extra_env: Mapping[str, str] | None = None) -> None:
        """Start the named services and wait until each answers `/healthz`."""
        started = []
        for name in names:
            env = {**self.env, "PORT": str(self.ports[name]), "OTEL_SERVICE_NAME": name, **(extra_env or {})}
            process = ManagedProcess(
                name,
                [sys.executable, "-m", MODULES[name]],
                self.workdir / "logs" / f"{name}.log",
                env=env,
            ).start()
            self.services[name] = ServiceProcess(name, self.ports[name], process)
            started.append(name)
        for name in started:
            self.services[name].process.wait_ready(
                lambda n=name: http_ok(f"{self.url(n)}/healthz"), timeout=60
            )

    def wait_ready(self, names: Iterable[str] = MODULES, timeout: float = 60) -> None:
        for name in names:
            self.services[name].process.wait_ready(lambda n=name: http_ok(f"{self.url(n)}/readyz"), timeout)

    def stop(self, name: str, grace: float = 10.0) -> int | None:
        return self.services.pop(name).process.stop(grace)

    def kill(self, name: str) -> None:
        self.services.pop(name).process.kill()

    def restart(self, name: str) -> None:
        if name in self.services:
            self.stop(name)
        self.start([name])
        self.wait_ready([name])

    def stop_all(self) -> None:
        for name in list(self.services):
            self.stop(name)
