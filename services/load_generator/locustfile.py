"""What `python -m services.load_generator` gives Locust to load (`-f`): the shop's users, and the flags
file read as Locust starts, so that a bad `FLAGS_FILE` stops it at once."""

from __future__ import annotations

from typing import Any

from locust import events

from services.load_generator.users import WebsiteUser

__all__ = ["WebsiteUser"]


@events.init.add_listener
def _read_flags(**_: Any) -> None:
    WebsiteUser.flood.load()
