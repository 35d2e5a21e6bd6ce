"""Every bad setting and every bad argument of an ad-hoc operation is refused in one line naming it: a
misspelt key with the nearest known one, settings that contradict each other or what exists (subnets,
zones, EKS versions, node group sizes, services, flags, counts). Every stage's own data is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import OperationValueError

from infra.known import MOST_REPLICAS
from infra.ops import flag_value, known_service, replicas_value
from infra.settings import EKS_VERSIONS, Settings, SettingsError
from infra.stages.aws import aws_account
from infra.stages.emulator import kind_cluster, local_host_data

REPO = Path(__file__).resolve().parents[2]
AWS = {"stage": "aws", "account_id": "111122223333"}
#: what `inventory/kind.py` reads (`tox -e kind` sets them)
KIND_VARIABLES = (
    "SHOPSTACK_KIND_KUBECONFIG",
    "SHOPSTACK_KIND_AWS_ENDPOINT",
    "SHOPSTACK_KIND_CLUSTER_AWS_ENDPOINT",
    "SHOPSTACK_KIND_IMAGE_STORE",
)


def refusal(**data: Any) -> str:
    """The one line `Settings.parse` refuses the aws stage's data with, plus `data`."""
    with pytest.raises(SettingsError) as raised:
        Settings.parse({**AWS, **data})
    line = str(raised.value)
    assert "\n" not in line
    assert line.startswith("settings: ")
    return line


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"replcas": {"cart": 2}}, "settings: unknown setting 'replcas' (did you mean 'replicas'?)"),
        (
            {"kubernetes_versoin": "1.31"},
            "unknown setting 'kubernetes_versoin' (did you mean 'kubernetes_version'?)",
        ),
        (
            {"node_group": {"max_sise": 5}},
            "unknown setting 'node_group.max_sise' (did you mean 'node_group.max_size'?)",
        ),
        (
            {"cluster_autoscaler": {"expandr": "least-waste"}},
            "unknown setting 'cluster_autoscaler.expandr' (did you mean 'cluster_autoscaler.expander'?)",
        ),
    ],
)
def test_a_misspelt_key_is_refused_with_the_nearest_known_one(data: dict[str, Any], line: str) -> None:
    assert line in refusal(**data)


def test_a_key_near_no_setting_is_refused_with_the_known_ones() -> None:
    line = refusal(xyzzy=1)
    assert line.startswith("settings: unknown setting 'xyzzy' (known: stage, project, account_id,")
    assert "replicas" in line


def test_pyinfras_own_data_is_not_taken_for_a_setting() -> None:
    settings = Settings.parse({**AWS, "_sudo": True, "_env": {"A": "1"}, "replicas": {"cart": 3}})
    assert settings.replicas == {"cart": 3}


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (
            {"private_subnets": ["10.0.1.0/24", "10.0.1.128/25", "10.0.3.0/24"]},
            "private_subnets.0: 10.0.1.0/24 overlaps private_subnets.1 10.0.1.128/25",
        ),
        (
            {"public_subnets": ["10.0.2.0/24", "10.0.5.0/24", "10.0.6.0/24"]},
            "private_subnets.1: 10.0.2.0/24 overlaps public_subnets.0 10.0.2.0/24",
        ),
        (
            {"private_subnets": ["10.1.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]},
            "private_subnets.0: 10.1.1.0/24 is not inside vpc_cidr 10.0.0.0/16",
        ),
        (
            {"vpc_cidr": "10.0.0.0/22"},
            "public_subnets.0: 10.0.4.0/24 is not inside vpc_cidr 10.0.0.0/22",
        ),
        (
            {"region": "eu-west-1", "availability_zones": ["eu-west-1a", "us-east-1b", "eu-west-1c"]},
            "availability_zones: 'us-east-1b' is not a zone of region eu-west-1",
        ),
        (
            {"availability_zones": ["us-east-1a", "us-east-1a", "us-east-1c"]},
            "availability_zones: 'us-east-1a' is given twice",
        ),
    ],
)
def test_a_network_that_cannot_exist_is_refused_naming_the_subnet_or_zone(
    data: dict[str, Any], line: str
) -> None:
    assert line in refusal(**data)


def test_zones_of_the_region_and_its_local_zones_are_accepted() -> None:
    zones = ("us-east-1a", "us-east-1b", "us-east-1-bos-1a")
    assert Settings.parse({**AWS, "availability_zones": zones}).zones == zones


def test_kubernetes_version_is_one_eks_offers() -> None:
    assert Settings.parse({**AWS, "kubernetes_version": EKS_VERSIONS[0]}).kubernetes_version == "1.28"
    assert "kubernetes_version: EKS offers 1.28, " in refusal(kubernetes_version="1.27")
    assert "not '1.27'" in refusal(kubernetes_version="1.27")
    # `--data kubernetes_version=1.30` reaches the settings as the number 1.3
    assert "kubernetes_version: a version is a string, not the number 1.3: quote it" in refusal(
        kubernetes_version=1.3
    )


@pytest.mark.parametrize(
    ("node_group", "line"),
    [
        ({"min_size": 3, "desired_size": 2}, "node_group: min_size 3 is above desired_size 2"),
        ({"desired_size": 5, "max_size": 4}, "node_group: desired_size 5 is above max_size 4"),
        ({"min_size": 0}, "node_group.min_size: Input should be greater than or equal to 1 (got 0)"),
    ],
)
def test_node_group_sizes_must_be_ordered(node_group: dict[str, int], line: str) -> None:
    assert line in refusal(node_group=node_group)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"replicas": {"cartt": 2}}, "replicas: unknown service 'cartt' (did you mean 'cart'?)"),
        ({"replicas": {"cart": -1}}, "replicas.cart: Input should be greater than or equal to 1 (got -1)"),
        (
            {"replicas": {"cart": 300}},
            f"replicas.cart: Input should be less than or equal to {MOST_REPLICAS} (got 300)",
        ),
        ({"replicas": {"cart": "3"}}, "replicas.cart: Input should be a valid integer (got '3')"),
        (
            {"release_strategies": {"paymnt": "rolling"}},
            "release_strategies: unknown service 'paymnt' (did you mean 'payment'?)",
        ),
        (
            {"release_strategies": {"payment": "canary"}},
            "release_strategies.payment: Input should be 'blue-green' or 'rolling' (got 'canary')",
        ),
        (
            {"service_env": {"load-generatr": {"LOCUST_SPAWN_RATE": "2"}}},
            "service_env: unknown service 'load-generatr' (did you mean 'load-generator'?)",
        ),
        (
            {"service_env": {"cart": {"LOG-LEVEL": "debug"}}},
            "service_env: 'LOG-LEVEL' of 'cart' is not an environment variable name",
        ),
    ],
)
def test_a_service_the_shop_does_not_have_or_an_absurd_count_is_refused(
    data: dict[str, Any], line: str
) -> None:
    assert line in refusal(**data)


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        ({"paymentFailur": 0.5}, "flags: unknown flag 'paymentFailur' (did you mean 'paymentFailure'?)"),
        ({"cartFailure": 1}, "flags: flag cartFailure takes true or false, not 1"),
        ({"paymentFailure": True}, "flags: flag paymentFailure takes a number >= 0, not True"),
        ({"paymentFailure": -0.5}, "flags: flag paymentFailure takes a number >= 0, not -0.5"),
        ({"kafkaQueueProblems": "lots"}, "flags: flag kafkaQueueProblems takes a number >= 0, not 'lots'"),
    ],
)
def test_a_flag_outside_the_flags_contract_is_refused(flags: dict[str, Any], line: str) -> None:
    assert line in refusal(flags=flags)


def test_flags_of_the_contract_are_accepted() -> None:
    flags = {"cartFailure": True, "paymentFailure": 0.5, "loadGeneratorFloodHomepage": 100}
    assert Settings.parse({**AWS, "flags": flags}).flags == flags


def test_every_bad_key_is_named_on_the_one_line() -> None:
    line = refusal(replcas={"cart": 2}, node_group={"min_size": 3, "desired_size": 2}, account_id="12")
    assert "unknown setting 'replcas'" in line
    assert "node_group: min_size 3 is above desired_size 2" in line
    assert "account_id: String should match pattern" in line
    assert "(got '12')" in line


def test_every_stages_own_data_and_the_delivery_environments_are_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = local_host_data(tmp_path / "sim", "http://127.0.0.1:4566", {"PATH": ""})
    assert Settings.parse(local).stage == "local"
    kind = kind_cluster({variable: "x" for variable in KIND_VARIABLES})
    assert Settings.parse(kind).stage == "kind"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for environment in ("staging", "production"):
        env = {
            "SHOPSTACK_AWS_ACCOUNT_ID": "111122223333",
            "AWS_REGION": "eu-west-1",
            "SHOPSTACK_SETTINGS": str(REPO / "inventory" / "environments" / f"{environment}.toml"),
        }
        assert Settings.parse(aws_account(env)).project == f"shopstack-{environment}"


@pytest.mark.parametrize(
    ("flag", "value", "line"),
    [
        ("paymentFailur", "on", "unknown flag 'paymentFailur' (did you mean 'paymentFailure'?)"),
        ("cartFailure", "0.5", "flag cartFailure takes on or off, not '0.5'"),
        ("paymentFailure", "on", "flag paymentFailure takes a number >= 0 or off, not 'on'"),
        ("paymentFailure", -1, "flag paymentFailure takes a number >= 0 or off, not -1"),
        ("paymentFailure", "nan", "flag paymentFailure takes a number >= 0 or off, not 'nan'"),
    ],
)
def test_the_flag_operation_refuses_a_flag_or_value_outside_the_contract(
    flag: str, value: object, line: str
) -> None:
    with pytest.raises(OperationValueError) as raised:
        flag_value(flag, value)
    assert str(raised.value) == line


def test_the_flag_operation_takes_what_the_contract_allows() -> None:
    assert flag_value("cartFailure", "on") is True
    assert flag_value("cartFailure", False) is False
    assert flag_value("paymentFailure", 0.5) == 0.5
    assert flag_value("paymentFailure", "off") == 0


@pytest.mark.parametrize("given", [-1, 0, MOST_REPLICAS + 1, "many", 2.5, True])
def test_the_scale_operation_refuses_an_absurd_count(given: object) -> None:
    with pytest.raises(OperationValueError) as raised:
        replicas_value(given)
    assert str(raised.value) == f"replicas takes a whole number from 1 to {MOST_REPLICAS}, not {given!r}"


def test_the_operations_refuse_a_service_the_shop_does_not_have_naming_the_nearest() -> None:
    assert replicas_value(3) == 3
    known_service("cart")
    with pytest.raises(OperationValueError) as raised:
        known_service("chekout")
    assert str(raised.value) == "unknown service 'chekout' (did you mean 'checkout'?)"
