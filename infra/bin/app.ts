#!/usr/bin/env node
// `cdk deploy` entry point: settings from cdk.json's context (override with `-c key=value`).
import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import * as path from 'node:path';
import { HighlightsStack } from '../lib/highlights-stack';

const app = new cdk.App();
const context = (key: string): string => String(app.node.tryGetContext(key) ?? '');
/** `v2` unless told `seed`; anything else is a mistake to stop on, not to guess. */
function detectorMode(value: string): 'seed' | 'v2' {
  if (value === '' || value === 'v2') return 'v2';
  if (value === 'seed') return 'seed';
  throw new Error(`-c detectorMode must be seed or v2 (got ${JSON.stringify(value)})`);
}
const architecture = context('lambdaArchitecture') === 'x86_64' ? 'x86_64' : 'arm64';
new HighlightsStack(app, context('stackName') || 'TwitchHighlights', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  lambdaAssetDir: path.resolve(context('lambdaAssetDir') || '../target/lambda'),
  lambdaArchitecture: architecture,
  kinesisShards: Number(context('kinesisShards') || 0),
  channels: Number(context('channels') || 100),
  alarmEmail: context('alarmEmail') || undefined,
  monitoredChannels: context('monitoredChannels').split(',').map((c) => c.trim()).filter(Boolean),
  detectorBatchingWindowSeconds: Number(context('detectorBatchingWindowSeconds') || 1),
  detectorMode: detectorMode(context('detectorMode')),
  titleBlocklist: context('titleBlocklist').split(',').map((t) => t.trim()).filter(Boolean),
});
// cdk-nag's AWS Solutions rules on every synth: an unacknowledged finding fails the synth.
cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
