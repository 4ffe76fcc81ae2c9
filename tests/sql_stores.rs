//! `PostgresStore` and `SqliteStore`: the conformance and lifecycle suites
//! against both.
//!
//! PostgreSQL: each store gets a fresh schema on the server at
//! `TYPED_SESSIONS_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped afterwards. Without a server these tests say so loudly and pass
//! without running, except under `CI=true`, where they fail. SQLite: a
//! fresh file in a temporary directory per store.
#![cfg(all(feature = "postgres", feature = "sqlite"))]

use typed_sessions_test_support::sql::{postgres_available, postgres_store, sqlite_store};

mod postgres_conformance {
    typed_sessions::conformance_tests!(when super::postgres_available(); super::postgres_store(None));
}

mod postgres_lifecycle {
    typed_sessions_test_support::lifecycle_tests!(when super::postgres_available(); |clock| {
        super::postgres_store(Some(clock))
    });
}

mod sqlite_conformance {
    typed_sessions::conformance_tests!(super::sqlite_store(None));
}

mod sqlite_lifecycle {
    typed_sessions_test_support::lifecycle_tests!(|clock| super::sqlite_store(Some(clock)));
}
