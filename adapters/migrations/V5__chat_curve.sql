-- The chat curve of a clip's moment: messages per second up to the second the detector reported
-- it, oldest first (at most 30). NULL for clips stored before curves existed.
ALTER TABLE clips ADD COLUMN curve integer[];
