// A minimal LiveKit agent, written the way LiveKit's Node starter writes one.
//
// It registers with the LiveKit server named by LIVEKIT_URL (credentials from
// LIVEKIT_API_KEY and LIVEKIT_API_SECRET) and, for each room it is dispatched
// to, joins and logs. Nothing heavy: no plugins, no model downloads.
//
//   pnpm build && node dist/agent.js start
//
// Under agent-init the three LIVEKIT_* variables come from the sealed bundle;
// locally, from .env.local (agent-init reads it too, so both agree).
import { type JobContext, ServerOptions, cli, defineAgent, log } from '@livekit/agents';
import dotenv from 'dotenv';
import { fileURLToPath } from 'node:url';

// Local development only: images never ship .env files (see .dockerignore).
dotenv.config({ path: '.env.local', quiet: true });

export default defineAgent({
  entry: async (ctx: JobContext) => {
    await ctx.connect();
    log().info(`joined room ${ctx.room.name}`);
  },
});

// On SIGTERM the worker stops taking jobs and waits for running ones, for at
// most AGENT_DRAIN_TIMEOUT seconds (LiveKit's default: one hour). Give the
// orchestrator a longer grace period (docker stop -t, terminationGracePeriodSeconds).
const drainSeconds = Number(process.env.AGENT_DRAIN_TIMEOUT ?? 3600);

// LiveKit serves a health check on port 8081 in production; AGENT_HTTP_PORT
// moves it (so two workers can share a host).
const httpPort = process.env.AGENT_HTTP_PORT;

// Job processes kept warm (LiveKit's default in production: one per CPU, at most 4).
const idle = process.env.AGENT_IDLE_PROCESSES;

cli.runApp(
  new ServerOptions({
    agent: fileURLToPath(import.meta.url),
    agentName: 'agent-init-example-node',
    drainTimeout: drainSeconds * 1000,
    port: httpPort ? Number(httpPort) : undefined,
    numIdleProcesses: idle ? Number(idle) : undefined,
  }),
);
