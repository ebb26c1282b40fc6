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
import { type JobContext, type JobProcess, ServerOptions, cli, defineAgent, log } from '@livekit/agents';
import dotenv from 'dotenv';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Local development only: images never ship .env files (see .dockerignore).
dotenv.config({ path: '.env.local', quiet: true });

export default defineAgent({
  // Runs in each job process of the idle pool, a child of the worker: where
  // a plugin reads GOOGLE_APPLICATION_CREDENTIALS (a file secret; agent-init
  // sets the variable to the file's path). Logs whose credentials and the
  // file's SHA-256 (a fingerprint, as `ssh-keygen -l` shows one), never its content.
  prewarm: async (_proc: JobProcess) => {
    const path = process.env.GOOGLE_APPLICATION_CREDENTIALS;
    if (path) {
      const data = readFileSync(path);
      const email = JSON.parse(data.toString('utf8')).client_email ?? '?';
      const sha256 = createHash('sha256').update(data).digest('hex');
      log().info(
        `prewarm in process ${process.pid} (parent ${process.ppid}): credentials for ${email}, sha256 ${sha256}`,
      );
    }
  },
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
