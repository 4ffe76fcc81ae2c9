use axum::{Router, routing::post};
use typed_sessions::{Session, SessionData, SessionLayer, stores::MemoryStore};

// Two mistakes at once (no namespace, no `Default`): two errors at the
// struct, and no cascade into `no field on Session<T>` or axum's
// `Handler` error.
#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
}

async fn add(mut cart: Session<Cart>) -> String {
    cart.items.push("tea".into());
    cart.items.len().to_string()
}

fn main() {
    let _app: Router = Router::new()
        .route("/add", post(add))
        .layer(SessionLayer::new(MemoryStore::new()));
}
