//! What the SQL stores share (features `postgres` and `sqlite`): table
//! names, the guard plan of a save, reading rows back into a [`Record`],
//! and the error policy.
//!
//! # Layout
//!
//! Three tables, named after one base name (default `typed_sessions`):
//!
//! | table | primary key | columns |
//! |---|---|---|
//! | `<base>` | `key` | `created_at`, `last_seen`, `expires_at` (ms since the Unix epoch), `counter` |
//! | `<base>_namespaces` | `key, ns` | `version`, `revision` |
//! | `<base>_fields` | `key, ns, field` | `value` (the codec's bytes) |
//!
//! `key` is the 32-byte SHA-256 of the session id, never the id itself.
//! One row per stored field is what makes a write field-level: changing
//! one field of a 16 KB session rewrites that field's row and the two
//! small rows above it, not the session. `counter` is the record's
//! revision counter: every save moves it, so a save that read the record
//! can tell, in the statement that writes, whether anything else wrote
//! meanwhile. Expired rows never load (`expires_at > now` is in every
//! read) and are removed in batches by `delete_expired()`.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use super::{
    Changeset, NamespaceChange, NamespaceOp, NamespaceRecord, Record, StoreError, guard_holds,
};
use crate::data::FieldMap;
use crate::error::ConfigError;

#[cfg(feature = "postgres")]
pub(super) mod postgres;
#[cfg(feature = "sqlite")]
pub(super) mod sqlite;

/// The default base name of the tables.
pub(super) const DEFAULT_TABLE: &str = "typed_sessions";
/// How long a store operation may take by default.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Expired records removed per statement by `delete_expired()`.
pub(super) const EXPIRY_BATCH: i64 = 1_000;
/// How often a save re-reads the record when another write landed between
/// its read and its write, before it answers "unavailable".
pub(super) const SAVE_ATTEMPTS: usize = 16;

/// The quoted, qualified names of the three tables and the deadline index.
#[derive(Debug, Clone)]
pub(super) struct Tables {
    pub(super) sessions: String,
    pub(super) namespaces: String,
    pub(super) fields: String,
    /// The index name, unqualified (`CREATE INDEX` names it in the table's schema).
    pub(super) deadline_index: String,
    /// The quoted schema, when one was given.
    pub(super) schema: Option<String>,
}

impl Tables {
    /// Checks and quotes `schema` and `table`.
    pub(super) fn new(schema: Option<&str>, table: &str) -> Result<Self, ConfigError> {
        if let Some(schema) = schema {
            check_identifier(schema, 63)?;
            // PostgreSQL reserves `pg_…` schemas; `information_schema` is
            // the catalog's.
            let lower = schema.to_ascii_lowercase();
            if lower.starts_with("pg_") || lower == "information_schema" {
                return Err(ConfigError::InvalidSqlName(schema.to_owned()));
            }
        }
        // The longest derived name (`…_namespaces`) must fit PostgreSQL's
        // 63-byte identifiers.
        check_identifier(table, 63 - "_namespaces".len())?;
        let qualify = |name: &str| match schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        };
        Ok(Self {
            sessions: qualify(table),
            namespaces: qualify(&format!("{table}_namespaces")),
            fields: qualify(&format!("{table}_fields")),
            deadline_index: format!("\"{table}_expires_at\""),
            schema: schema.map(|s| format!("\"{s}\"")),
        })
    }
}

/// Names are spliced into statements, so only plain identifiers pass:
/// ASCII letters, digits and `_`, not starting with a digit, at most `max`
/// bytes.
fn check_identifier(name: &str, max: usize) -> Result<(), ConfigError> {
    let plain = !name.is_empty()
        && name.len() <= max
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(ConfigError::InvalidSqlName(name.to_owned()))
    }
}

/// What a save writes, once its guards held against the stored namespaces.
#[derive(Debug)]
pub(super) struct Plan<'c> {
    /// The new revisions, in the changeset's order (0 for a removal).
    pub(super) revisions: Vec<u64>,
    /// The record's counter after the save (moved even by a removal only).
    pub(super) counter: u64,
    /// No namespace is left: the record is deleted.
    pub(super) empty: bool,
    /// Namespaces removed.
    pub(super) removed: Vec<&'c str>,
    /// Namespaces replaced: their fields not written by this save go.
    pub(super) replaced: Vec<&'c str>,
    /// Namespace rows to write: name, version, revision.
    pub(super) namespaces: Vec<(&'c str, i64, i64)>,
    /// Field rows to write: namespace, field, value.
    pub(super) fields: Vec<(&'c str, &'c str, &'c [u8])>,
}

/// Checks every guard of `changes` against `stored` (namespace, version,
/// revision) and plans the writes; the conflicting namespace otherwise.
pub(super) fn plan<'c>(
    stored: &[(String, u32, u64)],
    counter: u64,
    changes: &'c Changeset,
) -> Result<Plan<'c>, &'static str> {
    let records: Vec<NamespaceRecord> = stored
        .iter()
        .map(|(name, version, revision)| {
            NamespaceRecord::new(name.clone(), *version, *revision, FieldMap::new())
        })
        .collect();
    for change in &changes.namespaces {
        let found = records.iter().find(|ns| ns.name == change.namespace);
        if !guard_holds(change, found) {
            return Err(change.namespace);
        }
    }
    let mut left: HashSet<&str> = stored.iter().map(|(name, ..)| name.as_str()).collect();
    let mut plan = Plan {
        revisions: Vec::with_capacity(changes.namespaces.len()),
        counter,
        empty: false,
        removed: Vec::new(),
        replaced: Vec::new(),
        namespaces: Vec::new(),
        fields: Vec::new(),
    };
    for NamespaceChange {
        namespace,
        version,
        op,
        ..
    } in &changes.namespaces
    {
        let fields = match op {
            NamespaceOp::Remove => {
                left.remove(namespace);
                plan.removed.push(namespace);
                plan.revisions.push(0);
                continue;
            }
            NamespaceOp::Replace(fields) => {
                plan.replaced.push(namespace);
                fields
            }
            NamespaceOp::Patch(fields) => fields,
        };
        plan.counter += 1;
        plan.revisions.push(plan.counter);
        left.insert(namespace);
        plan.namespaces
            .push((namespace, i64::from(*version), to_i64(plan.counter)));
        plan.fields.extend(
            fields
                .iter()
                .map(|(field, value)| (*namespace, field, value)),
        );
    }
    // A save that only removes still moves the counter: it is how a
    // concurrent save notices that the record changed under it.
    if plan.namespaces.is_empty() {
        plan.counter += 1;
    }
    plan.empty = left.is_empty();
    Ok(plan)
}

/// One row of the load query: the record's times, then one namespace and
/// one of its fields (absent for a record or namespace without any).
pub(super) type Row = (
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<Vec<u8>>,
);

/// The record the load query's rows describe; `None` for no rows.
pub(super) fn record(rows: Vec<Row>) -> Result<Option<Record>, StoreError> {
    let Some(&(created, last_seen, expires, ..)) = rows.first() else {
        return Ok(None);
    };
    let mut namespaces: Vec<NamespaceRecord> = Vec::new();
    for (_, _, _, ns, version, revision, field, value) in rows {
        let (Some(ns), Some(version), Some(revision)) = (ns, version, revision) else {
            continue;
        };
        let position = if let Some(i) = namespaces.iter().position(|n| n.name == ns) {
            i
        } else {
            let (ns, version, revision) = namespace_meta(ns, version, revision)?;
            namespaces.push(NamespaceRecord::new(ns, version, revision, FieldMap::new()));
            namespaces.len() - 1
        };
        if let (Some(field), Some(value)) = (field, value) {
            namespaces[position].fields.insert(field, value);
        }
    }
    Ok(Some(Record::new(
        from_i64(created),
        from_i64(last_seen),
        from_i64(expires),
        namespaces,
    )))
}

/// A namespace row's version and revision as the store types them; a
/// negative or oversized value is a record the store cannot read.
pub(super) fn namespace_meta(
    ns: String,
    version: i64,
    revision: i64,
) -> Result<(String, u32, u64), StoreError> {
    match (u32::try_from(version), u64::try_from(revision)) {
        (Ok(version), Ok(revision)) => Ok((ns, version, revision)),
        _ => Err(StoreError::backend(format!(
            "session table holds a record it cannot read: namespace `{ns}` at {version}:{revision}"
        ))),
    }
}

/// Runs `work` within `bound`: a failed statement is classified with
/// `transient` (see [`classify`]), an overrun is `Unavailable`.
pub(super) async fn bounded<T>(
    bound: Duration,
    transient: fn(&str) -> bool,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(bound, work).await {
        Ok(result) => result.map_err(|err| classify(err, transient)),
        Err(_) => Err(timed_out(bound)),
    }
}

/// Milliseconds as a column value (saturating: u64 times past 2^63 ms are
/// 292 million years away).
pub(super) fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A column value as milliseconds (a negative value reads as 0).
pub(super) fn from_i64(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// The store error for a failed statement: `Unavailable` (503, worth
/// retrying) for a database that cannot be reached, is restarting, is busy
/// or timed out; `Backend` (500) for everything else.
pub(super) fn classify(err: sqlx::Error, transient_code: fn(&str) -> bool) -> StoreError {
    let transient = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    };
    if transient {
        StoreError::unavailable(SqlFailure(err))
    } else {
        StoreError::backend(SqlFailure(err))
    }
}

/// SQLSTATEs of PostgreSQL that pass: connection exceptions, shutdown,
/// too many connections, serialization failures and deadlocks, lock and
/// statement timeouts, and a read-only server (a standby during failover).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(super) fn postgres_transient(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03" | "57014" | "25006"
        )
}

/// SQLite's result codes that pass: `SQLITE_BUSY` (5) and `SQLITE_LOCKED`
/// (6), with their extended codes.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(super) fn sqlite_transient(code: &str) -> bool {
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

/// A `sqlx` error shown with the database's message, without repeating it
/// in the source chain.
#[derive(Debug)]
struct SqlFailure(sqlx::Error);

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SQL: {}", self.0)
    }
}

impl std::error::Error for SqlFailure {}

/// The error for an operation that outlived its bound.
pub(super) fn timed_out(bound: Duration) -> StoreError {
    StoreError::unavailable(format!(
        "session store operation took longer than {} ms",
        bound.as_millis()
    ))
}

/// The error for a save that kept losing races to other writes.
pub(super) fn too_busy() -> StoreError {
    StoreError::unavailable(format!(
        "session record changed under {SAVE_ATTEMPTS} save attempts in a row"
    ))
}

/// The error for a fresh key that is already taken by a live record.
pub(super) fn key_taken() -> StoreError {
    StoreError::backend("a session already exists under a fresh key")
}

/// Field and namespace rows as column arrays (PostgreSQL binds arrays).
#[derive(Debug, Default)]
pub(super) struct Columns<'c> {
    pub(super) ns_names: Vec<&'c str>,
    pub(super) ns_versions: Vec<i64>,
    pub(super) ns_revisions: Vec<i64>,
    pub(super) field_ns: Vec<&'c str>,
    pub(super) field_names: Vec<&'c str>,
    pub(super) field_values: Vec<&'c [u8]>,
}

impl<'c> Columns<'c> {
    pub(super) fn of(plan: &Plan<'c>) -> Self {
        let mut columns = Self::default();
        for &(name, version, revision) in &plan.namespaces {
            columns.ns_names.push(name);
            columns.ns_versions.push(version);
            columns.ns_revisions.push(revision);
        }
        for &(ns, field, value) in &plan.fields {
            columns.field_ns.push(ns);
            columns.field_names.push(field);
            columns.field_values.push(value);
        }
        columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SaveMode;

    fn fields(pairs: &[(&'static str, &str)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn names_are_plain_identifiers() {
        for bad in [
            "",
            "1abc",
            "a-b",
            "a\"b",
            "a b",
            "sessions;drop",
            "ü",
            &"x".repeat(64),
        ] {
            assert!(Tables::new(None, bad).is_err(), "{bad:?}");
            assert!(Tables::new(Some(bad), "ok").is_err(), "schema {bad:?}");
        }
        // A table name needs room for `_namespaces`; a schema does not.
        assert!(Tables::new(None, &"x".repeat(53)).is_err());
        assert!(Tables::new(None, &"x".repeat(52)).is_ok());
        assert!(Tables::new(Some(&"x".repeat(63)), "ok").is_ok());
        // The error names the name given, not a derived one.
        assert_eq!(
            Tables::new(None, &"t".repeat(53)).unwrap_err(),
            ConfigError::InvalidSqlName("t".repeat(53))
        );
        for reserved in ["pg_catalog", "PG_x", "information_schema"] {
            assert!(Tables::new(Some(reserved), "ok").is_err(), "{reserved}");
        }
        let defaults = Tables::new(None, DEFAULT_TABLE).unwrap();
        assert_eq!(defaults.namespaces, "\"typed_sessions_namespaces\"");
        let tables = Tables::new(Some("app"), "web_sessions").unwrap();
        assert_eq!(tables.sessions, "\"app\".\"web_sessions\"");
        assert_eq!(tables.fields, "\"app\".\"web_sessions_fields\"");
        assert_eq!(tables.deadline_index, "\"web_sessions_expires_at\"");
    }

    #[test]
    fn plan_checks_guards_and_counts_revisions() {
        let stored = vec![("a".to_owned(), 1, 4), ("b".to_owned(), 1, 2)];
        let changes = Changeset::new(
            SaveMode::Update,
            0,
            0,
            0,
            vec![
                NamespaceChange::new("a", 1, Some(4), NamespaceOp::Patch(fields(&[("x", "1")]))),
                NamespaceChange::new("b", 1, None, NamespaceOp::Remove),
                NamespaceChange::new("c", 2, Some(0), NamespaceOp::Replace(fields(&[("y", "2")]))),
            ],
        );
        let plan = plan(&stored, 7, &changes).unwrap();
        assert_eq!(plan.revisions, [8, 0, 9]);
        assert_eq!(plan.counter, 9);
        assert!(!plan.empty);
        assert_eq!(plan.removed, ["b"]);
        assert_eq!(plan.replaced, ["c"]);
        assert_eq!(plan.namespaces, [("a", 1, 8), ("c", 2, 9)]);
        assert_eq!(plan.fields, [("a", "x", &b"1"[..]), ("c", "y", &b"2"[..])]);

        let stale = Changeset::new(
            SaveMode::Update,
            0,
            0,
            0,
            vec![NamespaceChange::new("a", 1, Some(3), NamespaceOp::Remove)],
        );
        assert_eq!(plan_err(&stored, &stale), "a");
    }

    fn plan_err(stored: &[(String, u32, u64)], changes: &Changeset) -> &'static str {
        match plan(stored, 0, changes) {
            Err(ns) => ns,
            Ok(plan) => panic!("expected a conflict, planned {plan:?}"),
        }
    }

    #[test]
    fn removing_everything_empties_and_still_moves_the_counter() {
        let stored = vec![("a".to_owned(), 1, 4)];
        let changes = Changeset::new(
            SaveMode::Update,
            0,
            0,
            0,
            vec![NamespaceChange::new("a", 1, None, NamespaceOp::Remove)],
        );
        let plan = plan(&stored, 4, &changes).unwrap();
        assert!(plan.empty);
        assert_eq!(plan.counter, 5);
    }

    #[test]
    fn rows_group_into_namespaces() {
        let row = |ns: &str, field: Option<&str>, value: &str| -> Row {
            (
                1,
                2,
                3,
                Some(ns.to_owned()),
                Some(1),
                Some(5),
                field.map(str::to_owned),
                field.map(|_| value.as_bytes().to_vec()),
            )
        };
        let rec = record(vec![
            row("a", Some("x"), "1"),
            row("b", None, ""),
            row("a", Some("y"), "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (rec.created_at_ms, rec.last_seen_ms, rec.expires_at_ms),
            (1, 2, 3)
        );
        assert_eq!(rec.namespace("a").unwrap().fields.get("y"), Some(&b"2"[..]));
        assert!(rec.namespace("b").unwrap().fields.is_empty());
        assert!(record(Vec::new()).unwrap().is_none());
        let mut bad = row("a", None, "");
        bad.4 = Some(-1);
        assert!(record(vec![bad]).is_err());
    }

    #[test]
    fn busy_and_connection_codes_are_transient() {
        for code in ["08006", "57P01", "40001", "25006"] {
            assert!(postgres_transient(code), "{code}");
        }
        for code in ["23505", "42P01"] {
            assert!(!postgres_transient(code), "{code}");
        }
        for code in ["5", "517", "6"] {
            assert!(sqlite_transient(code), "{code}");
        }
        for code in ["1", "19", "2067"] {
            assert!(!sqlite_transient(code), "{code}");
        }
    }
}
