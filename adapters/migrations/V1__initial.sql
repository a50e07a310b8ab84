-- Streamers we know of: monitored channels and anyone a clip was made for.
CREATE TABLE streamers (
    broadcaster_id   TEXT PRIMARY KEY,                 -- Twitch user id (decimal string)
    login            TEXT NOT NULL,
    display_name     TEXT,
    monitored        BOOLEAN NOT NULL DEFAULT FALSE,   -- the ingester joins monitored channels
    allows_clipping  BOOLEAN,                          -- NULL: unknown; FALSE after a 403 on Create Clip
    is_live          BOOLEAN NOT NULL DEFAULT FALSE,
    stream_id        TEXT,
    title            TEXT,
    game_id          TEXT,
    game_name        TEXT,
    started_at       TIMESTAMPTZ,
    first_seen_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Event time of the newest lifecycle event applied, so older events never regress the row.
    last_event_at    TIMESTAMPTZ
);

CREATE INDEX streamers_login ON streamers (lower(login));
CREATE INDEX streamers_monitored ON streamers (broadcaster_id) WHERE monitored;

-- One row per Twitch clip made from a detection.
CREATE TABLE clips (
    id             BIGSERIAL PRIMARY KEY,
    clip_id        TEXT NOT NULL UNIQUE,               -- Twitch clip id
    broadcaster_id TEXT NOT NULL,
    url            TEXT,
    embed_url      TEXT,
    thumbnail_url  TEXT,
    title          TEXT,
    duration       REAL,                               -- seconds
    vod_offset     INTEGER,                            -- seconds into the VOD, when Twitch knows it
    detected_at    TIMESTAMPTZ NOT NULL,               -- the detection's peak second
    fired_at       TIMESTAMPTZ NOT NULL,               -- when the detector reported it
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(), -- when Twitch created the clip
    intensity      DOUBLE PRECISION NOT NULL,
    message_count  INTEGER NOT NULL,
    baseline_mean  DOUBLE PRECISION NOT NULL,
    baseline_std   DOUBLE PRECISION NOT NULL,
    view_count     INTEGER,
    confirmed      BOOLEAN NOT NULL DEFAULT FALSE      -- Get Clips has returned it
);

-- The API lists newest first (keyset on detected_at, id), optionally per broadcaster, optionally
-- above an intensity threshold.
CREATE INDEX clips_newest ON clips (detected_at DESC, id DESC);
CREATE INDEX clips_by_broadcaster ON clips (broadcaster_id, detected_at DESC, id DESC);
CREATE INDEX clips_by_intensity ON clips (intensity DESC, detected_at DESC, id DESC);
CREATE INDEX clips_unconfirmed ON clips (created_at) WHERE NOT confirmed;
