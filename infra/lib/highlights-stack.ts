// The whole system in one stack: Kinesis, DynamoDB, the Lambda functions and their event-source
// mappings, RDS PostgreSQL with a migration step, the Fargate chat ingester, the HTTP API, the
// static site on S3 + CloudFront, secrets, and the dashboard and alarms. The profile
// (lib/profile.ts) decides what a deployment of its size pays for: `standard` puts the database
// behind RDS Proxy in a VPC with a NAT gateway; `starter` has no NAT gateway, no proxy and one
// stream.
//
// Names and environment variables come from config/resources.json (lib/resources.ts); the
// Lambda code from the zips `scripts/build-lambdas` makes (`lambdaAssetDir`).
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Construct } from 'constructs';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { DatabaseComponent, resources } from './resources';
import { LambdaArchitecture, lambdaArchitecture } from './lambda-build';
import { Profile, ProfileName, profileNamed } from './profile';

/** The CloudWatch namespace of the EMF metrics (adapters/src/telemetry.rs). */
export const METRICS_NAMESPACE = 'TwitchHighlights';

export interface HighlightsStackProps extends cdk.StackProps {
  /** Folder with `<function>/bootstrap.zip` for detector, lifecycle, clipper, announcer, api, migrate. */
  lambdaAssetDir: string;
  /**
   * Optional: the zips' architecture comes from `build.json` in `lambdaAssetDir` (written by
   * `scripts/build-lambdas`); a value here that differs from it stops the synth.
   */
  lambdaArchitecture?: LambdaArchitecture;
  /** What the deployment pays for (lib/profile.ts, docs/deploy.md "Profiles"); default `standard`. */
  profile?: ProfileName;
  /**
   * Shards of the chat stream (the lifecycle stream gets one); 0 for on-demand capacity. Default:
   * the profile's (standard: on-demand; starter: one shard).
   */
  kinesisShards?: number;
  /**
   * How many channels the deployment is for (default 100): above 300 the database is a
   * db.t4g.small instead of a db.t4g.micro. `npm run cost` prices a deployment for a count.
   */
  channels?: number;
  /** Where alarms are emailed (none when empty). */
  alarmEmail?: string;
  /** Channels the ingester monitors besides `streamers.monitored` (logins). */
  monitoredChannels?: string[];
  /** The ingester's image; by default built from ingest-fargate/Dockerfile at deploy. */
  ingestImage?: ecs.ContainerImage;
  /** The static site's folder (default: the repository's web/). */
  webDir?: string;
  /**
   * `essential` (default): only the metrics alarms and the dashboard read become CloudWatch
   * metrics (config/metrics.json), the rest stay in the logs; `all`: every one ($0.30 each a month).
   */
  metrics?: 'essential' | 'all';
  /** Which detector the detector function runs: `v2` (default) or `seed` (docs/detection.md). */
  detectorMode?: 'seed' | 'v2';
  /**
   * Terms clip titles must never contain, on top of the built-in list of slurs (the clipper's
   * `TITLE_BLOCKLIST`; matching ignores case, spaces and punctuation).
   */
  titleBlocklist?: string[];
  /**
   * How long Lambda gathers chat before invoking the detector (default 1 s). The detector saves
   * each channel's state once per invocation, so this divides DynamoDB writes (the main cost per
   * channel) at the price of detection latency.
   */
  detectorBatchingWindowSeconds?: number;
  /**
   * Carry the detector's state in a tumbling window of this many seconds (1–900) on its mapping
   * and write it to DynamoDB once per window instead of once per invocation
   * (docs/architecture.md, "Where the state lives between invocations"). 0: off, a write per
   * invocation. Default: the profile's (60 s).
   */
  detectorStateWindowSeconds?: number;
}

const REPOSITORY = path.join(__dirname, '..', '..', '..');

export class HighlightsStack extends cdk.Stack {
  readonly functions: Record<'detector' | 'lifecycle' | 'clipper' | 'announcer' | 'api' | 'migrate', lambda.Function>;
  readonly ingester: ecs.FargateService;
  readonly httpApi: apigw.HttpApi;
  readonly distribution: cloudfront.Distribution;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly profile: Profile;

  constructor(scope: Construct, id: string, props: HighlightsStackProps) {
    super(scope, id, props);
    const architecture =
      lambdaArchitecture(props.lambdaAssetDir, props.lambdaArchitecture) === 'x86_64' ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64;
    const profile = (this.profile = profileNamed(props.profile));
    const shards = props.kinesisShards ?? profile.defaultKinesisShards;
    if (!Number.isInteger(shards) || shards < 0) throw new Error(`kinesisShards must be a whole number, 0 for on-demand (got ${shards})`);

    // Streams and queues use AWS-managed keys (a customer key would add a KMS call per Kinesis
    // request: real money at chat rates); the alarm topic needs a customer key CloudWatch can use.
    const alarmKey = new kms.Key(this, 'AlarmTopicKey', {
      enableKeyRotation: true,
      description: 'Twitch Highlights: the alarm topic',
    });
    alarmKey.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');

    // --- Kinesis ------------------------------------------------------------------------------
    const stream = (id: string, name: string, shardCount: number) =>
      new kinesis.Stream(this, id, {
        streamName: name,
        encryption: kinesis.StreamEncryption.MANAGED,
        retentionPeriod: cdk.Duration.hours(24),
        ...(shardCount > 0 ? { streamMode: kinesis.StreamMode.PROVISIONED, shardCount } : { streamMode: kinesis.StreamMode.ON_DEMAND }),
      });
    const chatStream = stream('ChatMessages', resources.kinesis.chat_messages.name, shards);
    // A few records a minute: one shard is plenty whatever the chat needs. The starter carries
    // them on the chat stream instead (a stream's shard costs more than the rest of its Kinesis
    // bill): same partition key, so one broadcaster's events keep their order among its chat.
    const lifecycleStream = profile.lifecycleOnChatStream
      ? chatStream
      : stream('StreamLifecycle', resources.kinesis.stream_lifecycle.name, Math.min(shards, 1));

    // --- DynamoDB -----------------------------------------------------------------------------
    // One item per broadcaster: the detector's state, and each channel's own settings
    // (`highlights channel set --cloud`: read by the detector, written by operators).
    const broadcasterTable = (id: string, table: { name: string; partition_key: string }) =>
      new dynamodb.Table(this, id, {
        tableName: table.name,
        partitionKey: { name: table.partition_key, type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        removalPolicy: cdk.RemovalPolicy.RETAIN,
      });
    const detectorState = broadcasterTable('DetectorState', resources.dynamodb.detector_state);
    const channelSettings = broadcasterTable('ChannelSettings', resources.dynamodb.channel_settings);
    const highlights = new dynamodb.Table(this, 'Highlights', {
      tableName: resources.dynamodb.highlights.name,
      partitionKey: { name: resources.dynamodb.highlights.partition_key, type: dynamodb.AttributeType.STRING },
      sortKey: { name: resources.dynamodb.highlights.sort_key, type: dynamodb.AttributeType.NUMBER },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: resources.dynamodb.highlights.ttl_attribute,
      stream: dynamodb.StreamViewType.NEW_IMAGE,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    // --- Dead-letter queues (on-failure destinations of the event-source mappings) -------------
    const dlq = (id: string, name: string) =>
      new sqs.Queue(this, id, {
        queueName: name,
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: cdk.Duration.days(14),
      });
    const detectorDlq = dlq('DetectorDlq', resources.sqs.detector_dlq.name);
    const lifecycleDlq = dlq('LifecycleDlq', resources.sqs.lifecycle_dlq.name);
    const clipperDlq = dlq('ClipperDlq', resources.sqs.clipper_dlq.name);
    const announcerDlq = dlq('AnnouncerDlq', resources.sqs.announcer_dlq.name);

    // --- Secrets: filled by `highlights tokens seed`, never by the template --------------------
    const twitchApp = new secretsmanager.Secret(this, 'TwitchApp', {
      secretName: resources.secrets.twitch_app.name,
      description: 'Twitch application credentials {"client_id","client_secret"} (highlights tokens seed --store-app)',
    });
    const twitchUserToken = new secretsmanager.Secret(this, 'TwitchUserToken', {
      secretName: resources.secrets.twitch_user_token.name,
      description: 'Twitch user token with clips:edit (highlights tokens seed); refreshed by the clipper',
    });

    const announceWebhook = new secretsmanager.Secret(this, 'AnnounceWebhook', {
      description: 'Optional webhook for confirmed clips {"url","signing_key","format"} (docs/operations.md); any other value: no announcements',
    });

    // --- Network and database -----------------------------------------------------------------
    // Standard: functions that use the database run in private subnets (a NAT gateway for Twitch
    // and the AWS APIs), the database in isolated ones behind RDS Proxy. Starter: public subnets
    // only; the functions run outside the VPC and reach the database on its public endpoint.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: profile.natGateways,
      subnetConfiguration: profile.rdsProxy
        ? [
            { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
            { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
            { name: 'database', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
          ]
        : [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      flowLogs: { rejected: { trafficType: ec2.FlowLogTrafficType.REJECT } },
    });
    const engine = rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 });
    const database = new rds.DatabaseInstance(this, 'Database', {
      engine,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, (props.channels ?? 100) > 300 ? ec2.InstanceSize.SMALL : ec2.InstanceSize.MICRO),
      vpc,
      ...(profile.rdsProxy
        ? { vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } }
        : {
            vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
            publiclyAccessible: true,
            // What makes a public endpoint acceptable: TLS always, SCRAM only (no md5, no
            // cleartext), so that clients can require channel binding (adapters/src/postgres.rs).
            parameterGroup: new rds.ParameterGroup(this, 'DatabaseParameters', {
              engine,
              description: 'Twitch Highlights starter: TLS and SCRAM-SHA-256 only',
              parameters: { 'rds.force_ssl': '1', password_encryption: 'scram-sha-256', 'rds.accepted_password_auth_method': 'scram' },
            }),
          }),
      databaseName: 'highlights',
      credentials: rds.Credentials.fromGeneratedSecret('highlights'),
      storageEncrypted: true,
      allocatedStorage: 20,
      maxAllocatedStorage: 100,
      backupRetention: cdk.Duration.days(7),
      deletionProtection: true,
      cloudwatchLogsExports: ['postgresql'],
      removalPolicy: cdk.RemovalPolicy.SNAPSHOT,
    });
    const databaseSecret = database.secret!;
    // Least privilege in the database: each component logs in as its own user, a member of the
    // group role the migrations grant exactly its tables. Secrets Manager generates each
    // password; the migration step (the only reader of the master secret) creates the users
    // from these secrets, and RDS Proxy authenticates them with the same secrets.
    const databaseUsers = Object.fromEntries(
      (Object.entries(resources.database_users) as [DatabaseComponent, (typeof resources.database_users)[DatabaseComponent]][]).map(
        ([component, user]) => [
          component,
          new secretsmanager.Secret(this, `DatabaseUser${component.charAt(0).toUpperCase()}${component.slice(1)}`, {
            secretName: user.name,
            description: `PostgreSQL login user ${user.user} (member of ${user.role}) of the ${component}; created by the migration step`,
            generateSecretString: {
              secretStringTemplate: JSON.stringify({ username: user.user }),
              generateStringKey: 'password',
              excludePunctuation: true,
              passwordLength: 40,
            },
          }),
        ],
      ),
    ) as Record<DatabaseComponent, secretsmanager.Secret>;
    const proxy = profile.rdsProxy
      ? database.addProxy('Proxy', {
          secrets: [databaseSecret, ...Object.values(databaseUsers)],
          vpc,
          requireTLS: true,
        })
      : undefined;
    const databaseClients = new ec2.SecurityGroup(this, 'DatabaseClients', {
      vpc,
      description: proxy ? 'Functions and tasks that reach PostgreSQL through the proxy' : 'The chat ingester (reaches PostgreSQL on its endpoint)',
    });
    if (proxy) {
      proxy.connections.allowFrom(databaseClients, ec2.Port.tcp(5432), 'PostgreSQL from the functions and the ingester');
      database.connections.allowDefaultPortFrom(proxy, 'PostgreSQL from RDS Proxy');
    } else {
      // Functions outside a VPC come from no fixed address.
      database.connections.allowDefaultPortFromAnyIpv4('PostgreSQL (TLS, SCRAM with channel binding) from the functions outside the VPC');
    }
    /**
     * How a component reaches PostgreSQL as its own user: through the proxy (whose certificate
     * chains to Amazon's public roots), or on the instance's endpoint with channel binding.
     */
    const databaseEnv = (secret: secretsmanager.ISecret): Record<string, string> => ({
      DATABASE_SECRET_ARN: secret.secretArn,
      DATABASE_HOST: proxy ? proxy.endpoint : database.dbInstanceEndpointAddress,
      DATABASE_NAME: 'highlights',
      ...(proxy ? {} : { DATABASE_CHANNEL_BINDING: 'require' }),
    });

    // --- Lambda functions ---------------------------------------------------------------------
    const metricsDeclared = props.metrics ?? 'essential';
    if (metricsDeclared !== 'essential' && metricsDeclared !== 'all') throw new Error(`metrics must be essential or all (got ${JSON.stringify(metricsDeclared)})`);
    const names: Record<string, string> = {
      [resources.kinesis.chat_messages.env]: chatStream.streamName,
      [resources.kinesis.stream_lifecycle.env]: lifecycleStream.streamName,
      [resources.dynamodb.detector_state.env]: detectorState.tableName,
      [resources.dynamodb.channel_settings.env]: channelSettings.tableName,
      [resources.dynamodb.highlights.env]: highlights.tableName,
      [resources.secrets.twitch_app.env]: twitchApp.secretName,
      [resources.secrets.twitch_user_token.env]: twitchUserToken.secretName,
    };
    /**
     * `database`: the secret of the user the function connects as; such a function runs in the
     * VPC when the database is behind the proxy. Others run outside it (no NAT traffic).
     */
    const fn = (
      name: keyof HighlightsStack['functions'],
      extra: Partial<lambda.FunctionProps> & { database?: secretsmanager.ISecret },
    ) => {
      const { database: secret, ...rest } = extra;
      const inVpc = secret !== undefined && proxy !== undefined;
      const f = new lambda.Function(this, name.charAt(0).toUpperCase() + name.slice(1), {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(path.join(props.lambdaAssetDir, name, 'bootstrap.zip')),
        memorySize: 256,
        timeout: cdk.Duration.seconds(30),
        logGroup: new logs.LogGroup(this, `${name}Logs`, { retention: logs.RetentionDays.ONE_MONTH }),
        loggingFormat: lambda.LoggingFormat.JSON,
        ...(inVpc
          ? { vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, securityGroups: [databaseClients] }
          : {}),
        ...rest,
        environment: { RUST_LOG: 'info', METRICS: metricsDeclared, ...names, ...(secret ? databaseEnv(secret) : {}), ...(rest.environment ?? {}) },
      });
      secret?.grantRead(f);
      return f;
    };
    const stateWindowSeconds = props.detectorStateWindowSeconds ?? profile.defaultStateWindowSeconds;
    if (!Number.isInteger(stateWindowSeconds) || stateWindowSeconds < 0 || stateWindowSeconds > 900) {
      throw new Error(`detectorStateWindowSeconds must be a whole number of seconds from 0 (off) to 900 (got ${stateWindowSeconds})`);
    }
    const detector = fn('detector', {
      environment: {
        DETECTOR_MODE: props.detectorMode ?? 'v2',
        ...(stateWindowSeconds > 0 ? { DETECTOR_STATE_IN_WINDOW: '1' } : {}),
      },
    });
    const lifecycle = fn('lifecycle', { database: databaseUsers.lifecycle });
    const clipper = fn('clipper', {
      database: databaseUsers.clipper,
      timeout: cdk.Duration.seconds(90),
      environment: { TITLE_BLOCKLIST: (props.titleBlocklist ?? []).join(',') },
    });
    // Outside the VPC (no database): it reads the stream image and calls the webhook, no NAT.
    const announcer = fn('announcer', {
      timeout: cdk.Duration.seconds(60),
      environment: {
        ANNOUNCE_SECRET_ARN: announceWebhook.secretArn,
        TITLE_BLOCKLIST: (props.titleBlocklist ?? []).join(','),
      },
    });
    announceWebhook.grantRead(announcer);
    const api = fn('api', { database: databaseUsers.api, timeout: cdk.Duration.seconds(10), memorySize: 512 });
    // The migration step connects as the owner and sets up every component's login user.
    const migrate = fn('migrate', {
      database: databaseSecret,
      timeout: cdk.Duration.minutes(2),
      environment: Object.fromEntries(Object.values(resources.database_users).map((user) => [user.env, user.name])),
    });
    for (const secret of Object.values(databaseUsers)) secret.grantRead(migrate);
    this.functions = { detector, lifecycle, clipper, announcer, api, migrate };

    // Least privilege: each function gets exactly its tables, streams and secrets.
    detectorState.grantReadWriteData(detector);
    channelSettings.grantReadData(detector);
    highlights.grantWriteData(detector);
    detectorState.grantReadWriteData(lifecycle);
    highlights.grantReadWriteData(clipper);
    twitchApp.grantRead(clipper);
    twitchUserToken.grantRead(clipper);
    twitchUserToken.grantWrite(clipper);

    // Event-source mappings: a bad record never blocks a shard for long.
    const kinesisSource = (s: kinesis.IStream, queue: sqs.IQueue, windowSeconds = 1, tumblingSeconds = 0) =>
      new sources.KinesisEventSource(s, {
        ...(tumblingSeconds > 0 ? { tumblingWindow: cdk.Duration.seconds(tumblingSeconds) } : {}),
        startingPosition: lambda.StartingPosition.LATEST,
        batchSize: 500,
        maxBatchingWindow: cdk.Duration.seconds(windowSeconds),
        parallelizationFactor: 1, // order per broadcaster (partition key)
        reportBatchItemFailures: true,
        bisectBatchOnError: true,
        // No attempt limit: a dependency down for minutes (DynamoDB, the database) delays the
        // shard and loses nothing; only a record failing for an hour is dead-lettered. Poison
        // records never get here: the handlers skip what they cannot decode.
        maxRecordAge: cdk.Duration.hours(1),
        onFailure: new sources.SqsDlq(queue),
      });
    detector.addEventSource(kinesisSource(chatStream, detectorDlq, props.detectorBatchingWindowSeconds ?? 1, stateWindowSeconds));
    lifecycle.addEventSource(kinesisSource(lifecycleStream, lifecycleDlq));
    clipper.addEventSource(
      new sources.DynamoEventSource(highlights, {
        startingPosition: lambda.StartingPosition.LATEST,
        batchSize: 10,
        parallelizationFactor: 10, // clips of different broadcasters in parallel
        reportBatchItemFailures: true,
        bisectBatchOnError: true,
        // No attempt limit (see above): the database down for less than 10 minutes delays the
        // clip row and never dead-letters a highlight whose clip Twitch made.
        maxRecordAge: cdk.Duration.minutes(10),
        onFailure: new sources.SqsDlq(clipperDlq),
        filters: [lambda.FilterCriteria.filter({ eventName: lambda.FilterRule.isEqual('INSERT') })],
      }),
    );
    // The clipper stores a confirmed clip once per highlight: that modification is announced. In
    // order per shard (no bisecting); a record still failing after 5 retries is dead-lettered.
    announcer.addEventSource(
      new sources.DynamoEventSource(highlights, {
        startingPosition: lambda.StartingPosition.LATEST,
        batchSize: 10,
        reportBatchItemFailures: true,
        retryAttempts: 5,
        maxRecordAge: cdk.Duration.hours(1),
        onFailure: new sources.SqsDlq(announcerDlq),
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('MODIFY'),
            dynamodb: { NewImage: { status: { S: lambda.FilterRule.isEqual('stored') }, confirmed: { BOOL: [true] } } },
          }),
        ],
      }),
    );

    // Clips Twitch published after the clipper stopped waiting are confirmed later: the clipper,
    // invoked by this schedule, runs its confirm sweep.
    new events.Rule(this, 'ConfirmSweep', {
      description: 'Confirm clips Twitch published late (the clipper confirm sweep)',
      schedule: events.Schedule.rate(cdk.Duration.minutes(10)),
      targets: [new targets.LambdaFunction(clipper, { retryAttempts: 0 })],
    });

    // The schema is migrated on every deploy, before anything reads it.
    const migration = new cdk.CustomResource(this, 'SchemaMigration', {
      serviceToken: new cr.Provider(this, 'MigrationProvider', { onEventHandler: migrate }).serviceToken,
      // A new value on every synth of new migrations: the zip's hash is part of the asset.
      properties: { code: migrate.currentVersion.version },
    });
    migration.node.addDependency(proxy ?? database);

    // --- The chat ingester (ECS Fargate) ------------------------------------------------------
    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: profile.containerInsights ? ecs.ContainerInsights.ENABLED : ecs.ContainerInsights.DISABLED,
    });
    const task = new ecs.FargateTaskDefinition(this, 'IngestTask', {
      cpu: profile.ingesterCpu,
      memoryLimitMiB: profile.ingesterMemoryMiB,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    task.addContainer('ingest', {
      image:
        props.ingestImage ??
        ecs.ContainerImage.fromAsset(REPOSITORY, {
          file: 'ingest-fargate/Dockerfile',
          // The task runs on Graviton: build the image for arm64 whatever the deploying machine is.
          platform: ecrAssets.Platform.LINUX_ARM64,
          exclude: ['.git', 'target', '**/node_modules', '.local', '.venv', '.venv-test', 'infra/cdk.out', 'infra/dist', 'web/test-results'],
        }),
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: 'ingest',
        logGroup: new logs.LogGroup(this, 'IngestLogs', { retention: logs.RetentionDays.ONE_MONTH }),
      }),
      environment: {
        ...names,
        ...databaseEnv(databaseUsers.ingester),
        INGEST_CHANNELS: (props.monitoredChannels ?? []).join(','),
        INGEST_DRAIN_SECONDS: '20',
        INGEST_MAX_BUFFER_MB: String(profile.ingesterBufferMiB),
        INGEST_FLUSH_MS: String(profile.ingesterFlushMs),
        METRICS: metricsDeclared,
        RUST_LOG: 'info',
      },
      portMappings: [{ containerPort: 8080 }],
      healthCheck: {
        command: ['CMD', '/usr/local/bin/ingest-fargate', '--health-check'],
        interval: cdk.Duration.seconds(30),
        timeout: cdk.Duration.seconds(5),
        retries: 3,
        startPeriod: cdk.Duration.seconds(30),
      },
      stopTimeout: cdk.Duration.seconds(30), // longer than the 20 s drain
      readonlyRootFilesystem: true,
    });
    chatStream.grantWrite(task.taskRole);
    lifecycleStream.grantWrite(task.taskRole);
    twitchApp.grantRead(task.taskRole);
    twitchUserToken.grantRead(task.taskRole);
    twitchUserToken.grantWrite(task.taskRole);
    databaseUsers.ingester.grantRead(task.taskRole);
    task.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kinesis:DescribeStreamSummary'], resources: [chatStream.streamArn] }),
    );
    this.ingester = new ecs.FargateService(this, 'Ingester', {
      cluster,
      taskDefinition: task,
      desiredCount: 1,
      minHealthyPercent: 0, // one task: a deploy replaces it (the drain keeps the chat)
      maxHealthyPercent: 200,
      // A public subnet with a public address (no inbound rule allows anything in): all of
      // Twitch's chat would otherwise cross the NAT gateway at $0.045/GB.
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      assignPublicIp: true,
      securityGroups: [databaseClients],
      circuitBreaker: { rollback: true },
    });
    // Its database user exists only once the migration step has run.
    this.ingester.node.addDependency(migration);

    // --- Site and API -------------------------------------------------------------------------
    const logsBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED, // CloudFront standard logs need ACLs
      lifecycleRules: [{ expiration: cdk.Duration.days(90) }],
    });
    const siteBucket = new s3.Bucket(this, 'Site', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      serverAccessLogsBucket: logsBucket,
      serverAccessLogsPrefix: 'site-bucket/',
    });
    this.distribution = new cloudfront.Distribution(this, 'SiteDistribution', {
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(siteBucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
      },
      defaultRootObject: 'index.html',
      enableLogging: true,
      logBucket: logsBucket,
      logFilePrefix: 'cloudfront/',
    });
    const siteOrigin = `https://${this.distribution.distributionDomainName}`;
    api.addEnvironment('SITE_ORIGIN', siteOrigin);

    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', { retention: logs.RetentionDays.ONE_MONTH });
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'Twitch Highlights clips API',
      corsPreflight: { allowOrigins: [siteOrigin], allowMethods: [apigw.CorsHttpMethod.GET], maxAge: cdk.Duration.hours(1) },
      defaultIntegration: new HttpLambdaIntegration('ApiIntegration', api),
    });
    const stage = this.httpApi.defaultStage!.node.defaultChild as apigw.CfnStage;
    stage.defaultRouteSettings = { throttlingRateLimit: 200, throttlingBurstLimit: 400 };
    stage.accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        method: '$context.httpMethod',
        path: '$context.path',
        status: '$context.status',
        latencyMs: '$context.responseLatency',
      }),
    };

    new s3deploy.BucketDeployment(this, 'SiteContent', {
      destinationBucket: siteBucket,
      distribution: this.distribution,
      sources: [
        s3deploy.Source.asset(props.webDir ?? path.join(REPOSITORY, 'web'), {
          exclude: ['node_modules', 'tests', 'test-results', 'package.json', 'package-lock.json', 'config.json'],
        }),
        s3deploy.Source.jsonData('config.json', { apiBaseUrl: this.httpApi.apiEndpoint }),
      ],
    });

    // --- Dashboard and alarms -----------------------------------------------------------------
    const topic = new sns.Topic(this, 'Alarms', { masterKey: alarmKey, enforceSSL: true });
    if (props.alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string, options: Partial<cloudwatch.AlarmProps> = {}) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
        ...options,
      });
      a.addAlarmAction(new cwActions.SnsAction(topic));
      this.alarms.push(a);
      return a;
    };
    const emf = (name: string, dimensions: Record<string, string>, statistic = 'Sum', minutes = 1) =>
      new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: name, dimensionsMap: dimensions, statistic, period: cdk.Duration.minutes(minutes) });
    for (const [name, f] of Object.entries({ detector, lifecycle, clipper, announcer })) {
      alarm(`${name}IteratorAge`, f.metric('IteratorAge', { statistic: 'Maximum', period: cdk.Duration.minutes(1) }), 60_000, `${name}: records wait more than a minute`);
    }
    for (const [name, f] of Object.entries({ detector, lifecycle, clipper, announcer, api })) {
      alarm(`${name}Errors`, f.metricErrors({ period: cdk.Duration.minutes(1) }), 0, `${name}: invocations fail`);
    }
    for (const [name, q] of Object.entries({ detector: detectorDlq, lifecycle: lifecycleDlq, clipper: clipperDlq, announcer: announcerDlq })) {
      alarm(`${name}DlqDepth`, q.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(1), statistic: 'Maximum' }), 0, `${name}: records were dead-lettered`, { evaluationPeriods: 1, datapointsToAlarm: 1 });
    }
    // Per highlight, not per Create Clip attempt: a token that cannot be refreshed fails before
    // any attempt, and a persistent 5xx ends in one failure after several attempts. Failures that
    // Twitch decides for the channel (not live, clipping restricted, not clippable) are not ours.
    const clipperMetric = (name: string, reason?: string) =>
      emf(name, reason ? { Function: 'clipper', Reason: reason } : { Function: 'clipper' }, 'Sum', 5);
    const ourReasons = ['unauthorized', 'server_error', 'unreachable', 'rate_limited', 'deadline_exceeded', 'outcome_unknown'];
    const outcomes = 'FILL(created, 0) + FILL(adopted, 0) + FILL(failed, 0)';
    const ours = ourReasons.map((_, i) => `FILL(r${i}, 0)`).join(' + ');
    const clipFailureRate = new cloudwatch.MathExpression({
      expression: `IF(${outcomes} > 0, 100 * (${ours}) / (${outcomes}), 0)`,
      usingMetrics: {
        created: clipperMetric('clips_created'),
        adopted: clipperMetric('clips_reconciled'),
        failed: clipperMetric('clip_failures'),
        ...Object.fromEntries(ourReasons.map((reason, i) => [`r${i}`, clipperMetric('clip_failures', reason)])),
      },
      period: cdk.Duration.minutes(5),
      label: 'highlights without a clip, for reasons of ours (%)',
    });
    alarm('ClipFailureRate', clipFailureRate, 50, 'more than half of the highlights end without a clip for a reason of ours (Twitch errors, the token)');
    alarm('IngesterDroppedChat', emf('dropped', { Service: 'ingest-fargate' }), 0, 'the ingester dropped chat: its buffer hit the memory cap (Kinesis throttled or unreachable for long)', {
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
    });
    alarm('IngesterNotReady', emf('ready', { Service: 'ingest-fargate' }, 'Minimum'), 1, 'the ingester is not connected to chat or Kinesis, or not running', {
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
    });

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `${id}-overview` });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Ingest rate (messages/min)', left: [emf('messages_received', { Service: 'ingest-fargate' }), emf('messages_sent', { Service: 'ingest-fargate' }), emf('dropped', { Service: 'ingest-fargate' })] }),
      new cloudwatch.GraphWidget({ title: 'Iterator age (ms)', left: [detector, lifecycle, clipper].map((f) => f.metric('IteratorAge', { statistic: 'Maximum' })) }),
      new cloudwatch.GraphWidget({ title: 'Detections and clips', left: [emf('anomalies_detected', { Function: 'detector' }), emf('clips_created', { Function: 'clipper' }), emf('clip_failures', { Function: 'clipper' })] }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'API latency (ms)', left: [this.httpApi.metricLatency({ statistic: 'p50' }), this.httpApi.metricLatency({ statistic: 'p99' })] }),
      new cloudwatch.GraphWidget({ title: 'Errors', left: [...[detector, lifecycle, clipper, announcer, api].map((f) => f.metricErrors()), this.httpApi.metricServerError()] }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms }),
    );

    new cdk.CfnOutput(this, 'SiteUrl', { value: siteOrigin });
    new cdk.CfnOutput(this, 'ApiUrl', { value: this.httpApi.apiEndpoint });
    new cdk.CfnOutput(this, 'DashboardName', { value: dashboard.dashboardName });
    new cdk.CfnOutput(this, 'DatabaseSecretArn', { value: databaseSecret.secretArn });

    this.acknowledgeFindings({
      detectorDlq, lifecycleDlq, clipperDlq, announcerDlq, twitchApp, twitchUserToken, announceWebhook, database, task, siteBucket,
      databaseUsers: Object.values(databaseUsers),
    });
  }

  /** cdk-nag (AwsSolutions) findings that are deliberate, each with its reason. */
  private acknowledgeFindings(parts: {
    detectorDlq: sqs.Queue;
    lifecycleDlq: sqs.Queue;
    clipperDlq: sqs.Queue;
    announcerDlq: sqs.Queue;
    twitchApp: secretsmanager.Secret;
    twitchUserToken: secretsmanager.Secret;
    announceWebhook: secretsmanager.Secret;
    database: rds.DatabaseInstance;
    task: ecs.FargateTaskDefinition;
    siteBucket: s3.Bucket;
    databaseUsers: secretsmanager.Secret[];
  }) {
    const ack = (scope: Construct, id: string, reason: string) => cdk.Validations.of(scope).acknowledge({ id, reason });
    for (const queue of [parts.detectorDlq, parts.lifecycleDlq, parts.clipperDlq, parts.announcerDlq]) {
      ack(queue, 'AwsSolutions-SQS3', 'This queue is itself the on-failure destination (dead-letter queue) of an event-source mapping.');
    }
    for (const secret of [parts.twitchApp, parts.twitchUserToken]) {
      ack(secret, 'AwsSolutions-SMG4', 'Twitch credentials: the user token is refreshed by the clipper and ingester through Twitch OAuth and written back; Secrets Manager cannot rotate Twitch secrets.');
    }
    ack(parts.announceWebhook, 'AwsSolutions-SMG4', 'A webhook URL and signing key chosen by the operator; rotating them is changing the receiver.');
    for (const secret of parts.databaseUsers) {
      ack(secret, 'AwsSolutions-SMG4', 'A component\'s database password: rotating it means a new secret value and a redeploy (the migration step sets the password from the secret); see docs/operations.md.');
    }
    ack(parts.database, 'AwsSolutions-SMG4', 'The database password is read at start by the functions and RDS Proxy; enable rotation with addRotationSingleUser() once a rotation window is chosen.');
    ack(parts.database, 'AwsSolutions-RDS3', 'Single-AZ by default to keep small deployments cheap (see docs/deploy.md); clips are recreatable data and backups are kept 7 days.');
    if (this.profile.rdsProxy) {
      ack(parts.database, 'AwsSolutions-RDS11', 'The database is in isolated subnets and reachable only from RDS Proxy; a non-default port adds nothing there.');
    } else {
      const publicDatabase =
        'Starter profile (docs/deploy.md, "Profiles"): no NAT gateway, so the functions run outside the VPC and reach the database on its public endpoint; it accepts TLS and SCRAM-SHA-256 only, and every client requires channel binding. A port scan finds it on any port.';
      ack(parts.database, 'AwsSolutions-RDS11', publicDatabase);
      ack(parts.database, 'AwsSolutions-EC23', publicDatabase);
      ack(parts.database, 'CloudFormation-Validate::W9011', publicDatabase);
    }
    if (!this.profile.containerInsights) {
      ack(this.ingester.cluster, 'AwsSolutions::AwsSolutions-ECS4', 'Starter profile: Container Insights is billed as custom metrics; the ingester reports its own (messages, drops, readiness) and ECS keeps CPU and memory per service.');
    }
    ack(this.httpApi, 'AwsSolutions-APIG4', 'The clips API is public and read-only by design; it is throttled at the stage.');
    ack(this.distribution, 'AwsSolutions-CFR1', 'Clips are public worldwide: no geo restriction.');
    ack(this.distribution, 'AwsSolutions-CFR2', 'A static site of public clips behind CloudFront; WAF (about $5/month plus requests) is optional, see docs/deploy.md.');
    ack(this.distribution, 'AwsSolutions-CFR4', 'The default CloudFront domain and certificate; with a custom domain, set a certificate and TLS 1.2.');
    ack(parts.task, 'AwsSolutions-ECS2', 'The environment holds resource names and settings only; secrets are read from Secrets Manager at run time.');
    // cdk-nag 3 acknowledges each finding by its exact id (no rule-wide or prefix matches).
    const iam4 = "AWSLambdaBasicExecutionRole and AWSLambdaVPCAccessExecutionRole are AWS's minimal policies for logs and VPC network interfaces.";
    for (const policy of ['AWSLambdaBasicExecutionRole', 'AWSLambdaVPCAccessExecutionRole']) {
      ack(this, `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${policy}]`, iam4);
    }
    for (const f of [this.functions.clipper, this.functions.announcer]) {
      ack(f, 'AwsSolutions-IAM5[Resource::*]', 'dynamodb:ListStreams (added by the DynamoDB event source) exists only on *.');
    }
    ack(parts.task, 'AwsSolutions-IAM5[Resource::*]', 'ecr:GetAuthorizationToken (the execution role pulling the image) exists only on *.');
    const logicalId = (construct: Construct) => this.getLogicalId(construct.node.defaultChild as cdk.CfnElement);
    ack(this, `AwsSolutions-IAM5[Resource::<${logicalId(this.functions.migrate)}.Arn>:*]`, 'The migration provider may invoke any version of the migrate function, and only that function.');
    const deployment = 'The CDK-managed site deployment function copies the site into its bucket: object-level actions on that bucket and the CDK asset bucket only.';
    ack(this, `AwsSolutions-IAM5[Resource::<${logicalId(parts.siteBucket)}.Arn>/*]`, deployment);
    const region = cdk.Token.isUnresolved(this.region) ? '<AWS::Region>' : this.region;
    const account = cdk.Token.isUnresolved(this.account) ? '<AWS::AccountId>' : this.account;
    ack(this, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-${account}-${region}/*]`, deployment);
    for (const action of ['s3:Abort*', 's3:DeleteObject*', 's3:GetBucket*', 's3:GetObject*', 's3:List*']) {
      ack(this, `AwsSolutions-IAM5[Action::${action}]`, deployment);
    }
    // The deployment function is a stack-level singleton: find it by its construct id.
    const deploymentFunction = this.node.children.find((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
    if (deploymentFunction) {
      ack(deploymentFunction, 'AwsSolutions-IAM5[Resource::*]', 'The CDK-managed site deployment function invalidates the CloudFront cache (cloudfront:CreateInvalidation has no resource-level scoping there).');
    }
    ack(this, 'AwsSolutions-L1', "The CDK-managed BucketDeployment function's runtime is chosen by aws-cdk-lib; our own functions run on provided.al2023.");
  }
}
