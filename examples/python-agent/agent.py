"""A minimal LiveKit agent, written the way LiveKit's Python starter writes one.

It registers with the LiveKit server named by LIVEKIT_URL (credentials from
LIVEKIT_API_KEY and LIVEKIT_API_SECRET) and, for each room it is dispatched
to, joins and logs. Nothing heavy: no plugins, no model downloads.

    python agent.py start                       # production mode: drains on SIGTERM
    python agent.py start --drain-timeout 30    # drain for at most 30 s (LiveKit's default: 3600)

Under agent-init the three LIVEKIT_* variables come from the sealed bundle;
locally, from .env.local (agent-init reads it too, so both agree).
"""

import hashlib
import json
import logging
import os

from dotenv import load_dotenv
from livekit.agents import AgentServer, JobContext, JobProcess, cli

logger = logging.getLogger("agent")

# Local development only: images never ship .env files (see .dockerignore).
load_dotenv(".env.local")

# LiveKit serves a health check on port 8081 in production; AGENT_HTTP_PORT
# moves it (0 picks a free port, so two workers can share a host).
http_port = os.environ.get("AGENT_HTTP_PORT")
server = AgentServer(port=int(http_port)) if http_port else AgentServer()


def prewarm(proc: JobProcess) -> None:
    # Runs in each job process of the idle pool, a child of the worker: where
    # a plugin reads GOOGLE_APPLICATION_CREDENTIALS (a file secret; agent-init
    # sets the variable to the file's path). Logs whose credentials and the
    # file's SHA-256 (a fingerprint, as `ssh-keygen -l` shows one), never
    # its content.
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        with open(path, "rb") as f:
            data = f.read()
        email = json.loads(data).get("client_email", "?")
        logger.info(
            "prewarm in process %d (parent %d): credentials for %s, sha256 %s",
            os.getpid(),
            os.getppid(),
            email,
            hashlib.sha256(data).hexdigest(),
        )


server.setup_fnc = prewarm


@server.rtc_session(agent_name="agent-init-example-python")
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    logger.info("joined room %s", ctx.room.name)


if __name__ == "__main__":
    cli.run_app(server)
