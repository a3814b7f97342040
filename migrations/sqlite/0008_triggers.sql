-- Events (issue 14): triggers, and the deliveries of events to them.
--
-- A trigger runs an app's function when something happens in the app. Kind `change`:
-- a kv, docs or files write (`source`), optionally of one collection (for files: a path
-- prefix) and some operations (`ops`, comma-separated); kind `dead-letter`: an event
-- of the app that exhausted its attempts (optionally only those of one `source`); kind
-- `cron`: a 5-field UTC `schedule`, due at `next_tick` (ms since the Unix epoch), which
-- the node that fires a tick advances in the same statement (one firing per tick in a
-- cluster).
CREATE TABLE triggers (
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    function      TEXT NOT NULL,
    source        TEXT,
    collection    TEXT,
    ops           TEXT,
    schedule      TEXT,
    next_tick     BIGINT,
    -- Attempts before an event becomes a dead letter, and the first retry's delay
    -- (doubling with each attempt, ±20 % jitter).
    max_attempts  INTEGER NOT NULL,
    backoff_ms    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- One row per event and trigger it matched: the dispatcher's work queue, its retries,
-- and its dead letters. `event` is what the function gets as `ctx.event` (JSON).
-- Deliveries of one trigger with the same `order_key` (source, collection and key of a
-- change) run one at a time in `id` order. `status`: `pending` (due at `next_at`,
-- claimed by a node until `lease_until`), `done`, `dead` (a dead letter),
-- `resolved` (a dead letter an operator or function settled), `failed` (a
-- dead-letter handler's delivery that exhausted its attempts: never dead-lettered).
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    -- The trigger; empty for a request to an async route, whose function is named in
    -- `function` (a trigger's deliveries are deleted with it).
    trigger_name  TEXT NOT NULL,
    function      TEXT,
    order_key     TEXT NOT NULL,
    event         TEXT NOT NULL,
    -- How deep in a chain of triggers the event is (see change_events.depth).
    depth         BIGINT NOT NULL DEFAULT 0,
    handles_dead_letter INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    next_at       BIGINT NOT NULL,
    lease_until   BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    -- An async route's answer once it ran (JSON: status, headers, body as base64).
    result        TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX triggers_due ON triggers (next_tick) WHERE kind = 'cron';

CREATE INDEX deliveries_due ON deliveries (next_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_in_order ON deliveries (app_id, trigger_name, order_key, id)
    WHERE status = 'pending';
CREATE INDEX deliveries_by_app ON deliveries (app_id, status, id);
CREATE INDEX deliveries_by_time ON deliveries (updated_at);

-- How deep in a chain of triggers a change event was written: 0 by an HTTP request, a
-- cron tick or an operator; d + 1 by a function a delivery of depth d ran. Events of
-- depth 8 or more are dropped (logged) instead of delivered.
ALTER TABLE change_events ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;

-- How a route runs its function: `sync` (the answer is the function's) or `async` (202
-- at once; the request is queued as a delivery and runs from there).
ALTER TABLE routes ADD COLUMN dispatch TEXT NOT NULL DEFAULT 'sync';
