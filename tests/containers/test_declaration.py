"""The image declaration: the real one covers the nine services and the load generator; mistakes fail with
one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from containers.declaration import check_modules, load, lock_groups
from containers.errors import ContainersError
from tests.containers.conftest import REPO, copy_project, run_cli

SERVICES = {
    "frontend-proxy": "services.frontend_proxy",
    "frontend": "services.frontend",
    "product-catalog": "services.product_catalog",
    "recommendation": "services.recommendation",
    "cart": "services.cart",
    "checkout": "services.checkout",
    "payment": "services.payment",
    "accounting": "services.accounting",
    "fraud-detection": "services.fraud_detection",
}


def test_the_declaration_covers_the_services_and_the_load_generator_as_non_root() -> None:
    declaration = load(REPO / "containers" / "images.toml", lock_groups(REPO / "uv.lock"))
    assert {name: spec.module for name, spec in declaration.images.items()} == {
        **SERVICES,
        "load-generator": "services.load_generator",
    }
    shop = {(s.port, s.user, s.group) for name, s in declaration.images.items() if name in SERVICES}
    assert shop == {(8080, 10001, "project")}
    generator = declaration.images["load-generator"]
    assert (generator.port, generator.user, generator.group) == (8089, 10001, "load")
    assert declaration.base.manifest.startswith("sha256:")
    assert str(declaration.target) == "cp311-linux/amd64-glibc2.28"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def redeclare(project: Path, image: str, entry: str) -> None:
    """Replace `image`'s line of the declaration with `image = ENTRY`."""
    path = project / "containers" / "images.toml"
    lines = path.read_text().splitlines()
    (number,) = [i for i, line in enumerate(lines) if line.startswith(f"{image} ")]
    lines[number] = f"{image} = {entry}"
    path.write_text("\n".join(lines) + "\n")


PAYMENT = 'module = "services.payment", group = "project", port = 8080, user = 10001'


def build_error(project: Path, image: str = "payment") -> str:
    result = run_cli(["build", "--project", str(project), "--out", str(project / "build"), "--only", image])
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_an_unknown_module_fails_with_one_line(project: Path) -> None:
    redeclare(project, "payment", "{ " + PAYMENT.replace("services.payment", "services.paymnet") + " }")
    assert build_error(project) == (
        "error: images.toml: image 'payment': unknown module services.paymnet "
        "(no such package at services/paymnet)"
    )


def test_a_module_outside_services_fails_with_one_line(project: Path) -> None:
    redeclare(project, "payment", "{ " + PAYMENT.replace("services.payment", "os.path") + " }")
    assert "image 'payment': unknown module 'os.path' (expected services.<package>)" in build_error(project)


def test_a_dependency_group_missing_from_the_lock_fails_with_one_line(project: Path) -> None:
    redeclare(project, "payment", "{ " + PAYMENT.replace('"project"', '"payments"') + " }")
    line = build_error(project)
    assert "image 'payment': dependency group 'payments' is not in uv.lock" in line
    assert "known: project, deploy, images, kind, lint, load, sim, test, tox" in line


@pytest.mark.parametrize(
    ("port", "shown"), [("0", "0"), ("70000", "70000"), ('"8080"', "'8080'"), ("true", "True")]
)
def test_a_bad_port_fails_with_one_line(project: Path, port: str, shown: str) -> None:
    redeclare(project, "payment", "{ " + PAYMENT.replace("port = 8080", f"port = {port}") + " }")
    assert f"image 'payment': port {shown} is not a TCP port (1-65535)" in build_error(project)


def test_root_is_refused_with_one_line(project: Path) -> None:
    redeclare(project, "payment", "{ " + PAYMENT.replace("user = 10001", "user = 0") + " }")
    assert "image 'payment': user 0 must be a non-root numeric uid" in build_error(project)


def test_an_unknown_key_fails_with_one_line(project: Path) -> None:
    redeclare(project, "payment", "{ " + PAYMENT.replace("user = 10001", "usr = 1") + " }")
    assert "image 'payment': unknown key 'usr'" in build_error(project)


def test_a_toml_syntax_error_fails_with_one_line(project: Path) -> None:
    redeclare(project, "payment", "{ " + PAYMENT)
    assert build_error(project).startswith("error: images.toml: ")


def test_selecting_an_undeclared_image_fails_with_one_line(project: Path) -> None:
    assert "no image named 'nope'" in build_error(project, "nope")


def test_a_declared_service_not_written_yet_is_an_unknown_module(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / "services" / "payment" / "__main__.py").unlink()
    declaration = load(project / "containers" / "images.toml", lock_groups(project / "uv.lock"))
    with pytest.raises(ContainersError, match=r"unknown module services.payment \(it has no __main__.py"):
        check_modules(project, [declaration.images["payment"]])
