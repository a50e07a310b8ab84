// The monthly bill of a deployment, as code: what the synthesized template holds (NAT gateways,
// RDS instance and proxy, Fargate size, Kinesis mode and shards, alarms, secrets, keys) priced
// with a dated list-price table, plus what the chat of N channels costs per use (Kinesis, DynamoDB
// detector state, Lambda, API, logs) under documented workload assumptions. `npm run cost`
// prints it; docs/deploy.md's cost table is generated from it (`npm run cost -- --markdown`) and a
// test keeps the two equal.
//
// It must not call AWS: prices are a table to update by hand, and every figure here is an
// estimate to check with the AWS Pricing Calculator before relying on it.
import { resources } from './resources';

/** List prices, us-east-1, USD (checked 2026-12; ARM/Graviton where it applies). */
export const PRICES = {
  hoursPerMonth: 730,
  natGatewayHour: 0.045,
  natGatewayGb: 0.045,
  publicIpv4Hour: 0.005,
  fargateArmVcpuHour: 0.03238,
  fargateArmGbHour: 0.00356,
  /** On-demand, single-AZ, PostgreSQL. */
  rdsInstanceHour: { 'db.t4g.micro': 0.016, 'db.t4g.small': 0.032, 'db.t4g.medium': 0.065 } as Record<string, number>,
  rdsStorageGbMonth: 0.115,
  /** RDS Proxy: per vCPU of the instance, at least 2. */
  rdsProxyVcpuHour: 0.015,
  kinesisShardHour: 0.015,
  kinesisPutUnitsMillion: 0.014,
  kinesisOnDemandStreamHour: 0.04,
  kinesisOnDemandIngestGb: 0.08,
  kinesisOnDemandRetrievalGb: 0.04,
  dynamoWriteUnitsMillion: 0.625,
  dynamoReadUnitsMillion: 0.125,
  lambdaArmGbSecond: 0.0000133334,
  lambdaRequestsMillion: 0.2,
  httpApiRequestsMillion: 1.0,
  cloudfrontGb: 0.085,
  cloudfrontRequests10k: 0.01,
  cloudwatchMetricMonth: 0.3,
  cloudwatchDashboardMonth: 3.0,
  cloudwatchAlarmMonth: 0.1,
  logsIngestGb: 0.5,
  logsStorageGbMonth: 0.03,
  secretMonth: 0.4,
  kmsKeyMonth: 1.0,
  /**
   * What AWS gives every account each month for ever (not the 12-month trial): CloudWatch's first
   * 10 metrics, 10 alarms, 3 dashboards and 5 GB of logs; Lambda's first 1 M requests and 400,000
   * GB-s; CloudFront's first 1 TB and 10 M requests. Only if nothing else in the account uses them.
   */
  alwaysFree: { metrics: 10, alarms: 10, dashboards: 3, logsGb: 5, lambdaRequests: 1e6, lambdaGbSeconds: 400_000, cloudfrontGb: 1000, cloudfrontRequests: 10e6 },
  /** A NAT instance instead of the gateway: t4g.nano, its 8 GB disk and public IPv4. */
  natInstanceMonth: 0.0042 * 730 + 8 * 0.08 + 0.005 * 730,
};

/** What N channels do in a month (docs/deploy.md, "Monthly cost", states the same). */
export const WORKLOAD = {
  /** Each channel is live this many hours a day... */
  liveHoursPerDay: 8,
  /** ...and at most this fraction of the channels is live at the same time (shard sizing). */
  peakLiveFraction: 0.5,
  /** Chat while live, messages/s, and their size on the wire (docs/benchmarks.md: ingester). */
  messagesPerSecond: 5,
  bytesPerMessage: 56.5,
  /** The ingester's records per live channel and second at its fastest flush (250 ms): shard sizing. */
  recordsPerSecond: 4,
  /**
   * A saved state item with its keys: v2 with its phrase sketch, 5 messages/s from 300 chatters
   * (707 bytes of state, test `state_is_small_and_a_seed_state_is_refused`, plus about 143 of
   * keys, version, sequence and times): one 1 KB write unit per save.
   */
  stateItemBytes: 850,
  clipsPerLiveDay: 5,
  /** API requests per channel and month (100k at 10 channels, 10M at 1,000). */
  apiRequestsPerChannel: 10_000,
  /** Site and API bytes CloudFront and API Gateway serve per API request, amortised. */
  bytesPerApiRequest: 20_000,
  /** CloudWatch Logs: a base, and per channel (JSON logs of the functions and the ingester). */
  logsGbBase: 0.5,
  logsGbPerChannel: 0.02,
  /** Custom metrics the functions and the ingester emit (EMF names × dimension sets)... */
  customMetrics: 43,
  /** ...and with METRICS=essential (config/metrics.json: 8 names, clip failures per reason too). */
  essentialMetrics: 10,
  /**
   * ECS Container Insights, when on: billed as custom metrics (cluster, service and task-family
   * levels of one service). An estimate: check it on the bill.
   */
  containerInsightsMetrics: 20,
  /** Traffic through the NAT gateway per channel (clipper and lifecycle calls to Twitch and AWS). */
  natGbPerChannel: 0.11,
  /** Detector invocation: time and memory per invocation, and compute per live channel-second. */
  detectorMsPerInvocation: 30,
  detectorMsPerLiveChannelSecond: 0.02,
  functionMemoryGb: 0.25,
};

/** The priced parts of a synthesized template. */
export interface DeploymentShape {
  natGateways: number;
  /** NAT instances (the cheap, single-instance alternative to the gateway). */
  natInstances?: number;
  rdsInstanceClass: string;
  rdsStorageGb: number;
  rdsProxy: boolean;
  fargateVcpu: number;
  fargateMemoryGb: number;
  fargatePublicIp: boolean;
  containerInsights?: boolean;
  /** The ingester's flush interval (INGEST_FLUSH_MS): one record per live channel per interval. */
  ingesterFlushMs?: number;
  /** Every EMF value a metric (`all`) or only the essential ones. */
  metrics?: 'essential' | 'all';
  /** Per Kinesis stream: on-demand, or its shard count; `chat` carries the chat records. */
  kinesisStreams: ({ chat: boolean } & ({ mode: 'ON_DEMAND' } | { mode: 'PROVISIONED'; shards: number }))[];
  /** Lambda mappings reading Kinesis: each polls every shard of its stream about once a second. */
  kinesisMappings?: number;
  /** The detector mapping's batching window: one state save per live channel per window. */
  detectorWindowSeconds: number;
  /** The detector mapping's tumbling window (0: none): with one, a save per channel per window. */
  detectorStateWindowSeconds?: number;
  alarms: number;
  dashboards: number;
  secrets: number;
  kmsKeys: number;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, any> }>;

/** The environment of a task definition's first container (its `Properties`). */
export function containerEnv(task: Record<string, any>): Record<string, unknown> {
  const environment: { Name: string; Value: unknown }[] = task.ContainerDefinitions?.[0]?.Environment ?? [];
  return Object.fromEntries(environment.map((e) => [e.Name, e.Value]));
}

/** Reads the priced parts from a CloudFormation template (`Template.toJSON()`). */
export function shapeOf(template: { Resources?: Resources }): DeploymentShape {
  const all = Object.values(template.Resources ?? {});
  const ofType = (type: string) => all.filter((r) => r.Type === type);
  const instance = ofType('AWS::RDS::DBInstance')[0]?.Properties ?? {};
  const task = ofType('AWS::ECS::TaskDefinition')[0]?.Properties ?? {};
  const service = ofType('AWS::ECS::Service')[0]?.Properties ?? {};
  const cluster = ofType('AWS::ECS::Cluster')[0]?.Properties ?? {};
  const streamIds = new Set(Object.entries(template.Resources ?? {}).filter(([, r]) => r.Type === 'AWS::Kinesis::Stream').map(([id]) => id));
  const kinesisMappings = ofType('AWS::Lambda::EventSourceMapping').filter((m) => streamIds.has(String(m.Properties?.EventSourceArn?.['Fn::GetAtt']?.[0] ?? '')));
  const detectorMapping = kinesisMappings.find((m) => String(m.Properties?.FunctionName?.Ref ?? '').startsWith('Detector'))?.Properties;
  return {
    natGateways: ofType('AWS::EC2::NatGateway').length,
    rdsInstanceClass: String(instance.DBInstanceClass ?? 'db.t4g.micro'),
    rdsStorageGb: Number(instance.AllocatedStorage ?? 20),
    rdsProxy: ofType('AWS::RDS::DBProxy').length > 0,
    fargateVcpu: Number(task.Cpu ?? 512) / 1024,
    fargateMemoryGb: Number(task.Memory ?? 1024) / 1024,
    fargatePublicIp: service.NetworkConfiguration?.AwsvpcConfiguration?.AssignPublicIp === 'ENABLED',
    ingesterFlushMs: Number(containerEnv(task).INGEST_FLUSH_MS ?? 250),
    metrics: containerEnv(task).METRICS === 'essential' ? 'essential' : 'all',
    containerInsights: (cluster.ClusterSettings ?? []).some((c: { Name: string; Value: string }) => c.Name === 'containerInsights' && c.Value !== 'disabled'),
    kinesisMappings: kinesisMappings.length,
    kinesisStreams: ofType('AWS::Kinesis::Stream').map((s) => {
      const chat = s.Properties?.Name === resources.kinesis.chat_messages.name;
      return s.Properties?.StreamModeDetails?.StreamMode === 'PROVISIONED'
        ? { chat, mode: 'PROVISIONED' as const, shards: Number(s.Properties?.ShardCount ?? 1) }
        : { chat, mode: 'ON_DEMAND' as const };
    }),
    detectorWindowSeconds: Number(detectorMapping?.MaximumBatchingWindowInSeconds ?? 1),
    detectorStateWindowSeconds: Number(detectorMapping?.TumblingWindowInSeconds ?? 0),
    alarms: ofType('AWS::CloudWatch::Alarm').length,
    dashboards: ofType('AWS::CloudWatch::Dashboard').length,
    secrets: ofType('AWS::SecretsManager::Secret').length,
    kmsKeys: ofType('AWS::KMS::Key').length,
  };
}

/** The rows of a bill, in the order tables show them, with their generic labels. */
export const ITEMS = {
  nat: 'NAT gateway',
  ingester: 'Chat ingester (Fargate, ARM)',
  database: 'PostgreSQL (RDS, single-AZ)',
  proxy: 'RDS Proxy',
  kinesis: 'Kinesis (chat and lifecycle streams)',
  dynamodb: 'DynamoDB (detector state, highlights)',
  lambda: 'Lambda (all functions)',
  api: 'API Gateway HTTP API + CloudFront',
  cloudwatch: 'CloudWatch (metrics, dashboard, alarms, logs)',
  secrets: 'Secrets Manager, KMS',
  free: 'AWS always-free allowances (if the account uses them for nothing else)',
} as const;
export type Item = keyof typeof ITEMS;

export interface BillLine {
  key: Item;
  /** What exactly is priced, e.g. `db.t4g.micro, 20 GB`. */
  item: string;
  monthly: number;
  /** How it grows: `fixed`, `per channel`, ... */
  scales: string;
}

/** Shards the chat stream needs at its peak (1,000 records/s and 1 MB/s each). */
export function chatShardsFor(channels: number, workload = WORKLOAD): number {
  const live = Math.ceil(channels * workload.peakLiveFraction);
  const records = live * workload.recordsPerSecond;
  const bytes = live * workload.messagesPerSecond * workload.bytesPerMessage;
  return Math.max(1, Math.ceil(records / 1000), Math.ceil(bytes / 1_000_000));
}

/** The month's bill, line by line, of `shape` serving `channels` channels. */
export function monthlyBill(shape: DeploymentShape, channels: number, workload = WORKLOAD, prices = PRICES): BillLine[] {
  const hours = prices.hoursPerMonth;
  const liveSeconds = channels * workload.liveHoursPerDay * 3600 * (hours / 24);
  const lines: BillLine[] = [];
  const add = (key: Item, item: string, monthly: number, scales: string) => lines.push({ key, item, monthly, scales });

  if (shape.natInstances) {
    add('nat', `${shape.natInstances} NAT instance (t4g.nano)`, shape.natInstances * prices.natInstanceMonth, 'fixed');
  } else if (shape.natGateways > 0) {
    add('nat', `${shape.natGateways} NAT gateway`, shape.natGateways * prices.natGatewayHour * hours + channels * workload.natGbPerChannel * prices.natGatewayGb, 'fixed + per GB');
  }
  const fargate = (shape.fargateVcpu * prices.fargateArmVcpuHour + shape.fargateMemoryGb * prices.fargateArmGbHour) * hours;
  add(
    'ingester',
    `${shape.fargateVcpu} vCPU / ${shape.fargateMemoryGb} GB${shape.fargatePublicIp ? ' + public IPv4' : ''}`,
    fargate + (shape.fargatePublicIp ? prices.publicIpv4Hour * hours : 0),
    'fixed',
  );
  const rdsHour = prices.rdsInstanceHour[shape.rdsInstanceClass];
  if (rdsHour === undefined) throw new Error(`no price for ${shape.rdsInstanceClass}: add it to PRICES`);
  add('database', `${shape.rdsInstanceClass}, ${shape.rdsStorageGb} GB`, rdsHour * hours + shape.rdsStorageGb * prices.rdsStorageGbMonth, 'fixed');
  if (shape.rdsProxy) add('proxy', '2-vCPU minimum', 2 * prices.rdsProxyVcpuHour * hours, 'fixed');

  // Kinesis: the chat stream carries the records; the lifecycle stream a handful.
  const records = liveSeconds * Math.min(workload.recordsPerSecond, 1000 / (shape.ingesterFlushMs ?? 250));
  const billedGb = (records * 1024) / 1e9; // on-demand rounds each record up to 1 KB
  let kinesis = 0;
  shape.kinesisStreams.forEach((stream) => {
    const chat = stream.chat;
    if (stream.mode === 'PROVISIONED') {
      kinesis += stream.shards * prices.kinesisShardHour * hours + (chat ? (records / 1e6) * prices.kinesisPutUnitsMillion : 0);
    } else {
      kinesis += prices.kinesisOnDemandStreamHour * hours + (chat ? billedGb * (prices.kinesisOnDemandIngestGb + prices.kinesisOnDemandRetrievalGb) : 0);
    }
  });
  const modes = shape.kinesisStreams.map((s) => (s.mode === 'PROVISIONED' ? `${s.shards}` : 'on-demand')).join(' + ');
  const streams = shape.kinesisStreams.length;
  add('kinesis', `${streams} stream${streams === 1 ? '' : 's'}: ${modes}`, kinesis, 'streams + records');

  // Detector state: one save per live channel and invocation (one per batching window), read
  // back the next; with the state carried in a tumbling window, one save and one read per window.
  const saveEverySeconds = (shape.detectorStateWindowSeconds ?? 0) > 0 ? shape.detectorStateWindowSeconds! : shape.detectorWindowSeconds;
  const saves = liveSeconds / Math.max(1, saveEverySeconds);
  const writeUnits = Math.ceil(workload.stateItemBytes / 1024);
  const readUnits = Math.ceil(workload.stateItemBytes / 4096) / 2; // eventually consistent
  const highlights = channels * workload.clipsPerLiveDay * (hours / 24) * 5; // item + 4 updates
  add(
    'dynamodb',
    `${Math.round(saves / 1e6)} M state saves of ${writeUnits} write units`,
    ((saves * writeUnits + highlights) / 1e6) * prices.dynamoWriteUnitsMillion + ((saves * readUnits) / 1e6) * prices.dynamoReadUnitsMillion,
    'per channel',
  );

  const apiRequests = channels * workload.apiRequestsPerChannel;
  const shardSeconds = (shape.kinesisMappings ?? shape.kinesisStreams.length) * hours * 3600;
  const gbSeconds =
    (shardSeconds * workload.detectorMsPerInvocation + liveSeconds * workload.detectorMsPerLiveChannelSecond + apiRequests * 20) / 1000 * workload.functionMemoryGb;
  const lambdaRequests = shardSeconds + apiRequests;
  add('lambda', `${Math.round(gbSeconds).toLocaleString('en-US')} GB-s`, gbSeconds * prices.lambdaArmGbSecond + ((shardSeconds + apiRequests) / 1e6) * prices.lambdaRequestsMillion, 'per channel and request');
  const servedGb = (apiRequests * workload.bytesPerApiRequest) / 1e9;
  add('api', `${(apiRequests / 1e6).toFixed(1)} M requests`, (apiRequests / 1e6) * prices.httpApiRequestsMillion + servedGb * prices.cloudfrontGb + (apiRequests / 10_000) * prices.cloudfrontRequests10k, 'per request');

  const logsGb = workload.logsGbBase + channels * workload.logsGbPerChannel;
  const metrics =
    (shape.metrics === 'essential' ? workload.essentialMetrics : workload.customMetrics) + (shape.containerInsights ? workload.containerInsightsMetrics : 0);
  add(
    'cloudwatch',
    `${metrics} metrics${shape.containerInsights ? ' (Container Insights too)' : ''}, ${shape.dashboards} dashboard, ${shape.alarms} alarms, ${logsGb.toFixed(1)} GB of logs`,
    metrics * prices.cloudwatchMetricMonth + shape.dashboards * prices.cloudwatchDashboardMonth + shape.alarms * prices.cloudwatchAlarmMonth + logsGb * (prices.logsIngestGb + prices.logsStorageGbMonth),
    'mostly fixed',
  );
  add('secrets', `${shape.secrets} secrets, ${shape.kmsKeys} key`, shape.secrets * prices.secretMonth + shape.kmsKeys * prices.kmsKeyMonth, 'fixed');

  const free = prices.alwaysFree;
  const credit =
    Math.min(metrics, free.metrics) * prices.cloudwatchMetricMonth +
    Math.min(shape.alarms, free.alarms) * prices.cloudwatchAlarmMonth +
    Math.min(shape.dashboards, free.dashboards) * prices.cloudwatchDashboardMonth +
    Math.min(logsGb, free.logsGb) * (prices.logsIngestGb + prices.logsStorageGbMonth) +
    (Math.min(lambdaRequests, free.lambdaRequests) / 1e6) * prices.lambdaRequestsMillion +
    Math.min(gbSeconds, free.lambdaGbSeconds) * prices.lambdaArmGbSecond +
    Math.min(servedGb, free.cloudfrontGb) * prices.cloudfrontGb +
    (Math.min(apiRequests, free.cloudfrontRequests) / 10_000) * prices.cloudfrontRequests10k;
  add('free', 'CloudWatch, Lambda and CloudFront allowances', -credit, 'per account');
  return lines;
}

/** The bill at list prices (the always-free allowances not deducted). */
export function total(lines: BillLine[]): number {
  return lines.filter((line) => line.key !== 'free').reduce((sum, line) => sum + line.monthly, 0);
}

/** The bill with the always-free allowances deducted. */
export function totalAfterAllowances(lines: BillLine[]): number {
  return lines.reduce((sum, line) => sum + line.monthly, 0);
}

/** Dollars as docs/deploy.md shows them: cents below $10, whole dollars above. */
export function dollars(amount: number): string {
  if (amount < 0) return `−${dollars(-amount)}`;
  return amount < 10 ? `$${amount.toFixed(2)}` : `$${Math.round(amount).toLocaleString('en-US')}`;
}

/** One column per deployment (a label and its bill), one row per item; `—` where it has none. */
export function markdownTable(columns: { label: string; lines: BillLine[] }[]): string {
  const header = `| item | ${columns.map((c) => c.label).join(' | ')} | how it scales |`;
  const rule = `| --- | ${columns.map(() => '---').join(' | ')} | --- |`;
  const rows = (Object.keys(ITEMS) as Item[]).filter((key) => key !== 'free').flatMap((key) => {
    const cells = columns.map((c) => c.lines.find((line) => line.key === key));
    const scales = cells.find((cell) => cell)?.scales;
    if (!scales) return [];
    return [`| ${ITEMS[key]} | ${cells.map((cell) => (cell ? dollars(cell.monthly) : '—')).join(' | ')} | ${scales} |`];
  });
  const totals = `| **total** | ${columns.map((c) => `**${dollars(total(c.lines))}**`).join(' | ')} | |`;
  const credit = (c: { lines: BillLine[] }) => c.lines.find((line) => line.key === 'free')?.monthly ?? 0;
  const free = `| ${ITEMS.free} | ${columns.map((c) => dollars(credit(c))).join(' | ')} | per account |`;
  const after = `| **total after the allowances** | ${columns.map((c) => `**${dollars(totalAfterAllowances(c.lines))}**`).join(' | ')} | |`;
  return [header, rule, ...rows, totals, free, after].join('\n');
}

/** A way to pay less, applied to a deployment's shape and workload. */
export interface Lever {
  name: string;
  /** What it costs in latency, availability or work, in a few words. */
  price: string;
  apply: (shape: DeploymentShape, workload: typeof WORKLOAD) => [DeploymentShape, typeof WORKLOAD];
}

/** The levers docs/deploy.md weighs; each one alone, then all together. */
export const LEVERS: Lever[] = [
  {
    name: 'no NAT gateway (functions outside the VPC; the starter profile)',
    price: 'the database on a public endpoint: TLS and SCRAM with channel binding only, no proxy',
    apply: (s, w) => [{ ...s, natGateways: 0, natInstances: 0 }, { ...w, natGbPerChannel: 0 }],
  },
  {
    name: 'a NAT instance (t4g.nano) instead of the gateway',
    price: 'one instance, no failover: clips stop while it is down',
    apply: (s, w) => [{ ...s, natGateways: 0, natInstances: 1 }, w],
  },
  { name: 'no RDS Proxy (the starter profile)', price: 'a connection per warm function (about 10 at this size)', apply: (s, w) => [{ ...s, rdsProxy: false }, w] },
  {
    name: 'ingester at 0.25 vCPU / 0.5 GB (the starter profile)',
    price: 'measured need: far below (500k messages/s per core)',
    apply: (s, w) => [{ ...s, fargateVcpu: 0.25, fargateMemoryGb: 0.5 }, w],
  },
  {
    name: 'lifecycle events on the chat stream (one stream; the starter profile)',
    price: 'the detector and lifecycle handlers share a stream; ordering per broadcaster kept',
    apply: (s, w) => [{ ...s, kinesisStreams: s.kinesisStreams.filter((k) => k.chat) }, w],
  },
  {
    name: 'detector batching window 5 s (`-c detectorBatchingWindowSeconds=5`)',
    price: 'up to 4 s later to the clip (none with VOD clips)',
    apply: (s, w) => [{ ...s, detectorWindowSeconds: 5 }, w],
  },
  {
    name: 'state saved once a minute (`-c detectorStateWindowSeconds=60`, both profiles: carried in a tumbling window)',
    price: 'exact after a crash or a redelivery (property test, chaos suite); a stream restarted within 10 minutes keeps its baseline until the window ends',
    apply: (s, w) => [{ ...s, detectorStateWindowSeconds: 60 }, w],
  },
  {
    name: 'only the essential metrics (`-c metrics=essential`, the default)',
    price: 'the other EMF values stay in the logs (Logs Insights), not on graphs',
    apply: (s, w) => [{ ...s, metrics: 'essential' }, w],
  },
  {
    name: 'ingester flush 1 s (`INGEST_FLUSH_MS`; the standard profile)',
    price: 'detections up to 0.75 s later',
    apply: (s, w) => [{ ...s, ingesterFlushMs: 1000 }, w],
  },
  { name: 'no Container Insights (the starter profile)', price: 'CPU and memory per service only (ECS)', apply: (s, w) => [{ ...s, containerInsights: false }, w] },
];

/** The savings of each lever alone for each of `bases` (shape and channels), as a markdown table. */
export function leversTable(bases: { label: string; shape: DeploymentShape; channels: number }[]): string {
  const header = `| lever | ${bases.map((b) => `saves at ${b.label}`).join(' | ')} | at what price |`;
  const rule = `| --- | ${bases.map(() => '---').join(' | ')} | --- |`;
  const before = bases.map((b) => total(monthlyBill(b.shape, b.channels)));
  const rows = LEVERS.map((lever) => {
    const cells = bases.map((b, i) => {
      const [shape, workload] = lever.apply(b.shape, WORKLOAD);
      return dollars(Math.max(0, before[i] - total(monthlyBill(shape, b.channels, workload))));
    });
    return `| ${lever.name} | ${cells.join(' | ')} | ${lever.price} |`;
  });
  // Together (the NAT instance is the alternative to dropping NAT, not an addition).
  const together = LEVERS.filter((lever) => !lever.name.startsWith('a NAT instance'));
  const combined = bases.map((b) => {
    const [shape, workload] = together.reduce(([s, w], lever) => lever.apply(s, w), [b.shape, WORKLOAD] as [DeploymentShape, typeof WORKLOAD]);
    return dollars(total(monthlyBill(shape, b.channels, workload)));
  });
  const all = `| **all of them but the NAT instance: the bill left** | ${combined.map((c) => `**${c}**`).join(' | ')} | |`;
  return [header, rule, ...rows, all].join('\n');
}
