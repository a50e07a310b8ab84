-- The chat curve of a clip's moment: messages per second up to the second the detector reported
-- it, oldest first (at most 30); NULL for clips stored before curves existed. And the VOD the
-- clip was cut from (Get Clips' video_id, with vod_offset), so the API can link to the moment in
-- the recording.
ALTER TABLE clips ADD COLUMN curve integer[], ADD COLUMN video_id text;
