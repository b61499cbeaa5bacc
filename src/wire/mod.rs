//! Wire formats: the bytes other processes, and other versions of Baton,
//! read. Placeholder; the list is filled in below as formats move here.

pub mod events;
pub mod page;
pub mod snapshot;
