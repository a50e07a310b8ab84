// The cost model (lib/cost.ts) pinned on the stack as synthesized, and docs/deploy.md's table
// generated from it. A change to the stack or the prices that moves a bill shows here first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { billFor, deployDocTable } from '../bin/cost';
import { chatShardsFor, dollars, total } from '../lib/cost';

const bill = (channels: number, kinesisShards: number, window = 1) =>
  billFor(channels, { kinesisShards, detectorBatchingWindowSeconds: window });

test('the monthly bill for 10, 100 and 1,000 channels, provisioned and on-demand Kinesis', () => {
  const totals = (shards: (n: number) => number) => [10, 100, 1000].map((n) => dollars(total(bill(n, shards(n)))));
  assert.deepEqual(totals(chatShardsFor), ['$139', '$203', '$862']);
  assert.deepEqual(totals(() => 0), ['$180', '$278', '$1,269']);
});

test('what the template holds is what is priced', () => {
  const lines = bill(10, 1);
  const line = (key: string) => lines.find((l) => l.key === key);
  assert.equal(line('nat')?.item, '1 NAT gateway');
  assert.equal(line('ingester')?.item, '0.5 vCPU / 1 GB + public IPv4');
  assert.equal(line('database')?.item, 'db.t4g.micro, 20 GB');
  assert.ok(line('proxy'));
  assert.equal(line('kinesis')?.item, '2 streams: 1 + 1');
  assert.equal(bill(1000, 2).find((l) => l.key === 'database')?.item, 'db.t4g.small, 20 GB', 'a bigger database above 300 channels');
  assert.equal(bill(1000, 4).find((l) => l.key === 'kinesis')?.item, '2 streams: 4 + 1', 'the lifecycle stream keeps one shard');
});

test('detector state saves follow the batching window', () => {
  const state = (window: number) => bill(1000, 2, window).find((l) => l.key === 'dynamodb')!.monthly;
  assert.ok(state(1) > 500, `${state(1)}`);
  assert.ok(Math.abs(state(5) - state(1) / 5) < 1, `${state(5)} vs ${state(1)}`);
});

test('with the state carried in a tumbling window, one save per channel per window', () => {
  const state = (props: Record<string, number>) =>
    billFor(1000, { kinesisShards: 2, ...props }).find((l) => l.key === 'dynamodb')!.monthly;
  const perInvocation = state({ detectorBatchingWindowSeconds: 1 });
  const perMinute = state({ detectorBatchingWindowSeconds: 1, detectorStateWindowSeconds: 60 });
  assert.ok(perMinute < perInvocation / 50, `${perMinute} vs ${perInvocation}`);
  assert.equal(state({ detectorBatchingWindowSeconds: 5, detectorStateWindowSeconds: 60 }), perMinute, 'the batching window no longer decides');
});

test('shards are sized for half the channels live at once', () => {
  assert.deepEqual([10, 100, 500, 1000, 2000].map((n) => chatShardsFor(n)), [1, 1, 1, 2, 4]);
});

test("docs/deploy.md's cost table is the model's", () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'deploy.md'), 'utf8');
  const begin = doc.indexOf('-->', doc.indexOf('<!-- cost-table:begin')) + 3;
  const end = doc.indexOf('<!-- cost-table:end -->');
  assert.ok(begin > 3 && end > begin, 'docs/deploy.md has the cost-table markers');
  assert.equal(doc.slice(begin, end).trim(), deployDocTable().trim(), 'regenerate it: cd infra && npm run cost -- --markdown');
});
