"""The Kafka stand-in advertises what the pod declares, as the real image does, so that clients find a
restarted broker (a new pod address) again through the Service's stable address."""

from __future__ import annotations

import pytest

from sim.standins.kafka import advertised, tansu_argv


def test_the_declared_listener_is_advertised_at_its_resolved_address() -> None:
    env = {"KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093"}
    assert advertised("127.160.0.7:9092", env) == "127.0.0.1:9092"


def test_without_a_declared_listener_the_broker_advertises_where_it_listens() -> None:
    assert advertised("127.160.0.7:9092", {}) == "127.160.0.7:9092"


@pytest.mark.parametrize(
    ("declared", "says"),
    [
        ("PLAINTEXT://no-such-service.invalid:9092", "cannot resolve"),
        ("kafka:9092", "is not NAME://HOST:PORT"),
    ],
)
def test_a_listener_that_cannot_be_used_is_reported_and_the_pod_address_advertised(
    declared: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert advertised("127.160.0.7:9092", {"KAFKA_ADVERTISED_LISTENERS": declared}) == "127.160.0.7:9092"
    assert says in capsys.readouterr().err


def test_the_broker_listens_on_the_pod_and_advertises_the_service() -> None:
    argv = tansu_argv("127.160.0.7:9092", "memory://tansu/", "127.160.128.11:9092")
    assert argv[argv.index("--listener-url") + 1] == "tcp://127.160.0.7:9092"
    assert argv[argv.index("--advertised-listener-url") + 1] == "tcp://127.160.128.11:9092"
