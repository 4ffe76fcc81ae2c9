use axum::{Router, routing::post};
use typed_sessions::{Session, SessionData, SessionLayer, stores::MemoryStore};

// A schema without `Default` is one error, at the struct: not a cascade
// into `no field on Session<T>` and axum's `Handler` error.
#[derive(SessionData)]
#[session(namespace = "cart")]
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
