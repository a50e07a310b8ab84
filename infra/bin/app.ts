#!/usr/bin/env node
// `cdk deploy` entry point: settings from cdk.json's context (override with `-c key=value`).
import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import * as path from 'node:path';
import { HighlightsStack } from '../lib/highlights-stack';
import { LambdaArchitecture } from '../lib/lambda-build';
import { profileNamed } from '../lib/profile';

const app = new cdk.App();
/** `arm64`, `x86_64` or unset; anything else is a mistake to stop on. */
function lambdaArchitectureSetting(value: string): LambdaArchitecture | undefined {
  if (value === '') return undefined;
  if (value === 'arm64' || value === 'x86_64') return value;
  throw new Error(`-c lambdaArchitecture must be arm64 or x86_64 (got ${JSON.stringify(value)})`);
}
const context = (key: string): string => String(app.node.tryGetContext(key) ?? '');
/** `v2` unless told `seed`; anything else is a mistake to stop on, not to guess. */
function detectorMode(value: string): 'seed' | 'v2' {
  if (value === '' || value === 'v2') return 'v2';
  if (value === 'seed') return 'seed';
  throw new Error(`-c detectorMode must be seed or v2 (got ${JSON.stringify(value)})`);
}
/** A whole number from the context, or undefined when unset (the profile decides then). */
function wholeNumber(key: string): number | undefined {
  const value = context(key);
  if (value === '') return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`-c ${key} must be a whole number (got ${JSON.stringify(value)})`);
  return Number(value);
}
/** `essential` unless told `all`. */
function metricsSetting(value: string): 'essential' | 'all' {
  if (value === '' || value === 'essential') return 'essential';
  if (value === 'all') return 'all';
  throw new Error(`-c metrics must be essential or all (got ${JSON.stringify(value)})`);
}
new HighlightsStack(app, context('stackName') || 'TwitchHighlights', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  lambdaAssetDir: path.resolve(context('lambdaAssetDir') || '../target/lambda'),
  // The zips' build.json decides; the context may only confirm it (lib/lambda-build.ts).
  lambdaArchitecture: lambdaArchitectureSetting(context('lambdaArchitecture')),
  profile: profileNamed(context('profile')).name,
  kinesisShards: wholeNumber('kinesisShards'),
  channels: Number(context('channels') || 100),
  alarmEmail: context('alarmEmail') || undefined,
  monitoredChannels: context('monitoredChannels').split(',').map((c) => c.trim()).filter(Boolean),
  detectorBatchingWindowSeconds: Number(context('detectorBatchingWindowSeconds') || 1),
  detectorStateWindowSeconds: wholeNumber('detectorStateWindowSeconds'),
  detectorMode: detectorMode(context('detectorMode')),
  metrics: metricsSetting(context('metrics')),
  titleBlocklist: context('titleBlocklist').split(',').map((t) => t.trim()).filter(Boolean),
});
// cdk-nag's AWS Solutions rules on every synth: an unacknowledged finding fails the synth.
cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
