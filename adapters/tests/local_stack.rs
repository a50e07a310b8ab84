//! Integration tests against the running local stack (AWS emulator + PostgreSQL), found through
//! `.local/stack/env`. Start it with `localstack/up`; `scripts/test` does so itself.
//!
//! Every test works on its own uniquely named resources, so tests run in parallel on one stack.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use highlights_adapters::aws;
use highlights_adapters::postgres::{Database, login_users_from_secrets};
use highlights_adapters::provision::{Outcome, ProvisionOptions, SecretValue, provision};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::{HOW_TO_START, StackEnv};
use highlights_core::{ChatBatch, ChatMessage, wire};
use highlights_test_support::postgres::TempPostgres;

fn stack() -> StackEnv {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let endpoint = stack.aws().unwrap().endpoint_url;
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        std::net::TcpStream::connect(address).is_ok(),
        "the AWS emulator at {endpoint} does not answer: {HOW_TO_START}"
    );
    stack
}

async fn sdk() -> SdkConfig {
    aws::local(&stack().aws().unwrap()).await
}

fn unique() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn provisioned(options: &ProvisionOptions) -> (SdkConfig, Resources) {
    let config = sdk().await;
    let resources = Resources::defaults().with_suffix(&unique());
    provision(&config, &resources, options).await.unwrap();
    (config, resources)
}

/// A comparable description of what exists for `resources`.
async fn describe(config: &SdkConfig, resources: &Resources) -> Vec<String> {
    let kinesis = aws_sdk_kinesis::Client::new(config);
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    let mut out = Vec::new();
    for stream in [&resources.chat_stream, &resources.lifecycle_stream] {
        let summary = kinesis.describe_stream_summary().stream_name(&stream.name).send().await.unwrap();
        let summary = summary.stream_description_summary().unwrap();
        out.push(format!(
            "kinesis {} shards={} {:?}",
            stream.name,
            summary.open_shard_count(),
            summary.stream_status()
        ));
    }
    for table in
        [&resources.detector_state_table, &resources.channel_settings_table, &resources.highlights_table]
    {
        let described = dynamodb.describe_table().table_name(&table.name).send().await.unwrap();
        let table_description = described.table().unwrap();
        let keys: Vec<String> = table_description
            .key_schema()
            .iter()
            .map(|k| format!("{}:{:?}", k.attribute_name(), k.key_type()))
            .collect();
        let stream = table_description.stream_specification().map(|s| format!("{:?}", s.stream_view_type()));
        let ttl = dynamodb.describe_time_to_live().table_name(&table.name).send().await.unwrap();
        let ttl = ttl.time_to_live_description().and_then(|d| d.attribute_name().map(str::to_owned));
        out.push(format!("dynamodb {} keys={keys:?} stream={stream:?} ttl={ttl:?}", table.name));
    }
    for queue in [&resources.detector_dlq, &resources.lifecycle_dlq, &resources.clipper_dlq] {
        let url = sqs.get_queue_url().queue_name(&queue.name).send().await.unwrap();
        out.push(format!("sqs {}", url.queue_url().unwrap_or_default().rsplit('/').next().unwrap()));
    }
    for secret in [&resources.twitch_app_secret, &resources.twitch_user_token_secret] {
        let value = secrets.get_secret_value().secret_id(&secret.name).send().await.unwrap();
        out.push(format!("secret {} = {}", secret.name, value.secret_string().unwrap_or_default()));
    }
    for user in &resources.database_users {
        // The user and the password's length only: a failing test must not print a password.
        let value = secrets.get_secret_value().secret_id(&user.secret.name).send().await.unwrap();
        let json: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
        let password = json["password"].as_str().unwrap_or_default();
        out.push(format!(
            "secret {} user={} password={} chars",
            user.secret.name,
            json["username"],
            password.len()
        ));
    }
    out
}

#[tokio::test]
async fn provisioning_twice_leaves_the_same_resources() {
    let config = sdk().await;
    let resources = Resources::defaults().with_suffix(&unique());
    let options = ProvisionOptions { shards: 2, ..ProvisionOptions::default() };
    let first = provision(&config, &resources, &options).await.unwrap();
    assert_eq!(first.len(), 15);
    assert!(first.iter().all(|p| p.outcome == Outcome::Created), "{first:?}");
    let before = describe(&config, &resources).await;
    let second = provision(&config, &resources, &options).await.unwrap();
    assert!(second.iter().all(|p| p.outcome == Outcome::Existed), "{second:?}");
    assert_eq!(describe(&config, &resources).await, before);
    assert!(before.iter().any(|d| d.contains("shards=Some(2)") || d.contains("shards=2")), "{before:?}");
    assert!(
        before.iter().any(|d| d.contains("keys=[\"broadcaster_id:Hash\", \"peak_at:Range\"]")
            && d.contains("NewImage")
            && d.contains("expires_at")),
        "{before:?}"
    );
    assert!(before.iter().any(|d| d.ends_with(" = {}")), "secrets start empty: {before:?}");
    assert!(
        before
            .iter()
            .any(|d| d.contains("database-user-api")
                && d.contains("user=\"highlights_api\" password=48 chars")),
        "each component's database user gets a generated password: {before:?}"
    );
}

#[tokio::test]
async fn kinesis_round_trip_keeps_per_partition_key_order() {
    let (config, resources) =
        provisioned(&ProvisionOptions { shards: 2, ..ProvisionOptions::default() }).await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = &resources.chat_stream.name;
    let broadcasters = [1001u64, 1002, 1003];
    for round in 0..4i64 {
        let entries = broadcasters
            .iter()
            .map(|&id| {
                let batch = ChatBatch {
                    broadcaster_id: id,
                    watermark_ms: round * 1000 + 999,
                    messages: vec![ChatMessage::new(round * 1000, format!("round {round}"))],
                };
                PutRecordsRequestEntry::builder()
                    .partition_key(id.to_string())
                    .data(Blob::new(wire::encode(&batch)))
                    .build()
                    .unwrap()
            })
            .collect();
        let put = kinesis.put_records().stream_name(stream).set_records(Some(entries)).send().await.unwrap();
        assert_eq!(put.failed_record_count(), Some(0));
    }
    let shards = kinesis.list_shards().stream_name(stream).send().await.unwrap();
    let mut seen: Vec<(u64, i64)> = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let records = kinesis.get_records().shard_iterator(current).send().await.unwrap();
            if records.records().is_empty() {
                break;
            }
            for record in records.records() {
                let batch = wire::decode(record.data().as_ref()).unwrap();
                assert_eq!(record.partition_key(), Some(batch.broadcaster_id.to_string().as_str()));
                seen.push((batch.broadcaster_id, batch.watermark_ms));
            }
            iterator = records.next_shard_iterator().map(str::to_owned);
        }
    }
    assert_eq!(seen.len(), 12);
    for id in broadcasters {
        let order: Vec<i64> = seen.iter().filter(|(b, _)| *b == id).map(|(_, w)| *w).collect();
        assert_eq!(order, vec![999, 1999, 2999, 3999], "broadcaster {id}");
    }
}

#[tokio::test]
async fn dynamodb_conditional_put_is_rejected_when_its_condition_fails() {
    let (config, resources) = provisioned(&ProvisionOptions::default()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let put = || {
        dynamodb
            .put_item()
            .table_name(&resources.highlights_table.name)
            .item("broadcaster_id", AttributeValue::S("42".into()))
            .item("peak_at", AttributeValue::N("1700000404".into()))
            .condition_expression("attribute_not_exists(broadcaster_id)")
            .send()
    };
    put().await.unwrap();
    let error = put().await.unwrap_err();
    assert!(error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()), "{error:?}");
}

#[tokio::test]
async fn the_highlights_stream_delivers_an_inserted_item() {
    let (config, resources) = provisioned(&ProvisionOptions::default()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let table = &resources.highlights_table.name;
    dynamodb
        .put_item()
        .table_name(table)
        .item("broadcaster_id", AttributeValue::S("7".into()))
        .item("peak_at", AttributeValue::N("1700000100".into()))
        .item("intensity", AttributeValue::N("6.5".into()))
        .send()
        .await
        .unwrap();
    let arn = dynamodb.describe_table().table_name(table).send().await.unwrap();
    let arn = arn.table().and_then(|t| t.latest_stream_arn()).expect("the table has a stream").to_owned();
    let described = streams.describe_stream().stream_arn(&arn).send().await.unwrap();
    let shard = described.stream_description().unwrap().shards()[0].shard_id().unwrap().to_owned();
    let mut iterator = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .map(str::to_owned);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let current = iterator.expect("the shard stays open");
        let records = streams.get_records().shard_iterator(current).send().await.unwrap();
        if let Some(record) = records.records().first() {
            break record.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no stream record within 10 s");
        iterator = records.next_shard_iterator().map(str::to_owned);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record.event_name().map(|e| e.as_str()), Some("INSERT"));
    let image = record.dynamodb().and_then(|d| d.new_image()).expect("a NEW_IMAGE");
    assert_eq!(
        image.get("intensity"),
        Some(&aws_sdk_dynamodbstreams::types::AttributeValue::N("6.5".into()))
    );
}

#[tokio::test]
async fn secrets_are_created_from_files_and_read_back() {
    let token = r#"{"access_token":"at-1","refresh_token":"rt-1"}"#;
    let options = ProvisionOptions {
        user_token: Some(SecretValue::from_json(token.into()).unwrap()),
        ..ProvisionOptions::default()
    };
    let (config, resources) = provisioned(&options).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let read = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_secret_value()
                .secret_id(name)
                .send()
                .await
                .unwrap()
                .secret_string()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(read(resources.twitch_user_token_secret.name.clone()).await, token);
    assert_eq!(read(resources.twitch_app_secret.name.clone()).await, "{}");
    // Provisioning again with new contents replaces them.
    let newer = r#"{"access_token":"at-2","refresh_token":"rt-2"}"#;
    let options = ProvisionOptions {
        user_token: Some(SecretValue::from_json(newer.into()).unwrap()),
        ..ProvisionOptions::default()
    };
    let report = provision(&config, &resources, &options).await.unwrap();
    let token_outcome = report.iter().find(|p| p.name == resources.twitch_user_token_secret.name).unwrap();
    assert_eq!(token_outcome.outcome, Outcome::Updated);
    assert_eq!(read(resources.twitch_user_token_secret.name.clone()).await, newer);
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_then_do_nothing() {
    let stack = stack();
    let base = stack.database_url().unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    let name = format!("migrate_{}", unique().replace('-', "_"));
    let database = Database::from_url(&format!("{server}/{name}")).unwrap();
    assert!(database.create_if_missing().await.unwrap());
    assert!(!database.create_if_missing().await.unwrap());
    assert_eq!(
        database.migrate().await.unwrap(),
        vec![
            "V1__initial".to_owned(),
            "V2__one_clip_per_highlight".to_owned(),
            "V3__confirmation_that_finishes".to_owned(),
            "V4__roles".to_owned(),
            "V5__moment_curve_and_vod".to_owned(),
            "V6__moment_phrases".to_owned()
        ]
    );
    assert!(database.migrate().await.unwrap().is_empty());
    let client = database.connect().await.unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(tables.contains(&"clips".to_owned()) && tables.contains(&"streamers".to_owned()), "{tables:?}");
    let unique_clip_id = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'clips' AND indexdef LIKE '%UNIQUE%(clip_id)%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(unique_clip_id.get::<_, i64>(0), 1);
    drop(client);
    let admin = Database::from_url(&format!("{server}/postgres")).unwrap().connect().await.unwrap();
    admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await.unwrap();
}

#[tokio::test]
async fn sslmode_decides_whether_tls_is_required() {
    // The local server has no TLS: `prefer` (the default) falls back to plain TCP, `require`
    // refuses to go on without TLS.
    let url = stack().database_url().unwrap().to_owned();
    let plain = Database::from_url(&url).unwrap();
    plain.connect().await.unwrap().query_one("SELECT 1", &[]).await.unwrap();
    let required = Database::from_url(&format!("{url}?sslmode=require")).unwrap();
    let Err(error) = required.connect().await else {
        panic!("connected without TLS despite sslmode=require")
    };
    let error = error.to_string();
    assert!(error.contains("TLS") || error.contains("SSL") || error.contains("ssl"), "{error}");
}

#[tokio::test]
async fn one_clip_per_highlight_merges_the_rows_that_break_it_and_keeps_them_aside() {
    let stack = stack();
    let base = stack.database_url().unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    let name = format!("merge_{}", unique().replace('-', "_"));
    let database = Database::from_url(&format!("{server}/{name}")).unwrap();
    database.create_if_missing().await.unwrap();
    assert_eq!(database.migrate_to(1).await.unwrap(), vec!["V1__initial".to_owned()]);
    let client = database.connect().await.unwrap();
    // Three clips of one highlight (the confirmed one is kept), and one of another highlight.
    client
        .batch_execute(
            "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                 baseline_mean, baseline_std, confirmed, created_at) VALUES \
             ('A', '1', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1, false, to_timestamp(1)), \
             ('B', '1', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1, true, to_timestamp(2)), \
             ('C', '1', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1, false, to_timestamp(0)), \
             ('D', '2', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1, false, to_timestamp(0))",
        )
        .await
        .unwrap();
    assert_eq!(database.migrate_to(2).await.unwrap(), vec!["V2__one_clip_per_highlight".to_owned()]);
    let pairs =
        |sql: &'static str| {
            let client = &client;
            async move {
                client.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect::<Vec<(
                    String,
                    String,
                )>>(
                )
            }
        };
    assert_eq!(
        pairs("SELECT clip_id, broadcaster_id FROM clips ORDER BY 1").await,
        [("B".to_owned(), "1".to_owned()), ("D".to_owned(), "2".to_owned())]
    );
    assert_eq!(
        pairs("SELECT clip_id, merged_into FROM clips_merged_away ORDER BY 1").await,
        [("A".to_owned(), "B".to_owned()), ("C".to_owned(), "B".to_owned())]
    );
    let second = client
        .execute(
            "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                 baseline_mean, baseline_std) VALUES ('E', '2', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1)",
            &[],
        )
        .await;
    assert!(second.is_err(), "a second clip for one highlight is refused");
    drop(client);
    let admin = Database::from_url(&format!("{server}/postgres")).unwrap().connect().await.unwrap();
    admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await.unwrap();
}

#[tokio::test]
async fn each_group_role_may_do_only_its_part() {
    let stack = stack();
    let base = stack.database_url().unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    let name = format!("roles_{}", unique().replace('-', "_"));
    let database = Database::from_url(&format!("{server}/{name}")).unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    let client = database.connect().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                 baseline_mean, baseline_std) VALUES ('A', '1', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1); \
             INSERT INTO streamers (broadcaster_id, login) VALUES ('1', 'one')",
        )
        .await
        .unwrap();
    let insert_clip = "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                           baseline_mean, baseline_std) VALUES ('B', '1', to_timestamp(200), to_timestamp(201), 5, 1, 1, 1)";
    let allowed = |role: &'static str, sql: &'static str| {
        let client = &client;
        async move {
            // As the role, inside a transaction that is rolled back.
            client.batch_execute(&format!("BEGIN; SET LOCAL ROLE {role}")).await.unwrap();
            let result = client.batch_execute(sql).await;
            client.batch_execute("ROLLBACK").await.unwrap();
            result.map_err(|e| e.as_db_error().map(|d| d.code().code().to_owned()).unwrap_or_default())
        }
    };
    let denied = Err("42501".to_owned());
    // The API's role reads, and cannot write anything.
    assert_eq!(allowed("highlights_reader", "SELECT count(*) FROM clips, streamers").await, Ok(()));
    assert_eq!(allowed("highlights_reader", insert_clip).await, denied);
    assert_eq!(allowed("highlights_reader", "UPDATE streamers SET monitored = TRUE").await, denied);
    assert_eq!(allowed("highlights_reader", "DELETE FROM clips").await, denied);
    // The clipper writes clips, and only a streamer's allows_clipping.
    assert_eq!(allowed("highlights_clips_writer", insert_clip).await, Ok(()));
    assert_eq!(
        allowed("highlights_clips_writer", "UPDATE streamers SET allows_clipping = FALSE").await,
        Ok(())
    );
    assert_eq!(allowed("highlights_clips_writer", "UPDATE streamers SET monitored = TRUE").await, denied);
    assert_eq!(allowed("highlights_clips_writer", "DELETE FROM clips").await, denied);
    // The lifecycle consumer writes streamers, never clips.
    assert_eq!(allowed("highlights_streamers_writer", "UPDATE streamers SET is_live = TRUE").await, Ok(()));
    assert_eq!(allowed("highlights_streamers_writer", insert_clip).await, denied);
    drop(client);
    let admin = Database::from_url(&format!("{server}/postgres")).unwrap().connect().await.unwrap();
    admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await.unwrap();
}

/// The deploy's least-privilege set-up, end to end: secrets from provisioning (the emulator), the
/// login users from them, on a server that checks passwords (SCRAM) as RDS does.
#[tokio::test]
async fn each_component_logs_in_as_its_own_user_with_the_password_in_its_secret() {
    let server = TempPostgres::start_with_passwords().unwrap_or_else(|e| panic!("{e}"));
    let owner = Database::from_url(&server.url("highlights")).unwrap();
    owner.create_if_missing().await.unwrap();
    owner.migrate().await.unwrap();
    let (config, resources) = provisioned(&ProvisionOptions::default()).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let users = login_users_from_secrets(&secrets, &resources).await.unwrap();
    assert_eq!(users.len(), 4);
    owner.ensure_login_users(&users).await.unwrap();
    owner.ensure_login_users(&users).await.unwrap(); // a redeploy changes nothing

    let secret_of = |component: &str| resources.database_user(component).unwrap().secret.name.clone();
    let password_of = |component: &'static str| {
        let secrets = &secrets;
        let id = secret_of(component);
        async move {
            let value = secrets.get_secret_value().secret_id(id).send().await.unwrap();
            let json: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
            json["password"].as_str().unwrap().to_owned()
        }
    };
    let connect_as = |component: &'static str, password: String| {
        let user = resources.database_user(component).unwrap().user.clone();
        let url = server.url("highlights").replacen("highlights@", &format!("{user}:{password}@"), 1);
        async move { Database::from_url(&url).unwrap().connect().await }
    };
    fn code(error: tokio_postgres::Error) -> Option<String> {
        error.as_db_error().map(|e| e.code().code().to_owned())
    }
    async fn run(client: &tokio_postgres::Client, sql: &str) -> Result<(), Option<String>> {
        client.batch_execute(sql).await.map_err(code)
    }
    let denied = Err(Some("42501".to_owned()));
    let insert_clip = "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                           baseline_mean, baseline_std) VALUES ('C1', '1', to_timestamp(100), to_timestamp(101), 5, 1, 1, 1)";

    // Passwords are stored as SCRAM verifiers, never in clear.
    let stored = owner.connect().await.unwrap();
    let verifiers = stored
        .query("SELECT rolpassword FROM pg_authid WHERE rolname LIKE 'highlights\\_%' AND rolcanlogin", &[])
        .await
        .unwrap();
    assert_eq!(verifiers.len(), 4);
    assert!(verifiers.iter().all(|row| row.get::<_, String>(0).starts_with("SCRAM-SHA-256$")));

    // A wrong password is refused, and the error does not show it.
    let wrong = connect_as("api", "not-the-password".into()).await.unwrap_err();
    assert!(!wrong.to_string().contains("not-the-password"), "{wrong}");
    match wrong {
        highlights_adapters::postgres::DbError::Connect { source, .. } => {
            assert_eq!(code(source), Some("28P01".into()))
        }
        other => panic!("{other}"),
    }

    let clipper = connect_as("clipper", password_of("clipper").await).await.unwrap();
    assert_eq!(run(&clipper, insert_clip).await, Ok(()));
    assert_eq!(
        run(&clipper, "INSERT INTO streamers (broadcaster_id, login) VALUES ('1', 'one')").await,
        Ok(())
    );
    assert_eq!(run(&clipper, "DELETE FROM clips").await, denied);
    let api = connect_as("api", password_of("api").await).await.unwrap();
    assert_eq!(run(&api, "SELECT count(*) FROM clips, streamers").await, Ok(()));
    assert_eq!(run(&api, insert_clip).await, denied);
    let ingester = connect_as("ingester", password_of("ingester").await).await.unwrap();
    assert_eq!(run(&ingester, "SELECT login FROM streamers").await, Ok(()));
    assert_eq!(run(&ingester, "UPDATE streamers SET monitored = TRUE").await, denied);
    let lifecycle = connect_as("lifecycle", password_of("lifecycle").await).await.unwrap();
    assert_eq!(run(&lifecycle, "UPDATE streamers SET is_live = TRUE").await, Ok(()));
    assert_eq!(run(&lifecycle, insert_clip).await, denied);

    // A new secret value is a rotation: after the next migration step, only it works.
    let old = password_of("api").await;
    let rotated = format!("{old}-rotated");
    secrets
        .put_secret_value()
        .secret_id(secret_of("api"))
        .secret_string(serde_json::json!({"username": "highlights_api", "password": rotated}).to_string())
        .send()
        .await
        .unwrap();
    owner.ensure_login_users(&login_users_from_secrets(&secrets, &resources).await.unwrap()).await.unwrap();
    assert!(connect_as("api", old).await.is_err());
    assert!(connect_as("api", rotated).await.is_ok());

    // A secret cannot make its component another user.
    secrets
        .put_secret_value()
        .secret_id(secret_of("api"))
        .secret_string(r#"{"username": "highlights_clipper", "password": "pw-elsewhere"}"#)
        .send()
        .await
        .unwrap();
    let error = login_users_from_secrets(&secrets, &resources).await.unwrap_err().to_string();
    assert!(error.contains(&secret_of("api")) && error.contains("expected \"highlights_api\""), "{error}");
    assert!(!error.contains("pw-elsewhere"), "{error}");
}
