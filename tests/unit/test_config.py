"""Configuration comes from the environment; a bad variable is one line that names it."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, ServiceSettings


class PeerSettings(ServiceSettings):
    product_catalog_url: str = "http://product-catalog:8080"


def test_defaults_match_the_cluster_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "BIND_HOST", "PRODUCT_CATALOG_URL", "FLAGS_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = PeerSettings.from_env()
    assert (settings.bind_host, settings.port) == ("0.0.0.0", 8080)
    assert settings.product_catalog_url == "http://product-catalog:8080"
    assert settings.flags_file is None


def test_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("PRODUCT_CATALOG_URL", "http://127.0.0.1:1234")
    settings = PeerSettings.from_env()
    assert settings.port == 9000
    assert settings.product_catalog_url == "http://127.0.0.1:1234"


@pytest.mark.parametrize(("name", "value"), [("PORT", "eighty"), ("PORT", "70000"), ("LOG_LEVEL", "LOUD")])
def test_a_bad_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^invalid configuration: {name}:"):
        PeerSettings.from_env()
