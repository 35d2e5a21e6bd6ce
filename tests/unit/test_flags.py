"""Feature flags load from a flagd file, flip when the file changes, and fail loudly when it is bad."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.common.flag_contract import Flag, flag_definitions
from services.common.flags import FeatureFlags, FlagsNotReady

RELOAD_TIMEOUT_SECONDS = 5


def write_flags(path: Path, values: dict[Flag, bool | float]) -> None:
    path.write_text(json.dumps(flag_definitions(values)))


def test_without_a_file_every_flag_is_off() -> None:
    flags = FeatureFlags.from_file(None, "test-no-file")
    assert not flags.enabled(Flag.CART_FAILURE)
    assert flags.number(Flag.PAYMENT_FAILURE) == 0


def test_flags_are_read_from_the_file_and_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, {Flag.PAYMENT_FAILURE: 0.5})
    flags = FeatureFlags.from_file(path, "test-reload")
    try:
        assert flags.number(Flag.PAYMENT_FAILURE) == 0.5
        assert not flags.enabled(Flag.CART_FAILURE)
        write_flags(path, {Flag.CART_FAILURE: True})
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
        while not flags.enabled(Flag.CART_FAILURE):
            assert time.monotonic() < deadline, "the changed flags file was not reloaded"
            time.sleep(0.05)
        assert flags.number(Flag.PAYMENT_FAILURE) == 0
    finally:
        flags.shutdown()


def test_the_definitions_cover_every_flag_with_on_and_off_variants() -> None:
    document = flag_definitions({Flag.KAFKA_QUEUE_PROBLEMS: 10})
    assert set(document["flags"]) == {flag.value for flag in Flag}
    queue = document["flags"]["kafkaQueueProblems"]
    assert queue["variants"] == {"on": 10, "off": 0}
    assert queue["defaultVariant"] == "on"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot be read"), ("{not json", "is not JSON"), ('{"flags": {"x": {}}}', "not a valid flagd")],
    ids=["missing", "not-json", "not-flagd"],
)
def test_a_bad_flags_file_stops_start_up_with_a_clear_reason(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "flags.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(FlagsNotReady, match=message):
        FeatureFlags.from_file(path, f"test-bad-{message}")
