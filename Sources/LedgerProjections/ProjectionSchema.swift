import GRDB

/// The projections' tables. Every table is a set of **facts keyed by the offset of the event that
/// recorded them**; nothing is ever updated in place except an allocation's or a capacity
/// interval's end. Any query "as of" a prefix of the log selects the facts at or below that
/// offset, so an answer about a past point never changes when later events arrive, and no
/// snapshot or refold is needed to go back in time.
///
/// Migrations are named and append-only: a new release adds migrations, never edits one.
enum ProjectionSchema {
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: checkpoints, anomalies, audit, registry, chargeback, slo") { db in
            try db.execute(sql: """
                CREATE TABLE checkpoints (
                    projection TEXT PRIMARY KEY,
                    next_offset INTEGER NOT NULL,   -- every event before it is applied
                    last_hash TEXT NOT NULL,        -- hash of the event at next_offset - 1 (or 64 zeros)
                    last_time INTEGER NOT NULL      -- its time, ms since the epoch
                );
                CREATE TABLE anomalies (
                    offset INTEGER NOT NULL,
                    projection TEXT NOT NULL,
                    type TEXT NOT NULL,
                    message TEXT NOT NULL,
                    PRIMARY KEY (offset, projection, message)
                ) WITHOUT ROWID;

                -- audit: postings of offsets per actor, stream, category and type, in buckets of
                -- 4096 offsets (2 bytes each, relative to the bucket), and causation links.
                CREATE TABLE audit_postings (
                    kind TEXT NOT NULL,
                    key TEXT NOT NULL,
                    bucket INTEGER NOT NULL,
                    offsets BLOB NOT NULL,
                    PRIMARY KEY (kind, key, bucket)
                ) WITHOUT ROWID;
                CREATE TABLE audit_causes (
                    cause_id BLOB NOT NULL,
                    effect_offset INTEGER NOT NULL,
                    PRIMARY KEY (cause_id, effect_offset)
                ) WITHOUT ROWID;

                -- registry (MLflow-like): models, versions, evaluations, approvals, aliases, archives, deployments.
                CREATE TABLE models (offset INTEGER PRIMARY KEY, model TEXT NOT NULL, team TEXT NOT NULL, description TEXT, actor TEXT NOT NULL, time INTEGER NOT NULL);
                CREATE INDEX models_by_name ON models (model, offset);
                CREATE TABLE model_versions (offset INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, source TEXT NOT NULL, digest TEXT NOT NULL,
                    job TEXT, datasets TEXT NOT NULL, baseline TEXT, actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX versions_by_model ON model_versions (model, version, offset);
                CREATE TABLE model_evaluations (offset INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, metrics TEXT NOT NULL,
                    passed INTEGER NOT NULL, evaluator TEXT, actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX evaluations_by_version ON model_evaluations (model, version, offset);
                CREATE TABLE model_approvals (offset INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, approver TEXT NOT NULL,
                    actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX approvals_by_version ON model_approvals (model, version, offset);
                CREATE TABLE model_aliases (offset INTEGER PRIMARY KEY, model TEXT NOT NULL, alias TEXT NOT NULL, version TEXT,
                    actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX aliases_by_model ON model_aliases (model, alias, offset);
                CREATE TABLE model_archives (offset INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX archives_by_version ON model_archives (model, version, offset);
                CREATE TABLE datasets (offset INTEGER PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL, source TEXT NOT NULL,
                    classification TEXT, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX datasets_by_name ON datasets (name, version, offset);
                CREATE TABLE deployment_events (offset INTEGER PRIMARY KEY, deployment TEXT NOT NULL, type TEXT NOT NULL, model TEXT, version TEXT,
                    team TEXT, gpu_type TEXT, weight INTEGER, detail TEXT, actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX deployment_events_by_name ON deployment_events (deployment, offset);
                CREATE INDEX deployment_events_by_model ON deployment_events (model, version, offset);
                CREATE TABLE drift_alerts (offset INTEGER PRIMARY KEY, deployment TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, feature TEXT NOT NULL,
                    value REAL NOT NULL, threshold REAL NOT NULL, severity TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX drift_by_version ON drift_alerts (model, version, offset);
                CREATE TABLE jobs (offset INTEGER PRIMARY KEY, job TEXT NOT NULL, team TEXT NOT NULL, project TEXT, gpu_type TEXT NOT NULL, gpus INTEGER NOT NULL,
                    model TEXT, datasets TEXT, time INTEGER NOT NULL);
                CREATE INDEX jobs_by_name ON jobs (job, offset);

                -- chargeback facts: capacity, prices, allocation intervals, deployments' pricing, closed days.
                CREATE TABLE capacity (offset INTEGER PRIMARY KEY, node TEXT NOT NULL, gpu_type TEXT NOT NULL, gpu_count INTEGER NOT NULL,
                    from_time INTEGER NOT NULL, removed_offset INTEGER, removed_time INTEGER);

                CREATE TABLE prices (offset INTEGER PRIMARY KEY, gpu_type TEXT NOT NULL, hourly_rate TEXT NOT NULL, currency TEXT NOT NULL,
                    effective_from INTEGER NOT NULL, time INTEGER NOT NULL);
                CREATE TABLE allocations (offset INTEGER PRIMARY KEY, job TEXT NOT NULL, node TEXT NOT NULL, gpu_type TEXT NOT NULL, gpus INTEGER NOT NULL,
                    team TEXT NOT NULL, start_time INTEGER NOT NULL, release_offset INTEGER, end_time INTEGER);
                CREATE INDEX allocations_by_end ON allocations (end_time);
                CREATE TABLE days_closed (day INTEGER PRIMARY KEY, closed_offset INTEGER NOT NULL, closed_time INTEGER NOT NULL);

                -- serving windows (SLO status, inference chargeback) and SLOs.
                CREATE TABLE serving_windows (offset INTEGER PRIMARY KEY, deployment TEXT NOT NULL, version TEXT NOT NULL, window_start INTEGER NOT NULL,
                    window_end INTEGER NOT NULL, requests INTEGER NOT NULL, errors INTEGER NOT NULL, slow INTEGER, p99_ms REAL NOT NULL, gpu_seconds REAL);
                CREATE INDEX windows_by_deployment ON serving_windows (deployment, window_end);
                CREATE TABLE slos (offset INTEGER PRIMARY KEY, slo TEXT NOT NULL, deployment TEXT NOT NULL, objective REAL NOT NULL, period_days INTEGER NOT NULL,
                    sli TEXT NOT NULL, time INTEGER NOT NULL);
                CREATE TABLE slo_alerts (offset INTEGER PRIMARY KEY, slo TEXT NOT NULL, deployment TEXT NOT NULL, severity TEXT NOT NULL, long_window TEXT NOT NULL,
                    short_window TEXT NOT NULL, alerted INTEGER NOT NULL, burn_long REAL, burn_short REAL, threshold REAL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX slo_alerts_by_slo ON slo_alerts (slo, offset);
                """)
        }
        migrator.registerMigration("v2: gate evaluations") { db in
            try db.execute(sql: """
                -- the governance gate's verdicts: one row per gate.evaluated, with the id of the
                -- promotion it judged (its causation) and the rules and evidence as JSON.
                CREATE TABLE gate_evaluations (offset INTEGER PRIMARY KEY, trigger_id TEXT, policy TEXT NOT NULL, policy_version INTEGER NOT NULL,
                    promotion TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, deployment TEXT, alias TEXT, result TEXT NOT NULL,
                    rules TEXT NOT NULL, evidence TEXT NOT NULL, actor TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL);
                CREATE INDEX gates_by_version ON gate_evaluations (model, version, offset);
                CREATE INDEX gates_by_trigger ON gate_evaluations (trigger_id, offset);
                """)
        }
        migrator.registerMigration("v3: causation links by the cause's offset") { db in
            try db.execute(sql: """
                -- effects follow their causes closely, so these rows arrive nearly in key order (the
                -- links by id above went to random places of a growing B-tree: most of a rebuild's
                -- writing). A link whose cause was not in the log before its effect stays by id.
                CREATE TABLE audit_effects (
                    cause_offset INTEGER NOT NULL,
                    effect_offset INTEGER NOT NULL,
                    PRIMARY KEY (cause_offset, effect_offset)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v4: secondary indexes deferred during a bulk build") { db in
            try db.execute(sql: """
                -- the secondary indexes a build from offset 0 dropped, to be created again (from
                -- their own SQL) when it ends; a build cut short leaves them here, and the next
                -- catch-up or open creates them.
                CREATE TABLE deferred_indexes (name TEXT PRIMARY KEY, sql TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v5: serving windows and causation links in blocks") { db in
            try db.execute(sql: """
                -- serving windows of one deployment written in one transaction, up to 512 to a row
                -- (`WindowBlock`): the offsets and windowEnds they span, whether any carries
                -- gpuSeconds, and the rows packed. A row per window was a third of a rebuild's rows.
                CREATE TABLE window_blocks (first_offset INTEGER PRIMARY KEY, last_offset INTEGER NOT NULL, deployment TEXT NOT NULL,
                    min_end INTEGER NOT NULL, max_end INTEGER NOT NULL, gpu INTEGER NOT NULL, rows BLOB NOT NULL);
                CREATE INDEX window_blocks_by_deployment ON window_blocks (deployment, max_end);
                CREATE INDEX window_blocks_by_end ON window_blocks (max_end);
                -- causation links by the cause's offset, those of one bucket of 4096 causes written
                -- in one transaction to a row (`EffectBlock`), keyed by the bucket and the smallest
                -- effect offset of the block.
                CREATE TABLE audit_effect_blocks (cause_bucket INTEGER NOT NULL, first_effect INTEGER NOT NULL, links BLOB NOT NULL,
                    PRIMARY KEY (cause_bucket, first_effect)) WITHOUT ROWID;
                """)
            // The rows of the tables they replace, packed.
            let windows = try Row.fetchAll(db, sql: "SELECT offset, deployment, version, window_start, window_end, requests, errors, slow, p99_ms, gpu_seconds FROM serving_windows ORDER BY offset").map { r in
                WindowBlock.Row(offset: r[0], deployment: r[1], version: r[2], start: r[3], end: r[4], requests: r[5], errors: r[6], slow: r[7], p99: r[8], gpuSeconds: r[9])
            }
            try WindowBlock.insert(db, windows)
            let links = try Row.fetchAll(db, sql: "SELECT cause_offset, effect_offset FROM audit_effects").map { r -> (cause: Int64, effect: Int64) in (r[0], r[1]) }
            try EffectBlock.insert(db, links)
            try db.execute(sql: """
                DROP TABLE serving_windows;
                DROP TABLE audit_effects;
                DELETE FROM deferred_indexes WHERE name = 'windows_by_deployment';
                """)
        }
        return migrator
    }

    /// Drops the projections' secondary indexes, remembering them in `deferred_indexes` (in the
    /// same transaction): while the projections are built from offset 0 nothing reads them, and
    /// building each once at the end, from sorted keys, costs a fraction of keeping it up to
    /// date row by row.
    static func deferIndexes(_ db: Database) throws {
        let indexes = try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        for row in indexes {
            let name: String = row[0]
            try db.execute(sql: "INSERT OR REPLACE INTO deferred_indexes VALUES (?, ?)", arguments: [name, row[1] as String])
            try db.execute(sql: "DROP INDEX \(name)")
        }
    }

    /// Creates the indexes ``deferIndexes(_:)`` dropped (nothing when none were).
    static func restoreIndexes(_ db: Database) throws {
        let deferred = try Row.fetchAll(db, sql: "SELECT name, sql FROM deferred_indexes ORDER BY name")
        guard !deferred.isEmpty else { return }
        // SQLite's sorter may use a second thread for the keys of each index.
        try db.execute(sql: "PRAGMA threads = 2")
        defer { try? db.execute(sql: "PRAGMA threads = 0") }
        for row in deferred {
            try db.execute(sql: row[1] as String)
            try db.execute(sql: "DELETE FROM deferred_indexes WHERE name = ?", arguments: [row[0] as String])
        }
    }

    /// The projections, each with its own checkpoint row (all advance in the same transaction).
    static let projections = ["audit", "chargeback", "registry", "slo"]

    /// Tables and the column they are ordered by, for dumps (a rebuilt projection must dump the same).
    static let tables: [(String, String)] = [
        ("checkpoints", "projection"), ("anomalies", "offset, projection, message"), ("audit_postings", "kind, key, bucket"),
        ("audit_causes", "cause_id, effect_offset"), ("audit_effect_blocks", "cause_bucket, first_effect"), ("models", "offset"), ("model_versions", "offset"), ("model_evaluations", "offset"),
        ("model_approvals", "offset"), ("model_aliases", "offset"), ("model_archives", "offset"), ("datasets", "offset"),
        ("deployment_events", "offset"), ("drift_alerts", "offset"), ("jobs", "offset"), ("capacity", "offset"), ("prices", "offset"),
        ("allocations", "offset"), ("days_closed", "day"), ("window_blocks", "first_offset"), ("slos", "offset"), ("slo_alerts", "offset"),
        ("gate_evaluations", "offset"),
    ]
}
