// The workspace schema as an ordered list of migrations. `PRAGMA user_version` records how many have run;
// opening a workspace runs the missing ones in order, each in its own transaction together with the
// user_version bump, so a crash mid-migration leaves the previous version intact.
//
// Migrations are append-only: once released, a migration is never edited; a change is a new migration.

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

const RUN_STATUSES = `'queued','running','paused','completed','failed','interrupted','cancelled'`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'models, datasets with versioned examples, runs with metrics and checkpoints, settings',
    sql: `
      CREATE TABLE models (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        path        TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        config      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
        added_at    INTEGER NOT NULL
      );

      CREATE TABLE datasets (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        version     INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      );

      -- One row per change set. Undo is itself a version (kind 'undo', reverts = the undone version), so
      -- version numbers only grow and every version a run trained on can be rebuilt.
      CREATE TABLE dataset_versions (
        dataset_id  TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        version     INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        summary     TEXT NOT NULL,
        provenance  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(provenance)),
        reverts     INTEGER,
        reverted_by INTEGER,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, version)
      ) WITHOUT ROWID;

      -- The current state of every dataset. AUTOINCREMENT so that an id is never reused: undo re-inserts a
      -- deleted example under its old id.
      CREATE TABLE examples (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        dataset_id      TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        instruction     TEXT NOT NULL,
        input           TEXT NOT NULL DEFAULT '',
        output          TEXT NOT NULL,
        tags            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
        split           TEXT CHECK (split IN ('train', 'val', 'test')),
        source          TEXT NOT NULL DEFAULT '',
        source_line     INTEGER,
        content_hash    TEXT NOT NULL,
        created_version INTEGER NOT NULL,
        updated_version INTEGER NOT NULL
      );
      -- No index on content_hash: a random-keyed index doubles import time, and finding duplicates is one
      -- GROUP BY over a dataset's rows.
      CREATE INDEX examples_by_dataset ON examples(dataset_id, id);

      -- Before-images: what each version changed, enough to step back over it. before is NULL when the version
      -- inserted the example, the whole row when it deleted it, and the changed fields when it edited it.
      CREATE TABLE dataset_changes (
        id          INTEGER PRIMARY KEY,
        dataset_id  TEXT NOT NULL,
        version     INTEGER NOT NULL,
        example_id  INTEGER NOT NULL,
        before      TEXT CHECK (before IS NULL OR json_valid(before)),
        FOREIGN KEY (dataset_id, version) REFERENCES dataset_versions(dataset_id, version) ON DELETE CASCADE
      );
      CREATE INDEX dataset_changes_by_version ON dataset_changes(dataset_id, version);

      CREATE TABLE runs (
        id                   TEXT PRIMARY KEY,
        name                 TEXT NOT NULL,
        method               TEXT NOT NULL,
        recipe               TEXT NOT NULL CHECK (json_valid(recipe)),
        dataset_id           TEXT REFERENCES datasets(id) ON DELETE RESTRICT,
        dataset_version      INTEGER,
        model_id             TEXT REFERENCES models(id) ON DELETE RESTRICT,
        backend              TEXT NOT NULL,
        status               TEXT NOT NULL CHECK (status IN (${RUN_STATUSES})),
        error                TEXT,
        resume_checkpoint_id TEXT,
        created_at           INTEGER NOT NULL,
        started_at           INTEGER,
        finished_at          INTEGER,
        updated_at           INTEGER NOT NULL
      );
      CREATE INDEX runs_by_status ON runs(status);

      CREATE TABLE run_metrics (
        run_id         TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step           INTEGER NOT NULL,
        loss           REAL,
        val_loss       REAL,
        lr             REAL,
        tokens_per_sec REAL,
        memory_bytes   INTEGER,
        elapsed_ms     INTEGER,
        recorded_at    INTEGER NOT NULL,
        PRIMARY KEY (run_id, step)
      ) WITHOUT ROWID;

      CREATE TABLE checkpoints (
        id         TEXT PRIMARY KEY,
        run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step       INTEGER NOT NULL,
        path       TEXT NOT NULL,
        meta       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
        created_at INTEGER NOT NULL,
        UNIQUE (run_id, step)
      );

      CREATE TABLE settings (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL CHECK (json_valid(value)),
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'full-text search over examples (FTS5, kept in step by triggers)',
    sql: `
      CREATE VIRTUAL TABLE examples_fts USING fts5(
        instruction, input, output,
        content = 'examples', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
      );
      -- A bulk insert (an import) sets deferred = 1 inside its transaction, inserts its rows, then indexes them
      -- with one INSERT ... SELECT and resets the flag before committing: about 3x faster than a trigger per
      -- row. The flag is transactional, so a crash cannot leave it set.
      CREATE TABLE fts_sync (deferred INTEGER NOT NULL);
      INSERT INTO fts_sync (deferred) VALUES (0);
      CREATE TRIGGER examples_fts_insert AFTER INSERT ON examples WHEN (SELECT deferred FROM fts_sync) = 0 BEGIN
        INSERT INTO examples_fts (rowid, instruction, input, output)
        VALUES (new.id, new.instruction, new.input, new.output);
      END;
      CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN
        INSERT INTO examples_fts (examples_fts, rowid, instruction, input, output)
        VALUES ('delete', old.id, old.instruction, old.input, old.output);
      END;
      -- Only text edits touch the index: re-splitting or re-tagging 50K examples stays cheap.
      CREATE TRIGGER examples_fts_update AFTER UPDATE OF instruction, input, output ON examples BEGIN
        INSERT INTO examples_fts (examples_fts, rowid, instruction, input, output)
        VALUES ('delete', old.id, old.instruction, old.input, old.output);
        INSERT INTO examples_fts (rowid, instruction, input, output)
        VALUES (new.id, new.instruction, new.input, new.output);
      END;
      INSERT INTO examples_fts (examples_fts) VALUES ('rebuild');
    `,
  },
  {
    version: 3,
    description: 'evaluations with per-example outputs, side-by-side comparisons with ratings, chats',
    sql: `
      CREATE TABLE evaluations (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        run_id          TEXT REFERENCES runs(id) ON DELETE SET NULL,
        model_id        TEXT REFERENCES models(id) ON DELETE SET NULL,
        adapter_path    TEXT,
        dataset_id      TEXT REFERENCES datasets(id) ON DELETE SET NULL,
        dataset_version INTEGER,
        split           TEXT,
        config          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
        metrics         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
        status          TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
        error           TEXT,
        created_at      INTEGER NOT NULL,
        finished_at     INTEGER
      );

      -- example_id has no foreign key on purpose: an example deleted and then restored by undo keeps its id,
      -- and the prompt and reference are copied here anyway.
      CREATE TABLE evaluation_outputs (
        evaluation_id TEXT NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
        position      INTEGER NOT NULL,
        example_id    INTEGER,
        prompt        TEXT NOT NULL,
        reference     TEXT,
        output        TEXT NOT NULL,
        scores        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(scores)),
        PRIMARY KEY (evaluation_id, position)
      ) WITHOUT ROWID;

      CREATE TABLE comparisons (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        left_side  TEXT NOT NULL CHECK (json_valid(left_side)),
        right_side TEXT NOT NULL CHECK (json_valid(right_side)),
        created_at INTEGER NOT NULL
      );

      CREATE TABLE comparison_items (
        id            INTEGER PRIMARY KEY,
        comparison_id TEXT NOT NULL REFERENCES comparisons(id) ON DELETE CASCADE,
        prompt        TEXT NOT NULL,
        left_output   TEXT NOT NULL,
        right_output  TEXT NOT NULL,
        rating        TEXT CHECK (rating IN ('left', 'right', 'tie', 'both_bad')),
        note          TEXT NOT NULL DEFAULT '',
        rated_at      INTEGER,
        created_at    INTEGER NOT NULL
      );
      CREATE INDEX comparison_items_by_comparison ON comparison_items(comparison_id, id);

      CREATE TABLE chats (
        id           TEXT PRIMARY KEY,
        title        TEXT NOT NULL,
        model_id     TEXT REFERENCES models(id) ON DELETE SET NULL,
        run_id       TEXT REFERENCES runs(id) ON DELETE SET NULL,
        adapter_path TEXT,
        settings     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
      );

      CREATE TABLE messages (
        id         INTEGER PRIMARY KEY,
        chat_id    TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        role       TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content    TEXT NOT NULL,
        meta       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
        created_at INTEGER NOT NULL
      );
      CREATE INDEX messages_by_chat ON messages(chat_id, id);
    `,
  },
  {
    version: 4,
    description: 'images: content-addressed image files, one optional image and a metadata object per example',
    sql: `
      -- One row per distinct image (sha256 of its bytes); the file is images/<first 2 hex>/<sha256>.<ext> in the
      -- workspace folder. Rows are written in the same transaction as the examples that use them, after the file
      -- is durable; a row is deleted only when no example and no before-image refers to it (ImageStore.collectGarbage).
      CREATE TABLE images (
        sha256     TEXT PRIMARY KEY CHECK (length(sha256) = 64),
        format     TEXT NOT NULL CHECK (format IN ('png', 'jpeg', 'webp', 'gif')),
        width      INTEGER NOT NULL,
        height     INTEGER NOT NULL,
        bytes      INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      ALTER TABLE examples ADD COLUMN image TEXT REFERENCES images(sha256);
      -- What the source record held beyond instruction/input/output (ScienceQA's question, choices, answer, ...).
      ALTER TABLE examples ADD COLUMN meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta));
      CREATE INDEX examples_by_image ON examples(image) WHERE image IS NOT NULL;
    `,
  },
  {
    version: 5,
    description: 'comparison items keep the picture their prompt was answered with',
    sql: `
      ALTER TABLE comparison_items ADD COLUMN image TEXT REFERENCES images(sha256);
      CREATE INDEX comparison_items_by_image ON comparison_items(image) WHERE image IS NOT NULL;
    `,
  },
  {
    version: 6,
    description: "a dataset's split and picture counts from indexes (the dataset list read every row before)",
    sql: `
      CREATE INDEX examples_by_split ON examples(dataset_id, split);
      CREATE INDEX examples_with_image_by_dataset ON examples(dataset_id) WHERE image IS NOT NULL;
    `,
  },
  {
    version: 7,
    description: 'sweeps: one base recipe with varied settings, each point an ordinary run and its evaluation',
    sql: `
      -- spec: the base recipe, the split, the varied axes, the evaluation set and generation length (JSON, as
      -- the service wrote it). The points and their runs are inserted in the same transaction as the sweep.
      CREATE TABLE sweeps (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        model_id        TEXT REFERENCES models(id) ON DELETE SET NULL,
        dataset_id      TEXT REFERENCES datasets(id) ON DELETE SET NULL,
        dataset_version INTEGER NOT NULL,
        spec            TEXT NOT NULL CHECK (json_valid(spec)),
        status          TEXT NOT NULL CHECK (status IN ('running', 'completed', 'cancelled')),
        created_at      INTEGER NOT NULL,
        finished_at     INTEGER
      );

      -- One row per combination of settings. eval_suite names the evaluation suite that scores its run (the
      -- suite id of evaluations.config), recorded in the transaction that creates the suite.
      CREATE TABLE sweep_points (
        sweep_id   TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        settings   TEXT NOT NULL CHECK (json_valid(settings)),
        run_id     TEXT REFERENCES runs(id) ON DELETE SET NULL,
        eval_suite TEXT,
        PRIMARY KEY (sweep_id, position)
      ) WITHOUT ROWID;
      CREATE INDEX sweep_points_by_run ON sweep_points(run_id);
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
