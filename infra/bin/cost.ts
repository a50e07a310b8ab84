#!/usr/bin/env node
// `npm run cost -- [--channels 10,100,1000] [--shards N|auto] [--markdown]`: the monthly bill of
// the stack as synthesized for each channel count (lib/cost.ts; no AWS call, no Docker: stand-in
// Lambda zips and ingester image, which synthesis only names). `--shards auto` sizes a provisioned
// chat stream for the channels, `0` is on-demand Kinesis (the stack's default). `--markdown`
// prints docs/deploy.md's cost table.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { BillLine, DeploymentShape, chatShardsFor, dollars, leversTable, markdownTable, monthlyBill, shapeOf, total } from '../lib/cost';
import { HighlightsStack, HighlightsStackProps } from '../lib/highlights-stack';
import { writeStandInAssets } from '../lib/lambda-build';

/** The bill of the stack synthesized with `props` for `channels` channels. */
export function billFor(channels: number, props: Partial<HighlightsStackProps> = {}): BillLine[] {
  return monthlyBill(shapeFor(channels, props), channels);
}

/** The priced shape of the stack synthesized with `props` for `channels` channels. */
export function shapeFor(channels: number, props: Partial<HighlightsStackProps> = {}): DeploymentShape {
  const assets = fs.mkdtempSync(path.join(os.tmpdir(), 'highlights-cost-'));
  try {
    writeStandInAssets(assets);
    const app = new cdk.App({ outdir: path.join(assets, 'cdk.out') });
    const stack = new HighlightsStack(app, 'Cost', {
      lambdaAssetDir: assets,
      ingestImage: ecs.ContainerImage.fromRegistry('example.invalid/ingest:cost'),
      env: { account: '123456789012', region: 'us-east-1' },
      channels,
      ...props,
    });
    return shapeOf(Template.fromStack(stack).toJSON());
  } finally {
    fs.rmSync(assets, { recursive: true, force: true });
  }
}

/** docs/deploy.md's table: 10, 100 and 1,000 channels, provisioned (sized) and on-demand Kinesis. */
export function deployDocTable(): string {
  const counts = [10, 100, 1000];
  const label = (n: number) => `${n.toLocaleString('en-US')} channels`;
  const provisioned = counts.map((n) => ({ label: label(n), lines: billFor(n, { kinesisShards: chatShardsFor(n) }) }));
  const onDemand = counts.map((n) => ({ label: label(n), lines: billFor(n, { kinesisShards: 0 }) }));
  return [
    '**Provisioned Kinesis** (`-c kinesisShards=N`, sized for half the channels live at once):',
    '',
    markdownTable(provisioned),
    '',
    '**On-demand Kinesis** (the default, no capacity planning):',
    '',
    markdownTable(onDemand),
    '',
    '**Levers**, each alone, from the provisioned deployment above (`LEVERS` in the model):',
    '',
    leversTable(counts.map((n) => ({ label: `${n.toLocaleString('en-US')}`, shape: shapeFor(n, { kinesisShards: chatShardsFor(n) }), channels: n }))),
  ].join('\n');
}

function main(argv: string[]) {
  const arg = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  if (argv.includes('--markdown')) {
    console.log(deployDocTable());
    return;
  }
  const counts = (arg('--channels') ?? '10,100,1000').split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--channels takes whole numbers of channels, e.g. 10,100');
  const shards = arg('--shards') ?? 'auto';
  if (shards !== 'auto' && !/^\d+$/.test(shards)) throw new Error('--shards takes a shard count, 0 (on-demand) or auto');
  for (const channels of counts) {
    const kinesisShards = shards === 'auto' ? chatShardsFor(channels) : Number(shards);
    const lines = billFor(channels, { kinesisShards });
    console.log(`${channels} channels: ${dollars(total(lines))} a month`);
    for (const line of lines) console.log(`  ${dollars(line.monthly).padStart(8)}  ${line.key.padEnd(11)} ${line.item}`);
  }
}

if (require.main === module) main(process.argv.slice(2));
