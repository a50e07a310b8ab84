-- One clip per highlight: a highlight is (broadcaster_id, detected_at). Rows that already break
-- that (two Twitch clips made for one moment) are merged first: the confirmed row is kept, else
-- the earliest; the others move to clips_merged_away with the clip id they were merged into, so
-- nothing is lost and an operator can still find (and delete on Twitch) the extra clips.
CREATE TABLE clips_merged_away (LIKE clips);
ALTER TABLE clips_merged_away ADD COLUMN merged_into TEXT NOT NULL;
ALTER TABLE clips_merged_away ADD COLUMN merged_at TIMESTAMPTZ NOT NULL DEFAULT now();

WITH ranked AS (
    SELECT id, first_value(clip_id) OVER highlight AS keeper,
           row_number() OVER highlight AS rank
    FROM clips
    WINDOW highlight AS (PARTITION BY broadcaster_id, detected_at ORDER BY confirmed DESC, created_at, id)
), moved AS (
    DELETE FROM clips USING ranked
    WHERE clips.id = ranked.id AND ranked.rank > 1
    RETURNING clips.*, ranked.keeper
)
INSERT INTO clips_merged_away SELECT moved.*, now() FROM moved;

DO $$
DECLARE merged bigint;
BEGIN
    SELECT count(*) INTO merged FROM clips_merged_away;
    IF merged > 0 THEN
        RAISE WARNING 'one clip per highlight: % extra clip rows moved to clips_merged_away', merged;
    END IF;
END $$;

ALTER TABLE clips ADD CONSTRAINT clips_one_per_highlight UNIQUE (broadcaster_id, detected_at);
