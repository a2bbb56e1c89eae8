//! The hosted login UI (Leptos, wasm32). Empty until the login-pages issue builds it.
