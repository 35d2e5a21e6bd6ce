"""Placeholder replaced by the receiver's query client."""


class TelemetryQuery:
    def __init__(self, url: str) -> None:
        self.url = url
