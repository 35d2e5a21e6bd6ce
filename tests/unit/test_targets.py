"""The deploy's targets: the aws inventory refuses to start without what it needs, in one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings, SettingsError
from infra.stages import TargetError
from infra.stages.aws import aws_account, settings_file


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_REGION": "eu-west-1"}, "set SHOPSTACK_AWS_ACCOUNT_ID"),
        ({"SHOPSTACK_AWS_ACCOUNT_ID": "111122223333"}, "set AWS_REGION"),
        ({"SHOPSTACK_AWS_ACCOUNT_ID": "111122223333", "AWS_REGION": "eu-west-1"}, "no AWS credentials found"),
    ],
)
def test_the_aws_target_refuses_to_start_without_account_region_or_credentials(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(TargetError, match=message) as raised:
        aws_account(env)
    assert "\n" not in str(raised.value)


def test_sizes_come_from_the_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    path = tmp_path / "settings.toml"
    path.write_text('[node_group]\ninstance_type = "t3.large"\ndesired_size = 3\n')
    data = aws_account(
        {
            "SHOPSTACK_AWS_ACCOUNT_ID": "111122223333",
            "AWS_REGION": "eu-west-1",
            "SHOPSTACK_SETTINGS": str(path),
        }
    )
    settings = Settings.parse(data)
    assert (settings.stage, settings.account_id, settings.region) == ("aws", "111122223333", "eu-west-1")
    assert (settings.node_group.instance_type, settings.node_group.desired_size) == ("t3.large", 3)
    assert settings.kube_access == "eks-token"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"node_group": {"min_size": 3, "desired_size": 2}}, "min_size 3 is above desired_size 2"),
        ({"node_group": {"instance_type": "m5.24xlarge"}}, "node_group.instance_type"),
        ({"account_id": "12"}, "account_id"),
        ({"private_subnets": ["10.1.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]}, "not inside vpc_cidr"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        Settings.parse({"stage": "aws", "account_id": "111122223333", **data})
    assert "\n" not in str(raised.value)


def test_a_bad_settings_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("node_group = [\n")
    with pytest.raises(TargetError, match=f"SHOPSTACK_SETTINGS={path}: not TOML"):
        settings_file({"SHOPSTACK_SETTINGS": str(path)})
