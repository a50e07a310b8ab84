// Deployment profiles: what a deployment of a given size pays for. `standard` is the shape the
// stack always had (a NAT gateway, RDS Proxy, functions that use the database in the VPC, one
// stream for chat and one for lifecycle events); `starter` drops the fixed costs a single
// streamer cannot justify. docs/deploy.md ("Profiles") says why each part is chosen, and what
// the starter gives up for it.
//
// Only decisions live here, no constructs: the stack (highlights-stack.ts) reads them.

export type ProfileName = 'starter' | 'standard';

export interface Profile {
  name: ProfileName;
  /**
   * NAT gateways. With none, nothing runs in private subnets: the functions run outside the VPC
   * (they reach Twitch and the AWS APIs directly) and so must the way to the database.
   */
  natGateways: number;
  /**
   * RDS Proxy in front of PostgreSQL, the database in isolated subnets. Without it the database
   * is in public subnets, reachable from anywhere on 5432 (functions outside a VPC have no fixed
   * addresses), TLS forced, SCRAM passwords only, and every client requires SCRAM channel
   * binding, which authenticates the server without a CA bundle (adapters/src/postgres.rs).
   */
  rdsProxy: boolean;
  /** One Kinesis stream carries chat and lifecycle events (same partition key: the broadcaster). */
  lifecycleOnChatStream: boolean;
  /** Chat shards when the deployment names none (`-c kinesisShards`): 0 is on-demand. */
  defaultKinesisShards: number;
  /** The ingester's Fargate size (ARM): CPU units and MiB, one of Fargate's valid pairs. */
  ingesterCpu: number;
  ingesterMemoryMiB: number;
  /** Its buffer cap for chat Kinesis does not take (INGEST_MAX_BUFFER_MB), well inside the task. */
  ingesterBufferMiB: number;
  /**
   * How often it seals each channel's batch into a record (INGEST_FLUSH_MS). Kinesis bills every
   * record: at 1,000 channels, 250 ms costs about $37 a month more than 1 s, for detections up
   * to 0.75 s sooner (the detector's own batching window adds up to 1 s either way).
   */
  ingesterFlushMs: number;
  /** ECS Container Insights (per-task metrics, billed as custom metrics). */
  containerInsights: boolean;
  /** The detector's state window when the deployment names none (`-c detectorStateWindowSeconds`). */
  defaultStateWindowSeconds: number;
}

export const PROFILES: Record<ProfileName, Profile> = {
  starter: {
    name: 'starter',
    natGateways: 0,
    rdsProxy: false,
    lifecycleOnChatStream: true,
    defaultKinesisShards: 1,
    // Measured need: about 2 µs of CPU per message (docs/benchmarks.md, ingester): 10 busy
    // channels are far below a quarter of a core.
    ingesterCpu: 256,
    ingesterMemoryMiB: 512,
    ingesterBufferMiB: 128,
    ingesterFlushMs: 250,
    containerInsights: false,
    defaultStateWindowSeconds: 60,
  },
  standard: {
    name: 'standard',
    natGateways: 1,
    rdsProxy: true,
    lifecycleOnChatStream: false,
    defaultKinesisShards: 0,
    ingesterCpu: 512,
    ingesterMemoryMiB: 1024,
    ingesterBufferMiB: 256,
    ingesterFlushMs: 1000,
    containerInsights: true,
    defaultStateWindowSeconds: 60,
  },
};

/** `standard` unless told `starter`; anything else is a mistake to stop on, not to guess. */
export function profileNamed(value: string | undefined): Profile {
  if (value === undefined || value === '' || value === 'standard') return PROFILES.standard;
  if (value === 'starter') return PROFILES.starter;
  throw new Error(`-c profile must be starter or standard (got ${JSON.stringify(value)})`);
}
