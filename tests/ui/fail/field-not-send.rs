use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use typed_sessions::SessionData;

/// Serializable, but tied to the thread that created it.
#[derive(Serialize, Deserialize, Default)]
struct Handle {
    id: u32,
    #[serde(skip)]
    thread_bound: PhantomData<*const ()>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    handle: Handle,
}

fn main() {}
