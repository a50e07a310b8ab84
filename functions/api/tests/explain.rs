//! The list queries at a million clips (the local stack's PostgreSQL): the page of every filter
//! combination is served by an index, never by a sequential scan of `clips`.

use std::path::Path;

use api_function::list_statement;
use highlights_adapters::postgres::Database;
use highlights_adapters::sample_clips::SampleClips;
use highlights_adapters::stack_env::StackEnv;

#[tokio::test]
async fn page_queries_use_indexes_at_a_million_clips() {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let (server, _) = stack.database_url().unwrap().rsplit_once('/').unwrap();
    let database = Database::from_url(&format!("{server}/api_explain_{}", std::process::id())).unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    let client = database.connect().await.unwrap();
    client.batch_execute("TRUNCATE clips").await.unwrap();
    let sample = SampleClips { count: 1_000_000, channels: 1000, first_detected_unix: 1_700_000_000 };
    assert_eq!(sample.insert(&client).await.unwrap(), 1_000_000);
    let cursor = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1700500000000000:500000")
    };
    for raw in [
        None,
        Some("limit=100".to_owned()),
        Some("streamer=sample_42".to_owned()),
        Some(format!("broadcaster_id={}", sample.broadcaster_of(42))),
        Some("min_intensity=13.5".to_owned()),
        Some("since=2023-11-25T08%3A00%3A00Z&until=2023-11-25T22%3A00%3A00Z".to_owned()),
        Some(format!("cursor={cursor}")),
        Some(format!("broadcaster_id={}&cursor={cursor}", sample.broadcaster_of(7))),
    ] {
        let statement = list_statement(raw.as_deref()).unwrap();
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {}", statement.sql), &statement.param_refs())
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan on clips"), "{raw:?} scans the table:\n{plan}");
        assert!(plan.contains("Index"), "{raw:?} uses no index:\n{plan}");
    }
    drop(client);
    let admin = Database::from_url(&format!("{server}/postgres")).unwrap().connect().await.unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE \"api_explain_{}\" WITH (FORCE)", std::process::id()))
        .await
        .unwrap();
}
