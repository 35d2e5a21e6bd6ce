"""frontend-proxy's route table and header rules, as functions."""

from __future__ import annotations

import pytest

from services.frontend_proxy.forwarding import downstream_headers, end_to_end, request_id, upstream_headers
from services.frontend_proxy.routes import shop_routes

ROUTES = shop_routes("http://frontend:8080", "http://collector:4318/base/")


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/", "http://frontend:8080/"),
        ("/product/OLJCESPC7Z", "http://frontend:8080/product/OLJCESPC7Z"),
        ("/api/cart", "http://frontend:8080/api/cart"),
        ("/api", "http://frontend:8080/api"),
        ("/otlp-http/v1/traces", "http://collector:4318/base/v1/traces"),
        ("/otlp-http", "http://frontend:8080/otlp-http"),
        ("/static/a%2Fb.css", "http://frontend:8080/static/a%2Fb.css"),
    ],
)
def test_the_longest_matching_prefix_picks_the_upstream(path: str, target: str) -> None:
    route = ROUTES.match(path)
    assert route is not None
    assert route.target(path) == target


def test_connection_and_the_headers_it_names_are_dropped() -> None:
    headers = [("Connection", "close, X-Private"), ("X-Private", "1"), ("TE", "trailers"), ("Accept", "*/*")]
    assert end_to_end(headers) == [("Accept", "*/*")]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123", True),
        ("", False),
        ("has space", False),
        ("x" * 201, False),
        ("ünïcode", False),
        (None, False),
    ],
)
def test_a_request_id_is_kept_only_when_it_is_a_short_printable_token(
    incoming: str | None, kept: bool
) -> None:
    assert (request_id(incoming) == incoming) is kept


def test_upstream_headers_replace_host_and_request_id_and_extend_forwarded_for() -> None:
    headers = upstream_headers(
        [
            ("Host", "shop.example"),
            ("X-Request-Id", "spoofed"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Accept", "*/*"),
        ],
        client="10.0.0.2",
        scheme="http",
        host="shop.example",
        request_id="rid",
    )
    assert dict(headers) == {
        "Accept": "*/*",
        "X-Request-Id": "rid",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "shop.example",
        "X-Forwarded-For": "10.0.0.1, 10.0.0.2",
    }


def test_an_edges_forwarded_proto_and_host_are_kept() -> None:
    headers = dict(
        upstream_headers(
            [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "shop.example")],
            client=None,
            scheme="http",
            host="10.0.1.5:8080",
            request_id="rid",
        )
    )
    assert (headers["X-Forwarded-Proto"], headers["X-Forwarded-Host"]) == ("https", "shop.example")
    assert "X-Forwarded-For" not in headers


def test_downstream_headers_keep_repeated_headers_and_add_the_request_id() -> None:
    headers = downstream_headers(
        [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Date", "x"), ("Transfer-Encoding", "chunked")],
        request_id="rid",
    )
    assert headers == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Request-Id", "rid")]
