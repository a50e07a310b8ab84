//! The real chat logs in ../shared/data/chat (TwitchDownloader JSON) as the IRC lines Twitch
//! sends: PRIVMSGs with the full IRCv3 tag set. Shared by the ingester's benchmarks.

use std::path::Path;

/// `count` chat lines to `#channel` (room `room_id`), cycling through the logs' messages, ten
/// per millisecond of `tmi-sent-ts`.
pub fn twitch_lines(count: usize, channel: &str, room_id: u64) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/chat");
    let mut bodies = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the chat logs live in ../shared/data/chat)", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for comment in json["comments"].as_array().into_iter().flatten() {
            bodies.push((
                comment["commenter"]["name"].as_str().unwrap_or("viewer").to_owned(),
                comment["commenter"]["_id"].as_str().unwrap_or("1").to_owned(),
                comment["_id"].as_str().unwrap_or("").to_owned(),
                // An IRC line ends at CR or LF.
                comment["message"]["body"].as_str().unwrap_or("").replace(['\r', '\n'], " "),
            ));
        }
    }
    assert!(!bodies.is_empty(), "no chat in {}", dir.display());
    (0..count)
        .map(|n| {
            let (login, user_id, id, text) = &bodies[n % bodies.len()];
            format!(
                "@badge-info=subscriber/14;badges=subscriber/12,premium/1;client-nonce=3f1b7a9c2e;color=#8A2BE2;\
                 display-name={login};emotes=;first-msg=0;flags=;id={id};mod=0;returning-chatter=0;\
                 room-id={room_id};subscriber=1;tmi-sent-ts={};turbo=0;user-id={user_id};user-type= \
                 :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}",
                1_733_000_000_000 + n as i64 / 10
            )
        })
        .collect()
}
