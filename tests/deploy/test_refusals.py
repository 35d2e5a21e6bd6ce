"""`pyinfra inventory/local.py ...` refuses a misspelt `--data` key and a bad argument of an ad-hoc
operation in one line naming it, with no traceback and before any change.

`inventory/local.py` reads the running local cloud from its state directory's record; here the record
names this module's AWS emulator as the cloud's, which is all of the cloud these refusals reach (the
operations' account check).
"""

from __future__ import annotations

import os

import pytest

from infra.known import MOST_REPLICAS
from sim.supervisor.state import CloudState, ComponentRecord, start_time
from tests.support.pyinfra_run import REPO, Run, emulator_client, local_pyinfra

DEPLOY = REPO / "deploy.py"


@pytest.fixture(scope="module")
def env(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What `inventory/local.py` reads: a local cloud recorded as running, whose AWS emulator is moto."""
    state_dir = tmp_path_factory.mktemp("sim")
    pid = os.getpid()
    aws = ComponentRecord("aws", "started", address=moto_endpoint, pid=pid, start_time=start_time(pid))
    CloudState(state_dir, [aws]).write()
    settings = tmp_path_factory.mktemp("settings") / "settings.toml"
    settings.write_text("prometheus = false\n")  # chosen: the inventory prints no note on its binary
    return {"SHOPSTACK_SIM_STATE": str(state_dir), "SHOPSTACK_SETTINGS": str(settings)}


def refused(run: Run, line: str) -> None:
    """`run` failed with `line` as its one error, and no traceback."""
    assert run.returncode != 0, run.output[-3000:]
    assert "Traceback" not in run.output
    errors = [text for text in run.output.splitlines() if line in text]
    assert len(errors) == 1, run.output[-3000:]


def nothing_made(moto_endpoint: str) -> bool:
    """AWS holds nothing of a deploy: no state bucket, no table."""
    s3 = emulator_client(moto_endpoint, "s3")
    dynamodb = emulator_client(moto_endpoint, "dynamodb")
    return not s3.list_buckets()["Buckets"] and not dynamodb.list_tables()["TableNames"]


def test_a_deploy_with_a_misspelt_data_key_stops_naming_it_and_the_nearest_setting(
    env: dict[str, str], moto_endpoint: str
) -> None:
    run = local_pyinfra(env, str(DEPLOY), "--data", "replcas={}")
    refused(run, "settings: unknown setting 'replcas' (did you mean 'replicas'?)")
    assert nothing_made(moto_endpoint)


@pytest.mark.parametrize(
    ("operation", "line"),
    [
        (
            ("infra.ops.scale", "service=cart", "replicas=-1"),
            f"replicas takes a whole number from 1 to {MOST_REPLICAS}, not -1",
        ),
        (("infra.ops.scale", "service=kart", "replicas=2"), "unknown service 'kart' (did you mean 'cart'?)"),
        (
            ("infra.ops.set_flag", "flag=paymentFailur", "value=0.5"),
            "unknown flag 'paymentFailur' (did you mean 'paymentFailure'?)",
        ),
        (
            ("infra.ops.set_flag", "flag=cartFailure", "value=0.5"),
            "flag cartFailure takes on or off, not 0.5",
        ),
    ],
)
def test_an_operation_with_a_bad_argument_stops_naming_it_before_any_change(
    operation: tuple[str, ...], line: str, env: dict[str, str], moto_endpoint: str
) -> None:
    run = local_pyinfra(env, *operation)
    refused(run, line)
    assert nothing_made(moto_endpoint)
