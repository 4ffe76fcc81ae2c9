//! Compile-time behaviour of `#[derive(SessionData)]`: every attribute
//! mistake has a readable error on the right token, and every attribute
//! compiles in a hostile user crate. Bless with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
