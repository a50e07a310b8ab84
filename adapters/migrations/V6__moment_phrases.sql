-- The phrases chat repeated most around a clip's moment, most said first (at most 3), and how many
-- voices said each (same order): what a card lists and the clip's title quotes. NULL for clips
-- stored before phrases existed.
ALTER TABLE clips ADD COLUMN phrases text[], ADD COLUMN phrase_counts integer[];
