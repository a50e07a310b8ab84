-- Confirmation that finishes. Each unconfirmed clip is asked about on its own back-off (10 min,
-- doubling up to 4 h), so clips Twitch never publishes cannot starve newer ones; a clip still not
-- published a day after it was made is marked unpublished: kept, no longer asked about, and not
-- listed by the API.
ALTER TABLE clips ADD COLUMN confirm_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clips ADD COLUMN next_confirm_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE clips ADD COLUMN unpublished BOOLEAN NOT NULL DEFAULT FALSE;
DROP INDEX clips_unconfirmed;
CREATE INDEX clips_to_confirm ON clips (next_confirm_at, id) WHERE NOT confirmed AND NOT unpublished;
