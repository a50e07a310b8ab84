#!/usr/bin/env node
// `npm run cost -- [--profile starter|standard] [--channels 10,100,1000] [--shards N|auto]
// [--markdown]`: the monthly bill of the stack as synthesized for each channel count
// (lib/cost.ts; no AWS call, no Docker: stand-in Lambda zips and ingester image, which synthesis
// only names). `--shards auto` (the default) sizes a provisioned chat stream for the channels,
// `0` is on-demand Kinesis. `--markdown` prints docs/deploy.md's cost tables.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { BillLine, DeploymentShape, chatShardsFor, dollars, leversTable, markdownTable, monthlyBill, shapeOf, total, totalAfterAllowances } from '../lib/cost';
import { profileNamed } from '../lib/profile';
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

/** docs/deploy.md's tables: both profiles at 10, 100 and 1,000 channels, then the levers. */
export function deployDocTable(): string {
  const counts = [10, 100, 1000];
  const label = (n: number) => `${n.toLocaleString('en-US')} channels`;
  const sized = (n: number) => ({ kinesisShards: chatShardsFor(n) });
  const starter = counts.map((n) => ({ label: label(n), lines: billFor(n, { profile: 'starter', ...sized(n) }) }));
  const standard = counts.map((n) => ({ label: label(n), lines: billFor(n, { profile: 'standard', ...sized(n) }) }));
  const onDemand = counts.map((n) => ({ label: label(n), lines: billFor(n, { profile: 'standard', kinesisShards: 0 }) }));
  return [
    '**Starter profile** (`-c profile=starter`; one provisioned chat stream, sized for half the channels live at once, that also carries the lifecycle events):',
    '',
    markdownTable(starter),
    '',
    '**Standard profile** (the default; provisioned Kinesis, `-c kinesisShards=N`, sized the same way):',
    '',
    markdownTable(standard),
    '',
    '**Standard profile with on-demand Kinesis** (`-c kinesisShards=0`, no capacity planning):',
    '',
    markdownTable(onDemand),
    '',
    '**Levers**, each alone, from the standard profile with provisioned Kinesis (`LEVERS` in the model; those a profile already pulls save nothing there):',
    '',
    leversTable(counts.map((n) => ({ label: `${n.toLocaleString('en-US')}`, shape: shapeFor(n, { profile: 'standard', ...sized(n) }), channels: n }))),
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
  const profile = profileNamed(arg('--profile')).name;
  const counts = (arg('--channels') ?? '10,100,1000').split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--channels takes whole numbers of channels, e.g. 10,100');
  const shards = arg('--shards') ?? 'auto';
  if (shards !== 'auto' && !/^\d+$/.test(shards)) throw new Error('--shards takes a shard count, 0 (on-demand) or auto');
  for (const channels of counts) {
    const kinesisShards = shards === 'auto' ? chatShardsFor(channels) : Number(shards);
    const lines = billFor(channels, { profile, kinesisShards });
    console.log(`${profile}, ${channels} channels: ${dollars(total(lines))} a month (${dollars(totalAfterAllowances(lines))} after the always-free allowances)`);
    for (const line of lines) console.log(`  ${dollars(line.monthly).padStart(8)}  ${line.key.padEnd(11)} ${line.item}`);
  }
}

if (require.main === module) main(process.argv.slice(2));
