//! `highlights migrate` and `highlights local ...` refuse bad input clearly and never echo a
//! database password. (Their success paths are exercised by `localstack/up` and the adapters'
//! local-stack tests.)

use std::process::Command;

fn highlights(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_highlights"));
    command.args(args).env_remove("AWS_ENDPOINT_URL").env_remove("DATABASE_URL");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn provisioning_needs_a_local_endpoint() {
    let output = highlights(&["local", "provision"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AWS_ENDPOINT_URL is not set"), "{stderr}");
}

#[test]
fn migrate_errors_never_show_the_password() {
    // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
    let url = "postgres://user:hunter2-secret@127.0.0.1:9/highlights";
    let output = highlights(&["migrate"], &[("DATABASE_URL", url)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to 127.0.0.1:9/highlights"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let help = highlights(&["migrate", "--help"], &[("DATABASE_URL", url)]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2"));
}

#[test]
fn resource_names_come_from_the_shared_file_and_the_environment() {
    let output = highlights(&["local", "names"], &[("HIGHLIGHTS_TABLE", "highlights-dev")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("export CHAT_STREAM_NAME=chat-messages\n"), "{stdout}");
    assert!(stdout.contains("export HIGHLIGHTS_TABLE=highlights-dev\n"), "{stdout}");
}
