#!/usr/bin/env python3
"""A loopback secrets service with a fixed capacity, for the restart storm.

It holds at most K requests at once. A request inside the capacity waits
SERVICE seconds (the service's own work: look the token up, read the bundle)
and gets 200 with the bundle; one beyond it is turned away at once with 503
(or 429), with `Retry-After: N` when asked to send one. Every request is
logged as (arrival time, status, requests in flight, path) and written to LOG as
JSON when the server stops: on SIGTERM, or after LIFETIME seconds at most.

Plain http:// on 127.0.0.1: agent-init allows http:// for loopback hosts
only (PROTOCOL.md §4), and TLS would measure the handshake, not the herd.

Usage: server.py PORT_FILE BUNDLE AUTH LOG --capacity K --service S
                 [--status 503|429] [--retry-after N] [--lifetime T]
"""

import argparse
import asyncio
import json
import signal
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port_file")
    p.add_argument("bundle")
    p.add_argument("auth", help="the Authorization header value to accept")
    p.add_argument("log")
    p.add_argument("--capacity", type=int, default=8)
    p.add_argument("--service", type=float, default=0.1)
    p.add_argument("--status", type=int, default=503, choices=[503, 429])
    p.add_argument("--retry-after", type=int, default=None)
    p.add_argument("--lifetime", type=float, default=300.0)
    a = p.parse_args()
    body = open(a.bundle, "rb").read()
    auth = a.auth.encode()
    events = []  # (time, status, in_flight, path)
    state = {"in_flight": 0}
    reason = {200: b"OK", 401: b"Unauthorized", 429: b"Too Many Requests", 503: b"Service Unavailable"}

    async def handle(reader, writer):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        now = time.time()
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        path = parts[1].decode("latin-1") if len(parts) > 1 else ""
        headers = {}
        for line in lines[1:]:
            if b":" in line:
                k, v = line.split(b":", 1)
                headers[k.strip().lower()] = v.strip()
        extra = b""
        if headers.get(b"authorization") != auth:
            status, payload = 401, b""
        elif state["in_flight"] >= a.capacity:
            status, payload = a.status, b""
            if a.retry_after is not None:
                extra = b"Retry-After: %d\r\n" % a.retry_after
        else:
            status, payload = 200, body
        events.append((now, status, state["in_flight"], path))
        if status == 200:
            state["in_flight"] += 1
            try:
                await asyncio.sleep(a.service)
            finally:
                state["in_flight"] -= 1
        writer.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n"
            % (status, reason[status], len(payload), extra)
            + payload
        )
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os

        os.rename(a.port_file + ".tmp", a.port_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            await asyncio.wait_for(stop.wait(), a.lifetime)
        except asyncio.TimeoutError:
            pass
        server.close()

    asyncio.run(serve())
    with open(a.log, "w") as f:
        json.dump({"capacity": a.capacity, "service": a.service, "events": events}, f)


if __name__ == "__main__":
    main()
