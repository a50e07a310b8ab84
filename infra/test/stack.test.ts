// Assertions on the synthesized template: what a deploy must get right but cannot be tried
// against AWS here. Run with `npm test` (scripts/test runs it).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as rds from 'aws-cdk-lib/aws-rds';
import { AwsSolutionsChecks } from 'cdk-nag';
import { HighlightsStack, HighlightsStackProps } from '../lib/highlights-stack';
import { containerEnv } from '../lib/cost';
import { BUILD_RECORD, LAMBDA_FUNCTIONS, LambdaArchitecture, writeStandInAssets } from '../lib/lambda-build';

const FUNCTIONS = LAMBDA_FUNCTIONS;

/** Stand-in zips (synthesis only hashes them) and the build record `scripts/build-lambdas` writes. */
function placeholderAssets(architecture: LambdaArchitecture = 'arm64'): string {
  return writeStandInAssets(fs.mkdtempSync(path.join(os.tmpdir(), 'highlights-lambda-')), architecture);
}

const assets = placeholderAssets();

function synth(props: Partial<HighlightsStackProps> = {}, nag = false): { stack: HighlightsStack; template: Template; app: cdk.App } {
  const app = new cdk.App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'highlights-cdk-out-')) });
  const stack = new HighlightsStack(app, 'Test', {
    lambdaAssetDir: assets,
    ingestImage: ecs.ContainerImage.fromRegistry('example.invalid/ingest:test'),
    env: { account: '123456789012', region: 'eu-west-1' },
    ...props,
  });
  if (nag) cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { stack, template: Template.fromStack(stack), app };
}

const { stack, template } = synth({ alarmEmail: 'ops@example.com', monitoredChannels: ['alpha', 'beta'] });
const ref = (construct: { node: { defaultChild?: unknown } }) => ({
  Ref: stack.getLogicalId(construct.node.defaultChild as cdk.CfnElement),
});
const arnOf = (construct: { node: { defaultChild?: unknown } }) => ({
  'Fn::GetAtt': [stack.getLogicalId(construct.node.defaultChild as cdk.CfnElement), 'Arn'],
});
const resourcesOf = (type: string) => Object.entries(template.findResources(type));
/** The ingester container's environment in `of`. */
const ingesterEnvOf = (of: Template) => containerEnv(Object.values(of.findResources('AWS::ECS::TaskDefinition'))[0].Properties);

test('cdk-nag (AwsSolutions) finds nothing unacknowledged', () => {
  const { app } = synth({}, true);
  // With the plugin, an unacknowledged finding makes synthesis throw.
  assert.doesNotThrow(() => app.synth());
  const source = fs.readFileSync(path.join(__dirname, '..', '..', 'lib', 'highlights-stack.ts'), 'utf8');
  const acknowledgements = [...source.matchAll(/ack\([^,]+,\s*[^,]+,\s*([^)]*)\)/g)];
  assert.ok(acknowledgements.length >= 10);
  for (const [, reason] of acknowledgements) assert.ok(reason.trim().length > 0, 'every acknowledgement has a reason');
});

test('Kinesis streams: on-demand by default, provisioned on request, encrypted', () => {
  template.resourceCountIs('AWS::Kinesis::Stream', 2);
  for (const name of ['chat-messages', 'stream-lifecycle']) {
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      Name: name,
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
    });
  }
  const provisioned = synth({ kinesisShards: 4 }).template;
  provisioned.hasResourceProperties('AWS::Kinesis::Stream', { Name: 'chat-messages', ShardCount: 4, StreamModeDetails: { StreamMode: 'PROVISIONED' } });
});

test('DynamoDB tables: on-demand, point-in-time recovery, TTL, the highlights stream', () => {
  for (const name of ['detector-state', 'channel-settings']) {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      KeySchema: [{ AttributeName: 'broadcaster_id', KeyType: 'HASH' }],
    });
  }
  template.hasResourceProperties('AWS::DynamoDB::Table', {
    TableName: 'highlights',
    BillingMode: 'PAY_PER_REQUEST',
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
    StreamSpecification: { StreamViewType: 'NEW_IMAGE' },
    KeySchema: [
      { AttributeName: 'broadcaster_id', KeyType: 'HASH' },
      { AttributeName: 'peak_at', KeyType: 'RANGE' },
    ],
  });
});

test('every function runs on provided.al2023 from its zip, on the architecture the zips were built for', () => {
  const functions = resourcesOf('AWS::Lambda::Function').filter(([, r]) => r.Properties.Runtime === 'provided.al2023');
  assert.equal(functions.length, FUNCTIONS.length);
  for (const [, f] of functions) {
    assert.deepEqual(f.Properties.Architectures, ['arm64']);
    assert.equal(f.Properties.Handler, 'bootstrap');
  }
  const x86Assets = placeholderAssets('x86_64');
  for (const requested of [undefined, 'x86_64'] as const) {
    const x86 = synth({ lambdaAssetDir: x86Assets, lambdaArchitecture: requested }).template;
    const architectures = Object.values(x86.findResources('AWS::Lambda::Function'))
      .filter((r) => r.Properties.Runtime === 'provided.al2023')
      .map((r) => r.Properties.Architectures[0]);
    assert.deepEqual(architectures, FUNCTIONS.map(() => 'x86_64'));
  }
});

test('the stack refuses zips of another architecture, and zips without a build record', () => {
  assert.throws(
    () => synth({ lambdaAssetDir: placeholderAssets('x86_64'), lambdaArchitecture: 'arm64' }),
    /built for x86_64, but the deployment asks for arm64: rebuild them \(scripts\/build-lambdas --arm64\)/,
  );
  assert.throws(() => synth({ lambdaArchitecture: 'x86_64' }), /built for arm64, but the deployment asks for x86_64/);
  const unrecorded = placeholderAssets();
  fs.rmSync(path.join(unrecorded, BUILD_RECORD));
  assert.throws(() => synth({ lambdaAssetDir: unrecorded }), /build\.json is missing: build the functions with scripts\/build-lambdas/);
  const partial = placeholderAssets();
  fs.writeFileSync(path.join(partial, BUILD_RECORD), JSON.stringify({ architecture: 'arm64', functions: ['detector'] }));
  assert.throws(() => synth({ lambdaAssetDir: partial }), /lists no build of lifecycle, clipper, announcer, api, migrate/);
});

test('event-source mappings: partial batch responses, bisect, retries bounded by record age only, a DLQ each', () => {
  const mapping = (fn: keyof HighlightsStack['functions'], queue: string, extra: object) =>
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: ref(stack.functions[fn]),
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      // No attempt limit (CloudFormation's default, -1): a dependency outage shorter than the
      // record age delays records and dead-letters none (docs/reliability.md, chaos suite).
      MaximumRetryAttempts: Match.absent(),
      MaximumRecordAgeInSeconds: Match.anyValue(),
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp(queue), 'Arn'] } } },
      ...extra,
    });
  mapping('detector', 'DetectorDlq', { ParallelizationFactor: 1, MaximumRecordAgeInSeconds: 3600, MaximumBatchingWindowInSeconds: 1 });
  synth({ detectorBatchingWindowSeconds: 5 }).template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { ParallelizationFactor: 1, MaximumBatchingWindowInSeconds: 5 });
  // By default the state is carried in a 60 s tumbling window and written once per window...
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { ParallelizationFactor: 1, TumblingWindowInSeconds: 60, FunctionResponseTypes: ['ReportBatchItemFailures'] });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ DETECTOR_MODE: 'v2', DETECTOR_STATE_IN_WINDOW: '1' }) },
  });
  // ...and with 0, written every invocation.
  const perInvocation = synth({ detectorStateWindowSeconds: 0 }).template;
  perInvocation.hasResourceProperties('AWS::Lambda::EventSourceMapping', { MaximumBatchingWindowInSeconds: 1, TumblingWindowInSeconds: Match.absent() });
  perInvocation.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ DETECTOR_MODE: 'v2', DETECTOR_STATE_IN_WINDOW: Match.absent() }) },
  });
  for (const bad of [-1, 901, 1.5]) {
    assert.throws(() => synth({ detectorStateWindowSeconds: bad }), /detectorStateWindowSeconds/, `${bad}`);
  }
  mapping('lifecycle', 'LifecycleDlq', { ParallelizationFactor: 1 });
  mapping('clipper', 'ClipperDlq', {
    MaximumRecordAgeInSeconds: 600,
    FilterCriteria: { Filters: [{ Pattern: JSON.stringify({ eventName: ['INSERT'] }) }] },
  });
  // The announcer's mapping keeps order (no bisect) and a bounded number of retries: see its own test.
  template.resourceCountIs('AWS::Lambda::EventSourceMapping', 4);
});

/** The roles (logical ids) whose policies allow `action` on `resource`. */
function rolesAllowed(action: string, resource: object, of: Template = template): string[] {
  const roles: string[] = [];
  for (const [, policy] of Object.entries(of.findResources('AWS::IAM::Policy'))) {
    const statements = policy.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[];
    const allows = statements.some((s) => {
      const actions = ([] as string[]).concat(s.Action);
      const resources = ([] as unknown[]).concat(s.Resource);
      return actions.includes(action) && resources.some((r) => JSON.stringify(r) === JSON.stringify(resource));
    });
    if (allows) roles.push(...(policy.Properties.Roles as { Ref: string }[]).map((r) => r.Ref));
  }
  return roles.sort();
}

const roleOf = (fn: keyof HighlightsStack['functions']) =>
  stack.getLogicalId(stack.functions[fn].role!.node.defaultChild as cdk.CfnElement);
const taskRole = () => stack.getLogicalId(stack.ingester.taskDefinition.taskRole.node.defaultChild as cdk.CfnElement);

test('only the clipper and the ingester may read or write the Twitch user token', () => {
  const secret = stack.node.findChild('TwitchUserToken');
  const expected = [roleOf('clipper'), taskRole()].sort();
  assert.deepEqual(rolesAllowed('secretsmanager:GetSecretValue', ref(secret)), expected);
  assert.deepEqual(rolesAllowed('secretsmanager:PutSecretValue', ref(secret)), expected);
});

test('the detector cannot touch the database; the database is private and behind a TLS proxy', () => {
  const detector = resourcesOf('AWS::Lambda::Function').find(([id]) => id === stack.getLogicalId(stack.functions.detector.node.defaultChild as cdk.CfnElement))!;
  assert.equal(detector[1].Properties.VpcConfig, undefined, 'the detector is not in the VPC');
  assert.equal(detector[1].Properties.Environment.Variables.DATABASE_SECRET_ARN, undefined);
  const databaseSecret = (stack.node.findChild('Database') as rds.DatabaseInstance).secret!;
  const readers = rolesAllowed('secretsmanager:GetSecretValue', stack.resolve(databaseSecret.secretArn));
  assert.ok(!readers.includes(roleOf('detector')));
  const proxyRole = readers.find((id) => id.startsWith('DatabaseProxyIAMRole'));
  assert.ok(proxyRole, 'RDS Proxy reads the credentials');
  assert.deepEqual(readers.filter((id) => id !== proxyRole), [roleOf('migrate')], 'only the migration step reads the master secret');
  template.hasResourceProperties('AWS::RDS::DBInstance', { Engine: 'postgres', StorageEncrypted: true, PubliclyAccessible: false, DeletionProtection: true });
  template.hasResourceProperties('AWS::RDS::DBProxy', { RequireTLS: true, EngineFamily: 'POSTGRESQL' });
  // Detector writes detections to its tables only.
  assert.deepEqual(rolesAllowed('dynamodb:PutItem', arnOf(stack.node.findChild('Highlights'))), [roleOf('clipper'), roleOf('detector')].sort());
  // It reads the channels' own settings and nothing may write them but operators.
  const channelSettings = arnOf(stack.node.findChild('ChannelSettings'));
  assert.deepEqual(rolesAllowed('dynamodb:BatchGetItem', channelSettings), [roleOf('detector')]);
  assert.deepEqual(rolesAllowed('dynamodb:PutItem', channelSettings), []);
  assert.equal(detector[1].Properties.Environment.Variables.CHANNEL_SETTINGS_TABLE.Ref, stack.getLogicalId(stack.node.findChild('ChannelSettings').node.defaultChild as cdk.CfnElement));
});

test('each component connects as its own database user, whose secret only it, the proxy and the migration step read', () => {
  const proxies = resourcesOf('AWS::RDS::DBProxy');
  assert.equal(proxies.length, 1);
  const registered = (proxies[0][1].Properties.Auth as { SecretArn: unknown }[]).map((a) => JSON.stringify(a.SecretArn));
  const functionEnv = (fn: keyof HighlightsStack['functions']) =>
    resourcesOf('AWS::Lambda::Function').find(([id]) => id === stack.getLogicalId(stack.functions[fn].node.defaultChild as cdk.CfnElement))![1]
      .Properties.Environment.Variables;
  const ingesterEnv = ingesterEnvOf(template);
  const users: [string, string, object][] = [
    ['api', roleOf('api'), functionEnv('api')],
    ['clipper', roleOf('clipper'), functionEnv('clipper')],
    ['lifecycle', roleOf('lifecycle'), functionEnv('lifecycle')],
    ['ingester', taskRole(), ingesterEnv],
  ];
  for (const [component, role, env] of users) {
    const secret = stack.node.findChild(`DatabaseUser${component.charAt(0).toUpperCase()}${component.slice(1)}`) as cdk.aws_secretsmanager.Secret;
    const arn = ref(secret);
    assert.deepEqual((env as Record<string, unknown>).DATABASE_SECRET_ARN, arn, `${component} connects as its own user`);
    assert.ok(registered.includes(JSON.stringify(arn)), `${component}'s user is registered with RDS Proxy`);
    const readers = rolesAllowed('secretsmanager:GetSecretValue', arn);
    const proxyRole = readers.find((id) => id.startsWith('DatabaseProxyIAMRole'));
    assert.ok(proxyRole, `RDS Proxy reads ${component}'s secret`);
    assert.deepEqual(readers.filter((id) => id !== proxyRole), [role, roleOf('migrate')].sort(), component);
  }
  template.hasResourceProperties('AWS::SecretsManager::Secret', {
    Name: 'twitch-highlights/database-user-api',
    GenerateSecretString: Match.objectLike({ SecretStringTemplate: JSON.stringify({ username: 'highlights_api' }), GenerateStringKey: 'password' }),
  });
  // The migration step finds every user's secret under the names it was built with.
  assert.deepEqual(functionEnv('migrate').DATABASE_API_SECRET_ID, 'twitch-highlights/database-user-api');
});

test('the clipper runs its confirm sweep every 10 minutes', () => {
  template.hasResourceProperties('AWS::Events::Rule', {
    ScheduleExpression: 'rate(10 minutes)',
    Targets: [Match.objectLike({ Arn: arnOf(stack.functions.clipper) })],
  });
});

test('migrations run on deploy through a custom resource', () => {
  template.hasResourceProperties('AWS::CloudFormation::CustomResource', { ServiceToken: Match.anyValue(), code: Match.anyValue() });
  template.hasResourceProperties('AWS::Lambda::Function', {
    FunctionName: Match.absent(),
    Environment: { Variables: Match.objectLike({ DATABASE_HOST: Match.anyValue(), DATABASE_SECRET_ARN: Match.anyValue() }) },
  });
});

test('the ingester: one Fargate task, health check, stop timeout longer than its drain, logs', () => {
  template.hasResourceProperties('AWS::ECS::Service', {
    DesiredCount: 1,
    LaunchType: 'FARGATE',
    NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }) },
  });
  // Nothing may connect to the ingester from outside.
  for (const [, group] of resourcesOf('AWS::EC2::SecurityGroup')) {
    for (const rule of group.Properties.SecurityGroupIngress ?? []) assert.notEqual(rule.CidrIp, '0.0.0.0/0');
  }
  template.hasResourceProperties('AWS::ECS::TaskDefinition', {
    ContainerDefinitions: [
      Match.objectLike({
        StopTimeout: 30,
        HealthCheck: Match.objectLike({ Command: ['CMD', '/usr/local/bin/ingest-fargate', '--health-check'] }),
        LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
      }),
    ],
  });
  const container = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0].Properties.ContainerDefinitions[0];
  const environment = Object.fromEntries(container.Environment.map((e: { Name: string; Value: string }) => [e.Name, e.Value]));
  assert.equal(environment.INGEST_DRAIN_SECONDS, '20');
  assert.ok(container.StopTimeout > Number(environment.INGEST_DRAIN_SECONDS));
  assert.equal(environment.INGEST_CHANNELS, 'alpha,beta');
});

test('the API: HTTP API throttled, CORS for the site only; the site private behind CloudFront', () => {
  template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
    ProtocolType: 'HTTP',
    CorsConfiguration: { AllowOrigins: [{ 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [Match.anyValue(), 'DomainName'] }]] }], AllowMethods: ['GET'] },
  });
  template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    DefaultRouteSettings: { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 },
    AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
  });
  for (const [, bucket] of resourcesOf('AWS::S3::Bucket')) {
    assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
    });
  }
  template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
  template.hasResourceProperties('Custom::CDKBucketDeployment', { DestinationBucketName: Match.anyValue() });
  const api = resourcesOf('AWS::Lambda::Function').find(([id]) => id === stack.getLogicalId(stack.functions.api.node.defaultChild as cdk.CfnElement))!;
  assert.ok(api[1].Properties.Environment.Variables.SITE_ORIGIN, 'the api knows the site origin');
});

/**
 * Evaluates an alarm's metric math on sample values, as CloudWatch would for one period: the
 * expression language used here is IF, FILL(x, 0), arithmetic and comparisons. `samples` maps
 * "metric_name" or "metric_name/Reason" to the period's value; a metric without a sample has no
 * data. Returns whether the alarm would be in ALARM.
 */
function alarmFires(description: string, samples: Record<string, number>): boolean {
  const [, alarm] = resourcesOf('AWS::CloudWatch::Alarm').find(([, a]) => a.Properties.AlarmDescription === description)!;
  const { Metrics: metrics, Threshold: threshold, ComparisonOperator: operator } = alarm.Properties;
  const values: Record<string, number | undefined> = {};
  let expression = '';
  for (const m of metrics) {
    if (m.Expression) {
      expression = m.Expression;
      continue;
    }
    const metric = m.MetricStat.Metric;
    const reason = (metric.Dimensions as { Name: string; Value: string }[]).find((d) => d.Name === 'Reason')?.Value;
    values[m.Id] = samples[reason ? `${metric.MetricName}/${reason}` : metric.MetricName];
  }
  const js = expression.replace(/FILL\((\w+),\s*0\)/g, '($1 ?? 0)');
  const names = Object.keys(values);
  const value = new Function('IF', ...names, `return ${js};`)((c: unknown, a: number, b: number) => (c ? a : b), ...names.map((n) => values[n]));
  assert.equal(typeof value, 'number', `${expression} gave ${value}`);
  return operator === 'GreaterThanThreshold' ? value > threshold : operator === 'LessThanThreshold' ? value < threshold : assert.fail(operator);
}

test('the clip failure alarm fires for failures of ours, including before any attempt, and not for channels that refuse clips', () => {
  const alarm = 'more than half of the highlights end without a clip for a reason of ours (Twitch errors, the token)';
  // Twitch answers 5xx for good: every highlight fails after several attempts.
  assert.ok(alarmFires(alarm, { clips_created: 0, clip_create_attempts: 9, clip_failures: 3, 'clip_failures/server_error': 3 }));
  // The refresh succeeds but the new token is refused too.
  assert.ok(alarmFires(alarm, { clip_create_attempts: 4, clip_failures: 2, 'clip_failures/unauthorized': 2 }));
  // The token cannot be refreshed at all: no attempt is made.
  assert.ok(alarmFires(alarm, { clip_create_attempts: 0, clip_failures: 5, 'clip_failures/unauthorized': 5 }));
  // Unknown outcomes that could not be resolved.
  assert.ok(alarmFires(alarm, { clips_created: 1, clip_failures: 2, 'clip_failures/outcome_unknown': 2 }));
  // Healthy: clips made or adopted; channels that are offline or restrict clips are not our failure.
  assert.ok(!alarmFires(alarm, { clips_created: 8, clips_reconciled: 1, clip_failures: 3, 'clip_failures/not_live': 2, 'clip_failures/clipping_restricted': 1 }));
  assert.ok(!alarmFires(alarm, { clips_created: 3, clip_failures: 1, 'clip_failures/server_error': 1 }));
  // No highlights at all.
  assert.ok(!alarmFires(alarm, {}));
});

test('alarms for iterator age, dead letters, errors, clip failures, dropped chat and a not-ready ingester, mailed', () => {
  const descriptions = resourcesOf('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties.AlarmDescription as string);
  for (const expected of [
    'detector: records wait more than a minute',
    'clipper: records were dead-lettered',
    'announcer: records were dead-lettered',
    'api: invocations fail',
    'more than half of the highlights end without a clip for a reason of ours (Twitch errors, the token)',
    'the ingester is not connected to chat or Kinesis, or not running',
    'the ingester dropped chat: its buffer hit the memory cap (Kinesis throttled or unreachable for long)',
  ]) {
    assert.ok(descriptions.includes(expected), `missing alarm: ${expected}`);
  }
  assert.equal(descriptions.length, 4 + 5 + 4 + 3);
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmDescription: 'the ingester is not connected to chat or Kinesis, or not running', TreatMissingData: 'breaching' });
  template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  assert.equal(synth().template.findResources('AWS::SNS::Subscription') && Object.keys(synth().template.findResources('AWS::SNS::Subscription')).length, 0);
});

test('the announcer runs outside the VPC on confirmed clips, dead-letters what fails, and reads only its secret', () => {
  const resources = template.toJSON().Resources;
  const id = stack.getLogicalId(stack.functions.announcer.node.defaultChild as cdk.CfnElement);
  const props = resources[id].Properties;
  assert.equal(props.VpcConfig, undefined, 'no VPC: no NAT needed');
  assert.ok(props.Environment.Variables.ANNOUNCE_SECRET_ARN, 'the webhook secret');
  const mappings = Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).filter(
    (m: any) => m.Properties.FunctionName.Ref === id,
  ) as any[];
  assert.equal(mappings.length, 1);
  const mapping = mappings[0].Properties;
  const filter = JSON.parse(mapping.FilterCriteria.Filters[0].Pattern);
  assert.deepEqual(filter, {
    eventName: ['MODIFY'],
    dynamodb: { NewImage: { status: { S: ['stored'] }, confirmed: { BOOL: [true] } } },
  });
  assert.ok(mapping.DestinationConfig.OnFailure.Destination, 'failures are dead-lettered');
  assert.equal(mapping.BisectBatchOnError, undefined, 'order kept: no bisecting');
  assert.deepEqual(mapping.FunctionResponseTypes, ['ReportBatchItemFailures']);
});

test("the operator's title blocklist reaches the clipper", () => {
  const blocklistOf = (s: HighlightsStack) => {
    const id = s.getLogicalId(s.functions.clipper.node.defaultChild as cdk.CfnElement);
    return Template.fromStack(s).toJSON().Resources[id].Properties.Environment.Variables.TITLE_BLOCKLIST;
  };
  assert.equal(blocklistOf(stack), '');
  assert.equal(blocklistOf(synth({ titleBlocklist: ['spoiler', 'other term'] }).stack), 'spoiler,other term');
});

test('the detector runs v2 unless the deployment asks for the seed detector', () => {
  const modeOf = (s: HighlightsStack) => {
    const t = Template.fromStack(s);
    const id = s.getLogicalId(s.functions.detector.node.defaultChild as cdk.CfnElement);
    return t.toJSON().Resources[id].Properties.Environment.Variables.DETECTOR_MODE;
  };
  assert.equal(modeOf(stack), 'v2');
  assert.equal(modeOf(synth({ detectorMode: 'seed' }).stack), 'seed');
});

test('every process declares only the essential metrics, and those are all the alarms and the dashboard read', () => {
  for (const [, f] of resourcesOf('AWS::Lambda::Function').filter(([id]) => Object.values(stack.functions).some((fn) => stack.getLogicalId(fn.node.defaultChild as cdk.CfnElement) === id))) {
    assert.equal(f.Properties.Environment.Variables.METRICS, 'essential');
  }
  assert.equal(ingesterEnvOf(template).METRICS, 'essential');
  const essential: string[] = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'config', 'metrics.json'), 'utf8')).essential;
  const read = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (value && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      if (o.Namespace === 'TwitchHighlights' && typeof o.MetricName === 'string') read.add(o.MetricName);
      Object.values(o).forEach(walk);
    }
  };
  resourcesOf('AWS::CloudWatch::Alarm').forEach(([, alarm]) => walk(alarm.Properties));
  for (const [, dashboard] of resourcesOf('AWS::CloudWatch::Dashboard')) {
    for (const [, name] of JSON.stringify(dashboard.Properties).matchAll(/TwitchHighlights\\",\\"(\w+)/g)) read.add(name);
  }
  assert.ok(read.size >= 6, [...read].join());
  for (const name of read) assert.ok(essential.includes(name), `${name} is read by an alarm or the dashboard: add it to config/metrics.json`);
  const all = synth({ metrics: 'all' }).template.toJSON().Resources;
  const env = (Object.values(all) as { Type: string; Properties: any }[]).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.DETECTOR_MODE);
  assert.equal(env?.Properties.Environment.Variables.METRICS, 'all');
});

describe('the starter profile', () => {
  const starter = synth({ profile: 'starter' });
  const t = starter.template;
  const s = starter.stack;
  const starterResources = (type: string) => Object.entries(t.findResources(type));
  const fnId = (fn: keyof HighlightsStack['functions']) => s.getLogicalId(s.functions[fn].node.defaultChild as cdk.CfnElement);
  const functionProps = (fn: keyof HighlightsStack['functions']) => t.toJSON().Resources[fnId(fn)].Properties;

  test('is cdk-nag clean', () => {
    const { app } = synth({ profile: 'starter' }, true);
    assert.doesNotThrow(() => app.synth());
  });

  test('has no NAT gateway, no RDS Proxy, no private subnets, and no function in the VPC', () => {
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.resourceCountIs('AWS::RDS::DBProxy', 0);
    for (const [, subnet] of starterResources('AWS::EC2::Subnet')) assert.equal(subnet.Properties.MapPublicIpOnLaunch, true);
    for (const fn of Object.keys(s.functions) as (keyof HighlightsStack['functions'])[]) {
      assert.equal(functionProps(fn).VpcConfig, undefined, `${fn} runs outside the VPC`);
    }
  });

  test('the database: public endpoint, TLS and SCRAM only; its clients require channel binding', () => {
    t.hasResourceProperties('AWS::RDS::DBInstance', { PubliclyAccessible: true, StorageEncrypted: true, DeletionProtection: true });
    t.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Parameters: { 'rds.force_ssl': '1', password_encryption: 'scram-sha-256', 'rds.accepted_password_auth_method': 'scram' },
    });
    for (const fn of ['api', 'clipper', 'lifecycle', 'migrate'] as const) {
      const env = functionProps(fn).Environment.Variables;
      assert.deepEqual(env.DATABASE_HOST, { 'Fn::GetAtt': [s.getLogicalId(s.node.findChild('Database').node.defaultChild as cdk.CfnElement), 'Endpoint.Address'] }, fn);
      assert.equal(env.DATABASE_CHANNEL_BINDING, 'require', fn);
    }
    assert.equal(ingesterEnvOf(t).DATABASE_CHANNEL_BINDING, 'require', 'the ingester too');
    // Only PostgreSQL is open to the world.
    const open = starterResources('AWS::EC2::SecurityGroupIngress')
      .map(([, r]) => r.Properties)
      .concat(starterResources('AWS::EC2::SecurityGroup').flatMap(([, g]) => g.Properties.SecurityGroupIngress ?? []))
      .filter((rule) => rule.CidrIp === '0.0.0.0/0' || rule.CidrIpv6 === '::/0');
    assert.equal(open.length, 1, JSON.stringify(open));
    assert.match(JSON.stringify(open[0].FromPort), /5432|Endpoint\.Port/, 'PostgreSQL');
  });

  test('one provisioned shard carries chat and lifecycle events; both functions read it', () => {
    t.resourceCountIs('AWS::Kinesis::Stream', 1);
    t.hasResourceProperties('AWS::Kinesis::Stream', { Name: 'chat-messages', ShardCount: 1, StreamModeDetails: { StreamMode: 'PROVISIONED' } });
    const chat = s.getLogicalId(s.node.findChild('ChatMessages').node.defaultChild as cdk.CfnElement);
    for (const fn of ['detector', 'lifecycle'] as const) {
      t.hasResourceProperties('AWS::Lambda::EventSourceMapping', { FunctionName: { Ref: fnId(fn) }, EventSourceArn: { 'Fn::GetAtt': [chat, 'Arn'] }, ParallelizationFactor: 1 });
    }
    const env = ingesterEnvOf(t);
    assert.deepEqual(env.LIFECYCLE_STREAM_NAME, env.CHAT_STREAM_NAME, 'the ingester writes lifecycle events to the chat stream');
    assert.deepEqual(functionProps('lifecycle').Environment.Variables.LIFECYCLE_STREAM_NAME, functionProps('lifecycle').Environment.Variables.CHAT_STREAM_NAME);
  });

  test('the ingester: a quarter vCPU, half a GB, a buffer that fits, no Container Insights', () => {
    t.hasResourceProperties('AWS::ECS::TaskDefinition', { Cpu: '256', Memory: '512' });
    assert.equal(ingesterEnvOf(t).INGEST_MAX_BUFFER_MB, '128');
    t.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'disabled' }] });
  });

  test('each component still connects as its own user, whose secret only it and the migration step read', () => {
    const databaseSecret = (s.node.findChild('Database') as rds.DatabaseInstance).secret!;
    const role = (fn: keyof HighlightsStack['functions']) => s.getLogicalId(s.functions[fn].role!.node.defaultChild as cdk.CfnElement);
    const readers = (arn: object) => rolesAllowed('secretsmanager:GetSecretValue', arn, t);
    assert.deepEqual(readers(s.resolve(databaseSecret.secretArn)), [role('migrate')]);
    for (const fn of ['api', 'clipper', 'lifecycle'] as const) {
      const secret = s.node.findChild(`DatabaseUser${fn.charAt(0).toUpperCase()}${fn.slice(1)}`) as cdk.aws_secretsmanager.Secret;
      assert.deepEqual(readers({ Ref: s.getLogicalId(secret.node.defaultChild as cdk.CfnElement) }), [role(fn), role('migrate')].sort(), fn);
    }
  });

  test('a profile that does not exist stops the synth', () => {
    assert.throws(() => synth({ profile: 'tiny' as never }), /profile must be starter or standard/);
  });
});
