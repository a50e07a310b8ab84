-- Least privilege: group roles (NOLOGIN) with exactly the rights each kind of user needs. Login
-- users are created per function outside the migrations (localstack/up here; the deploy step in
-- AWS), each a member of its group; only the migration runs as the owner of the tables.
-- Roles belong to the whole cluster, so they are created only when missing; the grants are per
-- database.
-- Databases migrated at the same time (tests) may race to create a role: the loser moves on.
DO $$
DECLARE
    role text;
BEGIN
    FOREACH role IN ARRAY ARRAY['highlights_reader', 'highlights_clips_writer', 'highlights_streamers_writer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

-- The API and the ingester: read clips and streamers.
GRANT USAGE ON SCHEMA public TO highlights_reader, highlights_clips_writer, highlights_streamers_writer;
GRANT SELECT ON clips, streamers TO highlights_reader;

-- The clipper: writes clips, and upserts a streamer's row when Twitch refuses its clips.
GRANT SELECT, INSERT, UPDATE ON clips TO highlights_clips_writer;
GRANT USAGE ON SEQUENCE clips_id_seq TO highlights_clips_writer;
GRANT SELECT, INSERT, UPDATE (allows_clipping) ON streamers TO highlights_clips_writer;

-- The lifecycle consumer: writes streamers.
GRANT SELECT, INSERT, UPDATE ON streamers TO highlights_streamers_writer;
