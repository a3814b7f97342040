-- Realtime subscribers by end-user session (issue 15): an external topic with
-- `sessions` = 1 also lets any signed-in end user of the app subscribe with their
-- session token (`users::login`), besides tokens functions mint.
ALTER TABLE topics ADD COLUMN sessions BIGINT NOT NULL DEFAULT 0;
