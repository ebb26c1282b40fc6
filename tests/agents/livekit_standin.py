"""A stand-in for the LiveKit server's agent endpoint, for tests on loopback.

LiveKit's server is not available where the tests run, so this plays the one
part of it an agent worker talks to at start-up: the WebSocket at
LIVEKIT_URL + "/agent". It

- checks `Authorization: Bearer <JWT>` the way LiveKit does: HS256 signed with
  the API secret, `iss` equal to the API key, inside its `nbf`/`exp` window,
  with the `video.agent` grant; a token that fails gets 401;
- answers the worker's RegisterWorkerRequest (protobuf, from the
  `livekit-protocol` package that livekit-agents depends on) so the worker
  reaches its registered state, and answers pings;
- prints one JSON object per line on stdout for every thing it saw:
  {"event": "listening", "url": ...}, {"event": "auth", "ok": ..., ...},
  {"event": "register", "agent_name": ..., "version": ...},
  {"event": "status", "status": "WS_AVAILABLE" | "WS_FULL", ...} (a draining
  worker reports WS_FULL), {"event": "closed"}.

Usage: python livekit_standin.py --api-key KEY --api-secret SECRET [--api-key KEY2 --api-secret SECRET2]...
Run it with the Python of examples/python-agent/.venv (it has aiohttp and
livekit-protocol).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time

from aiohttp import WSMsgType, web
from livekit.protocol import agent, models

LEEWAY_SECONDS = 60


def emit(**event) -> None:
    print(json.dumps(event), flush=True)


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jwt(token: str, credentials: dict) -> tuple[bool, str, dict]:
    """Returns (ok, reason, claims) for an access token, checked as LiveKit does:
    with the secret of the API key the token names as its issuer."""
    try:
        header_b64, payload_b64, sig_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(payload_b64))
        signature = b64url_decode(sig_b64)
    except ValueError as e:
        return False, f"malformed token: {e}", {}
    if header.get("alg") != "HS256":
        return False, f"alg {header.get('alg')!r} is not HS256", claims
    api_key = claims.get("iss")
    if api_key not in credentials:
        return False, "iss is not the API key", claims
    api_secret = credentials[api_key]
    expected = hmac.new(
        api_secret.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(signature, expected):
        return False, "signature does not verify with the API secret", claims
    now = time.time()
    if "exp" in claims and now > claims["exp"] + LEEWAY_SECONDS:
        return False, "token expired", claims
    if "nbf" in claims and now < claims["nbf"] - LEEWAY_SECONDS:
        return False, "token not valid yet", claims
    if not (claims.get("video") or {}).get("agent"):
        return False, "token lacks the agent grant", claims
    return True, "", claims


def make_app(credentials: dict) -> web.Application:
    async def agent_ws(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            emit(event="auth", ok=False, reason="no bearer token")
            return web.Response(status=401, text="missing authorization")
        ok, reason, claims = verify_jwt(auth[len("Bearer ") :], credentials)
        emit(event="auth", ok=ok, reason=reason, iss=claims.get("iss"))
        if not ok:
            return web.Response(status=401, text=reason)

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            m = agent.WorkerMessage()
            m.ParseFromString(msg.data)
            which = m.WhichOneof("message")
            if which == "register":
                emit(
                    event="register",
                    agent_name=m.register.agent_name,
                    version=m.register.version,
                )
                reply = agent.ServerMessage(
                    register=agent.RegisterWorkerResponse(
                        worker_id="AW_standin",
                        server_info=models.ServerInfo(
                            edition=models.ServerInfo.Standard,
                            version="standin",
                            protocol=16,
                            region="loopback",
                        ),
                    )
                )
                await ws.send_bytes(reply.SerializeToString())
            elif which == "update_worker":
                emit(
                    event="status",
                    status=agent.WorkerStatus.Name(m.update_worker.status),
                    job_count=m.update_worker.job_count,
                )
            elif which == "ping":
                pong = agent.ServerMessage(
                    pong=agent.WorkerPong(
                        last_timestamp=m.ping.timestamp,
                        timestamp=int(time.time() * 1000),
                    )
                )
                await ws.send_bytes(pong.SerializeToString())
        emit(event="closed")
        return ws

    app = web.Application()
    app.router.add_get("/agent", agent_ws)
    return app


async def serve(credentials: dict) -> None:
    runner = web.AppRunner(make_app(credentials))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    emit(event="listening", url=f"ws://127.0.0.1:{port}")
    # Until stdin closes: the test holds it open and closing it (or the test
    # process dying) ends the server, so no stray server outlives a test.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Repeatable, in pairs: a rotation has the old and the new key valid at once.
    p.add_argument("--api-key", required=True, action="append")
    p.add_argument("--api-secret", required=True, action="append")
    args = p.parse_args()
    if len(args.api_key) != len(args.api_secret):
        p.error("--api-key and --api-secret come in pairs")
    asyncio.run(serve(dict(zip(args.api_key, args.api_secret))))


if __name__ == "__main__":
    main()
