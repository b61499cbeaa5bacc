//! The web console: pages for the people on call, rendered on the server.
//!
//! Pure and transport-free, like `domain`: [`views`] turns view structs
//! into HTML ([`maud`] checks the templates at compile time and escapes
//! every value), [`session`] signs and checks the session cookie's value,
//! [`assets`] holds the stylesheet and the few lines of script compiled
//! into the binary (nothing is fetched from another host at run time).
//! The axum handlers that read the projection, call
//! [`crate::app::Handoffs::command_as`] and answer with these pages are in
//! `http::console`: no business rule lives here; what a button does is
//! decided by `app`, whether it is offered by `identity::authz`.
//!
//! Imports `app` (its views), `identity`, `domain` and `replay::timeline`
//! (the words of `baton timeline`, pure), never `http`.

pub mod assets;
pub mod detail;
pub mod session;
pub mod views;

pub use session::SessionKey;
