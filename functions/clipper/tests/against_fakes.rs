//! The clipper with its real adapters — Helix and OAuth over HTTP (a fake Twitch on
//! 127.0.0.1:0), Secrets Manager and DynamoDB (the emulator), PostgreSQL (the local stack) —
//! in real time with a shortened schedule (the exact 0/3/6 s schedule is asserted on paused time
//! in the unit tests).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use clipper_function::ClipperHandler;
use highlights_adapters::clips::{HighlightKey, PgClips};
use highlights_adapters::highlights::{DynamoHighlights, HighlightOutbox, HighlightProgress, detection_item};
use highlights_adapters::lambda_events::{DynamoRecordIn, dynamodb_event, item_json};
use highlights_adapters::postgres::Database;
use highlights_adapters::provision::{ProvisionOptions, SecretValue, provision};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::StackEnv;
use highlights_adapters::tokens::SecretsTokenSource;
use highlights_adapters::twitch::{HelixClips, TwitchOAuth, UserToken};
use highlights_core::Detection;
use highlights_core::clip_policy::ClipPolicy;
use highlights_test_support::postgres::TempPostgres;
use highlights_test_support::{CreateAnswer, FakeStream, FakeTwitch, OUR_USER_ID};

const ACCESS: &str = "at-secret-1";
const REFRESH: &str = "rt-secret-1";
const CLIENT_SECRET: &str = "client-secret-xyz";

type Handler = ClipperHandler<HelixClips, SecretsTokenSource, PgClips, DynamoHighlights>;

struct World {
    fake: FakeTwitch,
    handler: Handler,
    resources: Resources,
    secrets: aws_sdk_secretsmanager::Client,
    database: Database,
    highlights: DynamoHighlights,
    dynamodb: aws_sdk_dynamodb::Client,
}

fn fast_policy() -> ClipPolicy {
    ClipPolicy {
        attempts: [Duration::ZERO, Duration::from_millis(300), Duration::from_millis(600)],
        deadline: Duration::from_secs(1),
        confirm_window: Duration::from_secs(2),
        confirm_first_pause: Duration::from_millis(20),
        confirm_max_pause: Duration::from_millis(100),
        reconcile_window: Duration::from_secs(1),
        reconcile_first_pause: Duration::from_millis(50),
        ..ClipPolicy::default()
    }
}

async fn world(name: &str) -> World {
    world_with_database(name, None).await
}

/// `database_url`: where the clip store connects (default: a fresh database on the stack).
async fn world_with_database(name: &str, database_url: Option<String>) -> World {
    let token = format!(r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}"}}"#);
    world_with(name, database_url, token).await
}

/// A world whose token was granted `editor:manage:clips` as well (it may cut VODs).
async fn vod_world(name: &str) -> World {
    let token = format!(
        r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}","scopes":["clips:edit","editor:manage:clips"],"user_id":"{OUR_USER_ID}"}}"#
    );
    let world = world_with(name, None, token).await;
    world.fake.accept_vod_token(ACCESS);
    world
}

/// `token`: the user token secret's JSON.
async fn world_with(name: &str, database_url: Option<String>, token: String) -> World {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let sdk = highlights_adapters::aws::local(&stack.aws().unwrap()).await;
    let suffix = format!("{name}-{}", std::process::id());
    let resources = Resources::defaults().with_suffix(&suffix);
    let app = format!(r#"{{"client_id":"cid","client_secret":"{CLIENT_SECRET}"}}"#);
    let options = ProvisionOptions {
        twitch_app: Some(SecretValue::from_json(app).unwrap()),
        user_token: Some(SecretValue::from_json(token).unwrap()),
        ..ProvisionOptions::default()
    };
    provision(&sdk, &resources, &options).await.unwrap();
    let (server, _) = stack.database_url().unwrap().rsplit_once('/').unwrap();
    let database = Database::from_url(&format!("{server}/clipper_{}", suffix.replace('-', "_"))).unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    let store_database =
        database_url.map_or_else(|| database.clone(), |url| Database::from_url(&url).unwrap());

    let fake = FakeTwitch::start().await;
    fake.accept_token(ACCESS);
    let http = highlights_adapters::tls::http_client();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let highlights = DynamoHighlights::new(dynamodb.clone(), &resources.highlights_table.name);
    let handler = ClipperHandler::new(
        HelixClips::new(http.clone(), fake.helix_url(), "cid"),
        SecretsTokenSource::new(
            secrets.clone(),
            &resources.twitch_app_secret.name,
            &resources.twitch_user_token_secret.name,
            TwitchOAuth::new(http, fake.oauth_url()),
        ),
        PgClips::new(store_database.pool(2).unwrap()),
        highlights.clone(),
        fast_policy(),
    );
    World { fake, handler, resources, secrets, database, highlights, dynamodb }
}

fn detection(broadcaster_id: u64) -> Detection {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    Detection {
        broadcaster_id,
        peak_second: now - 4,
        fired_second: now,
        intensity: 7.25,
        message_count: 120,
        baseline_mean: 2.5,
        baseline_std: 1.25,
        curve: Default::default(),
        phrases: Default::default(),
    }
}

/// Writes the highlight as the detector would and returns the stream event for it.
async fn inserted(world: &World, detection: &Detection) -> DynamoEvent {
    world.highlights.record(detection).await.unwrap();
    let item = detection_item(detection, 0);
    dynamodb_event(
        "arn:aws:dynamodb:us-east-1:123456789012:table/highlights/stream/1",
        "us-east-1",
        &[DynamoRecordIn {
            event_id: "1".into(),
            event_name: "INSERT".into(),
            sequence_number: "4200".into(),
            keys: serde_json::json!({}),
            new_image: item_json(&item),
            approximate_creation_s: detection.fired_second,
        }],
    )
}

/// The user token as the secret holds it now.
async fn stored_token(world: &World) -> UserToken {
    let value = world
        .secrets
        .get_secret_value()
        .secret_id(&world.resources.twitch_user_token_secret.name)
        .send()
        .await
        .unwrap();
    serde_json::from_str(value.secret_string().unwrap()).unwrap()
}

async fn rows(world: &World) -> Vec<(String, String, bool, Option<String>)> {
    let client = world.database.connect().await.unwrap();
    client
        .query("SELECT clip_id, broadcaster_id, confirmed, thumbnail_url FROM clips ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn a_clip_created_at_once_is_stored_and_confirmed() {
    let world = world("ok").await;
    let d = detection(501);
    let (response, report) = world.handler.handle(&inserted(&world, &d).await).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.clips_created, report.create_attempts), (1, 1));
    let rows = rows(&world).await;
    assert_eq!(rows.len(), 1);
    let (clip_id, broadcaster, confirmed, thumbnail) = &rows[0];
    assert_eq!((clip_id.as_str(), broadcaster.as_str(), *confirmed), ("FakeClip1", "501", true));
    assert!(thumbnail.as_deref().is_some_and(|t| t.contains("FakeClip1")));
    let calls = world.fake.create_calls();
    assert_eq!(calls[0].broadcaster_id, "501");
    assert!(calls[0].title.as_deref().is_some_and(|t| t.contains("7.2σ") || t.contains("7.3σ")), "{calls:?}");
    let progress = world.highlights.progress(HighlightKey::of(&d)).await.unwrap().unwrap();
    assert_eq!((progress.status.as_str(), progress.clip_id.as_deref()), ("stored", Some("FakeClip1")));
}

#[tokio::test]
async fn an_editor_token_cuts_the_clip_from_the_live_stream_s_vod_at_the_moment() {
    let world = vod_world("vod").await;
    let stream = FakeStream::new("vodder", 511, "s-511", 10).recorded_to("v-511");
    let started_at_s = stream.started_at_s;
    world.fake.set_live(&[stream]);
    let d = detection(511);
    let (response, report) = world.handler.handle(&inserted(&world, &d).await).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (report.clips_created, report.create_attempts),
        (1, 1),
        "{report:?} {:?}",
        world.fake.create_calls()
    );
    let calls = world.fake.create_calls();
    let (vod_id, end_offset, editor) = calls[0].vod.clone().expect("Create Clip From VOD");
    assert_eq!((vod_id.as_str(), editor.as_str()), ("v-511", OUR_USER_ID));
    // The peak was 4 s before the highlight was made: the clip ends 5 s after it, or at the
    // call if sooner, and reaches back 5 s before the burst (the peak: no curve).
    let peak_offset = (d.peak_second - started_at_s) as u64;
    assert!((peak_offset + 4..=peak_offset + 5).contains(&end_offset), "{end_offset} vs peak {peak_offset}");
    assert_eq!(calls[0].duration, Some(10.0));
    // Stored and confirmed with the VOD's id and where the clip starts in it.
    let client = world.database.connect().await.unwrap();
    let row = client.query_one("SELECT video_id, vod_offset, confirmed FROM clips", &[]).await.unwrap();
    let (video, offset, confirmed): (Option<String>, Option<i32>, bool) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!((video.as_deref(), offset, confirmed), (Some("v-511"), Some(end_offset as i32 - 10), true));
}

#[tokio::test]
async fn a_vod_clip_twitch_refuses_is_made_from_the_live_stream_once() {
    let world = vod_world("vodrefused").await;
    world.fake.set_live(&[FakeStream::new("vodder", 512, "s-512", 10).recorded_to("v-512")]);
    world.fake.script(&[CreateAnswer::Status(400)]);
    let (_, report) = world.handler.handle(&inserted(&world, &detection(512)).await).await;
    assert_eq!((report.clips_created, report.create_attempts), (1, 2));
    let calls = world.fake.create_calls();
    assert!(calls[0].vod.is_some() && calls[1].vod.is_none(), "{calls:?}");
    assert_eq!(world.fake.clips_made().len(), 1);
    assert_eq!(rows(&world).await.len(), 1);
}

#[tokio::test]
async fn server_errors_that_made_no_clip_are_tried_again_after_the_lookups() {
    let world = world("retry").await;
    world.fake.script(&[CreateAnswer::Status(500), CreateAnswer::Status(503)]);
    let (_, report) = world.handler.handle(&inserted(&world, &detection(502)).await).await;
    assert_eq!((report.clips_created, report.create_attempts), (1, 3));
    assert_eq!((report.clips_recreated_after_unknown, report.clips_reconciled), (2, 0));
    assert_eq!(world.fake.create_calls().len(), 3);
    assert_eq!(world.fake.clips_made().len(), 1);
    assert_eq!(rows(&world).await.len(), 1);
}

#[tokio::test]
async fn a_clip_made_and_its_answer_lost_is_adopted_not_made_twice() {
    let world = world("lost").await;
    // Twitch lists a new clip only from the second lookup on.
    world.fake.list_after_lookups(2);
    let drops = [CreateAnswer::AcceptThenHang, CreateAnswer::AcceptThenReset, CreateAnswer::AcceptThen500];
    for (i, drop) in drops.into_iter().enumerate() {
        let d = detection(600 + i as u64);
        let calls_before = world.fake.create_calls().len();
        world.fake.script(&[drop]);
        let (response, report) = world.handler.handle(&inserted(&world, &d).await).await;
        assert!(response.batch_item_failures.is_empty(), "{drop:?}");
        assert_eq!(world.fake.create_calls().len() - calls_before, 1, "{drop:?}: one Create Clip");
        assert_eq!((report.clips_reconciled, report.clips_created), (1, 0), "{drop:?}");
        let progress = world.highlights.progress(HighlightKey::of(&d)).await.unwrap().unwrap();
        assert_eq!(progress.status, "stored", "{drop:?}");
    }
    // One clip made per highlight, and each highlight's row holds its clip.
    let made = world.fake.clips_made();
    let rows = rows(&world).await;
    assert_eq!(made.len(), 3);
    assert_eq!(
        rows.iter().map(|r| (r.0.clone(), r.1.clone())).collect::<Vec<_>>(),
        made,
        "rows: one per highlight, with the clip Twitch made for it"
    );
}

#[tokio::test]
async fn a_clipper_killed_during_create_clip_leaves_a_redelivery_that_adopts_the_clip() {
    let world = world("killed").await;
    let d = detection(610);
    let event = inserted(&world, &d).await;
    // The clip is made; the answer never comes; the process dies before writing anything.
    world.fake.script(&[CreateAnswer::AcceptThenHang]);
    let world = Arc::new(world);
    let first = tokio::spawn({
        let (world, event) = (world.clone(), event.clone());
        async move { world.handler.handle(&event).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while world.fake.create_calls().is_empty() {
        assert!(std::time::Instant::now() < deadline, "Create Clip was never called");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert!(rows(&world).await.is_empty(), "nothing written before the kill");

    // Lambda delivers the record again, to a fresh handler.
    let (response, report) = world.handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.fake.create_calls().len(), 1, "no second Create Clip");
    assert_eq!(report.clips_reconciled, 1);
    assert_eq!(rows(&world).await.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ["FakeClip1"]);
}

#[tokio::test]
async fn rate_limits_are_honoured_inside_the_deadline_only() {
    let world = world("ratelimit").await;
    world.fake.script(&[CreateAnswer::RateLimited { reset_in_s: 0 }]);
    let (_, report) = world.handler.handle(&inserted(&world, &detection(503)).await).await;
    assert_eq!((report.clips_created, report.create_attempts), (1, 2));

    world.fake.script(&[CreateAnswer::RateLimited { reset_in_s: 60 }]);
    let d = detection(504);
    let (_, report) = world.handler.handle(&inserted(&world, &d).await).await;
    assert_eq!(report.create_attempts, 1);
    assert_eq!(report.failures.iter().map(|f| f.as_str()).collect::<Vec<_>>(), vec!["rate_limited"]);
    let progress = world.highlights.progress(HighlightKey::of(&d)).await.unwrap().unwrap();
    assert_eq!((progress.status.as_str(), progress.reason.as_deref()), ("failed", Some("rate_limited")));
}

#[tokio::test]
async fn a_403_is_not_retried_and_marks_the_streamer() {
    let world = world("forbidden").await;
    world.fake.script(&[CreateAnswer::Status(403)]);
    let (_, report) = world.handler.handle(&inserted(&world, &detection(505)).await).await;
    assert_eq!((report.create_attempts, report.clips_created), (1, 0));
    let client = world.database.connect().await.unwrap();
    let row = client
        .query_one("SELECT allows_clipping FROM streamers WHERE broadcaster_id = '505'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<bool>>(0), Some(false));
    assert!(rows(&world).await.is_empty());
}

#[tokio::test]
async fn the_same_highlight_twice_makes_one_clip_and_one_row() {
    let world = world("twice").await;
    let event = inserted(&world, &detection(506)).await;
    world.handler.handle(&event).await;
    let (response, report) = world.handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.already_done, 1);
    assert_eq!(world.fake.create_calls().len(), 1);
    assert_eq!(rows(&world).await.len(), 1);
}

#[tokio::test]
async fn postgres_stopped_during_a_clip_then_started_stores_it_exactly_once() {
    // A server of this test's own, so that stopping it disturbs no other test.
    let server = TempPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = server.url("highlights");
    let database = Database::from_url(&url).unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    let world = world_with_database("pgstop", Some(url)).await;
    let event = inserted(&world, &detection(507)).await;

    server.stop().unwrap();
    let (response, report) = world.handler.handle(&event).await;
    assert_eq!(response.batch_item_failures.len(), 1, "reported for a retry");
    assert_eq!(report.clips_created, 1, "the clip itself was created");

    server.resume().unwrap();
    // Lambda delivers the failed record again; the remembered clip id is stored and Twitch is
    // not asked again. A connection the stop broke may fail one more delivery.
    let mut deliveries = 0;
    loop {
        deliveries += 1;
        let (response, report) = world.handler.handle(&event).await;
        assert_eq!(report.create_attempts, 0, "no second Create Clip");
        if response.batch_item_failures.is_empty() {
            break;
        }
        assert!(deliveries < 3, "still failing after the database came back");
    }
    world.handler.handle(&event).await;
    assert_eq!(world.fake.create_calls().len(), 1);
    let client = database.connect().await.unwrap();
    let stored = client.query("SELECT clip_id FROM clips", &[]).await.unwrap();
    assert_eq!(stored.len(), 1);
}

/// Collects everything the handler logs while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_writes_it_back_and_never_logs_it() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let world = world("refresh").await;
    world.fake.revoke_tokens();
    world.fake.allow_refresh(REFRESH, "at-secret-2", "rt-secret-2");
    let (_, report) = world.handler.handle(&inserted(&world, &detection(508)).await).await;
    assert_eq!((report.clips_created, report.token_refreshes), (1, 1));
    assert_eq!(world.fake.refresh_calls(), 1);
    let calls = world.fake.create_calls();
    assert_eq!(calls.iter().map(|c| c.token.as_str()).collect::<Vec<_>>(), vec![ACCESS, "at-secret-2"]);
    let stored = stored_token(&world).await;
    assert_eq!((stored.access_token.expose(), stored.refresh_token.expose()), ("at-secret-2", "rt-secret-2"));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("refreshed the Twitch user token"), "the refresh is logged: {logs}");
    for secret in [ACCESS, REFRESH, "at-secret-2", "rt-secret-2", CLIENT_SECRET] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test]
async fn a_clip_published_late_is_confirmed_by_the_sweep() {
    let world = world("sweep").await;
    world.fake.publish_after_polls(u32::MAX);
    let (_, report) = world.handler.handle(&inserted(&world, &detection(509)).await).await;
    assert_eq!((report.clips_created, report.unconfirmed), (1, 1));
    assert!(!rows(&world).await[0].2, "stored unconfirmed, not dropped");
    world.fake.publish_after_polls(0);
    let report = clipper_function::confirm_unconfirmed(
        world.handler.api(),
        world.handler.tokens(),
        world.handler.clips(),
        10,
    )
    .await
    .unwrap();
    assert_eq!((report.checked, report.confirmed), (1, 1));
    let rows = rows(&world).await;
    assert!(rows[0].2 && rows[0].3.is_some(), "{rows:?}");
}

#[tokio::test]
async fn clips_twitch_never_publishes_do_not_starve_newer_ones_and_are_given_up_after_a_day() {
    let world = world("fair-sweep").await;
    let client = world.database.connect().await.unwrap();
    // Three older clips Twitch will never publish, ahead of everything in age.
    for n in 1..=3 {
        client
            .execute(
                "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                     baseline_mean, baseline_std, created_at, next_confirm_at) \
                 VALUES ($1, '700', to_timestamp($2::bigint), to_timestamp($2::bigint), 5, 1, 1, 1, \
                         now() - interval '1 hour', now() - interval '1 hour')",
                &[&format!("Never{n}"), &(1_000_i64 + n)],
            )
            .await
            .unwrap();
    }
    world.fake.publish_after_polls(u32::MAX);
    let late = detection(701);
    let (_, report) = world.handler.handle(&inserted(&world, &late).await).await;
    assert_eq!(report.unconfirmed, 1);
    world.fake.publish_after_polls(0);
    let sweep = || {
        clipper_function::confirm_unconfirmed(
            world.handler.api(),
            world.handler.tokens(),
            world.handler.clips(),
            2,
        )
    };
    // The first sweep asks about two of the old ones; they wait their back-off, so the second
    // reaches the new clip.
    assert_eq!(
        sweep().await.unwrap(),
        clipper_function::SweepReport { checked: 2, confirmed: 0, highlights: Vec::new() }
    );
    // Through the handler, as the schedule runs it: the highlight is marked confirmed too.
    let key = highlights_adapters::clips::HighlightKey { broadcaster_id: 701, peak_second: late.peak_second };
    assert_eq!(
        world.handler.confirm_sweep(2).await.unwrap(),
        clipper_function::SweepReport { checked: 2, confirmed: 1, highlights: vec![key] }
    );
    // What the announcer is fed: the highlight item now says confirmed.
    let item = world
        .dynamodb
        .get_item()
        .table_name(&world.resources.highlights_table.name)
        .key("broadcaster_id", aws_sdk_dynamodb::types::AttributeValue::S("701".into()))
        .key("peak_at", aws_sdk_dynamodb::types::AttributeValue::N(late.peak_second.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item.get("confirmed"), Some(&aws_sdk_dynamodb::types::AttributeValue::Bool(true)), "{item:?}");
    assert_eq!(item.get("status"), Some(&aws_sdk_dynamodb::types::AttributeValue::S("stored".into())));
    let confirmed: bool = client
        .query_one("SELECT confirmed FROM clips WHERE broadcaster_id = '701'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(confirmed);
    // A day after it was made, a clip still unpublished is given up: kept, no longer asked about.
    client
        .execute("UPDATE clips SET created_at = now() - interval '25 hours', next_confirm_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(sweep().await.unwrap().checked, 0);
    let given_up: Vec<String> = client
        .query("SELECT clip_id FROM clips WHERE unpublished ORDER BY clip_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(given_up, ["Never1", "Never2", "Never3"]);
}

#[tokio::test]
async fn two_clippers_rejected_with_the_same_token_refresh_only_once() {
    // Two warm Lambda instances hold the same access token when Twitch revokes it. The first
    // refreshes (the refresh token is single-use at the fake, as it may be at Twitch); the second
    // must pick up the token the first stored instead of spending the old refresh token.
    let world = world("concurrent").await;
    world.fake.revoke_tokens();
    world.fake.allow_refresh(REFRESH, "at-secret-2", "rt-secret-2");
    let instance = || {
        SecretsTokenSource::new(
            world.secrets.clone(),
            &world.resources.twitch_app_secret.name,
            &world.resources.twitch_user_token_secret.name,
            TwitchOAuth::new(highlights_adapters::tls::http_client(), world.fake.oauth_url()),
        )
    };
    let (first, second) = (instance(), instance());
    use highlights_adapters::tokens::TokenSource as _;
    let stale_first = first.access_token().await.unwrap();
    let stale_second = second.access_token().await.unwrap();
    assert_eq!(stale_first.expose(), ACCESS);
    assert_eq!(first.refresh_after_rejection(&stale_first).await.unwrap().expose(), "at-secret-2");
    assert_eq!(second.refresh_after_rejection(&stale_second).await.unwrap().expose(), "at-secret-2");
    assert_eq!(world.fake.refresh_calls(), 1, "the second instance reused the stored token");
    assert_eq!((first.refreshes(), second.refreshes()), (1, 0));
    let stored = stored_token(&world).await;
    assert_eq!(stored.refresh_token.expose(), "rt-secret-2", "the newest refresh token is kept");
}
