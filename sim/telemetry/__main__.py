"""Interim receiver: accepts OTLP/HTTP and answers /healthz (the full receiver replaces this)."""

import argparse

from quart import Quart

app = Quart("telemetry")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/<signal>")
async def accept(signal: str) -> tuple[bytes, int]:
    return b"", 200


parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=4318)
args = parser.parse_args()
app.run(host=args.host, port=args.port)
