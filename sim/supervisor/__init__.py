"""The local cloud's supervisor: `python -m sim up|status|down`.

`cloud` declares the components and starts, checks and stops them; `state` is what a running cloud
records (and how a stray process of it is found); `process` starts and stops one process, waits for its
ports; `serving` serves an ASGI component until it is signalled.
"""
