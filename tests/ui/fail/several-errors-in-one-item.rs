use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart_v1")]
struct CartV1 {
    items: Vec<String>,
}

// Every mistake is reported in one compile. The rejected `version = 0` does
// not also trigger "migrate_from needs version 2".
#[derive(SessionData, Default)]
#[session(version = 0, namespace = 5, colour = "red", migrate_from = CartV1)]
struct Cart {
    #[session(rename = "")]
    items: Vec<String>,
    #[session(default = yes)]
    coupon: Option<String>,
    #[session(skip, sensitive)]
    cache: Vec<u8>,
}

fn main() {}
