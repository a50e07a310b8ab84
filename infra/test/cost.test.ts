// The cost model (lib/cost.ts) pinned on the stack as synthesized, and docs/deploy.md's tables
// generated from it. A change to the stack or the prices that moves a bill shows here first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { billFor, deployDocTable } from '../bin/cost';
import { chatShardsFor, dollars, total, totalAfterAllowances } from '../lib/cost';
import { ProfileName } from '../lib/profile';

const bill = (profile: ProfileName, channels: number, kinesisShards: number, props: Record<string, number> = {}) =>
  billFor(channels, { profile, kinesisShards, ...props });
const totals = (profile: ProfileName, shards: (n: number) => number, sum = total) =>
  [10, 100, 1000].map((n) => dollars(sum(bill(profile, n, shards(n)))));

test('the monthly bill for 10, 100 and 1,000 channels in both profiles', () => {
  assert.deepEqual(totals('starter', chatShardsFor), ['$51', '$60', '$182']);
  assert.deepEqual(totals('starter', chatShardsFor, totalAfterAllowances), ['$42', '$49', '$144']);
  assert.deepEqual(totals('standard', chatShardsFor), ['$129', '$136', '$229']);
  assert.deepEqual(totals('standard', () => 0), ['$167', '$182', '$350']);
});

test("the issue's goals: a starter for 10 channels within $45 a month after the always-free allowances ($51 at list prices), a standard deployment within $0.25 per channel-month at 1,000", () => {
  assert.ok(totalAfterAllowances(bill('starter', 10, 1)) <= 45);
  assert.ok(total(bill('starter', 10, 1)) <= 52, 'at list prices');
  assert.ok(total(bill('standard', 1000, chatShardsFor(1000))) <= 250);
});

test('what the template holds is what is priced', () => {
  const line = (lines: ReturnType<typeof bill>, key: string) => lines.find((l) => l.key === key);
  const standard = bill('standard', 10, 1);
  assert.equal(line(standard, 'nat')?.item, '1 NAT gateway');
  assert.equal(line(standard, 'ingester')?.item, '0.5 vCPU / 1 GB + public IPv4');
  assert.equal(line(standard, 'database')?.item, 'db.t4g.micro, 20 GB');
  assert.ok(line(standard, 'proxy'));
  assert.equal(line(standard, 'kinesis')?.item, '2 streams: 1 + 1');
  assert.match(line(standard, 'cloudwatch')!.item, /^30 metrics \(Container Insights too\)/);
  assert.equal(line(bill('standard', 1000, 2), 'database')?.item, 'db.t4g.small, 20 GB', 'a bigger database above 300 channels');
  assert.equal(line(bill('standard', 1000, 4), 'kinesis')?.item, '2 streams: 4 + 1', 'the lifecycle stream keeps one shard');

  const starter = bill('starter', 10, 1);
  assert.equal(line(starter, 'nat'), undefined, 'no NAT gateway');
  assert.equal(line(starter, 'proxy'), undefined, 'no RDS Proxy');
  assert.equal(line(starter, 'ingester')?.item, '0.25 vCPU / 0.5 GB + public IPv4');
  assert.equal(line(starter, 'kinesis')?.item, '1 stream: 1');
  assert.match(line(starter, 'cloudwatch')!.item, /^10 metrics, /);
  assert.match(line(billFor(10, { profile: 'standard', kinesisShards: 1, metrics: 'all' }), 'cloudwatch')!.item, /^63 metrics/, '-c metrics=all is priced');
});

test('detector state: one save per channel per state window (60 s by default), per batching window without one', () => {
  const state = (props: Record<string, number>) => bill('standard', 1000, 2, props).find((l) => l.key === 'dynamodb')!.monthly;
  const perInvocation = state({ detectorStateWindowSeconds: 0, detectorBatchingWindowSeconds: 1 });
  assert.ok(perInvocation > 500, `${perInvocation}`);
  assert.ok(Math.abs(state({ detectorStateWindowSeconds: 0, detectorBatchingWindowSeconds: 5 }) - perInvocation / 5) < 1);
  const perMinute = state({});
  assert.ok(perMinute < perInvocation / 50, `${perMinute} vs ${perInvocation}`);
  assert.equal(state({ detectorBatchingWindowSeconds: 5 }), perMinute, 'with a state window the batching window no longer decides');
});

test('Kinesis records follow the ingester flush: the standard profile seals a batch a second', () => {
  const kinesis = (profile: ProfileName) => bill(profile, 1000, 2).find((l) => l.key === 'kinesis')!.monthly;
  // Same shards; the records differ four-fold (one per 250 ms against one per second).
  assert.ok(kinesis('starter') - 2 * 0.015 * 730 > 3.5 * (kinesis('standard') - 3 * 0.015 * 730), `${kinesis('starter')} vs ${kinesis('standard')}`);
});

test('shards are sized for half the channels live at once', () => {
  assert.deepEqual([10, 100, 500, 1000, 2000].map((n) => chatShardsFor(n)), [1, 1, 1, 2, 4]);
});

test("docs/deploy.md's cost tables are the model's", () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'deploy.md'), 'utf8');
  const begin = doc.indexOf('-->', doc.indexOf('<!-- cost-table:begin')) + 3;
  const end = doc.indexOf('<!-- cost-table:end -->');
  assert.ok(begin > 3 && end > begin, 'docs/deploy.md has the cost-table markers');
  assert.equal(doc.slice(begin, end).trim(), deployDocTable().trim(), 'regenerate it: cd infra && npm run cost -- --markdown');
});
