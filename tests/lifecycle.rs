//! The store-generic lifecycle suite, run against `MemoryStore`.

typed_sessions_test_support::lifecycle_tests!(|clock| {
    typed_sessions::stores::MemoryStore::builder()
        .clock(clock)
        .build()
});
