-- Pub/sub (issue 14): an app's declared topics, and the outbox index realtime resume
-- reads.
--
-- A topic is declared to say whether browsers may subscribe to it (`external` = 1:
-- `GET /rt/{app}/{topic}` with a subscriber token) or not (0: internal; the same as
-- not declared). Publishing needs no declaration: functions publish to any topic name,
-- and pubsub triggers name the topic they run for.
CREATE TABLE topics (
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    external    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- `publish_durable` records its message in the outbox (`change_events`, source
-- `pubsub`, collection = the topic); a subscriber resuming with `Last-Event-ID` reads
-- the topic's messages after that id from here, as far back as retention keeps them.
CREATE INDEX change_events_pubsub ON change_events (app_id, collection, seq)
    WHERE source = 'pubsub';
