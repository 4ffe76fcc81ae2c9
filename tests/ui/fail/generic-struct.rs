use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart<T> {
    items: Vec<T>,
}

// Only the error above: the stub impl keeps this use from failing too.
const _: u32 = <Cart<String> as SessionData>::VERSION;

fn main() {}
