//! Wire formats: the bytes that other processes, and other versions of
//! Baton, read. Each is a type of its own with a version rule and a test
//! that pins it, apart from the config file (`config`), whose keys may be
//! renamed without any of these changing.
//!
//! This module sits just above `domain` and below `store`: it imports
//! nothing but the domain, and the store, the publisher, the projector and
//! the replay tools read and write through it.
//!
//! | Format | Where it lives | Version | Pinned by |
//! |---|---|---|---|
//! | **Events**: one JSON `Commit` per message on `<prefix>.events.<id>` (`BATON_EVENTS`), the source of truth | [`events`]: encoder, fast decoder, version refusal; the types are the domain's (`domain::event`: events are what `decide` returns) | `version` on every event, `EVENT_VERSION` = 1; a newer one is refused; after a bump, older shapes are upcast in [`events::decode_commit`] | recorded fixtures `tests/fixtures/*.jsonl`, one or more per event kind of both aggregates: [`events`]' tests (decode as the derived decoder does, re-encode to the same bytes); `tests/replay_e2e.rs` `recorded_event_fixtures_replay_forever` (same facts) and `recorded_fixtures_cover_every_event_kind` |
//! | **Stored template**: the `template` of an `initiated` event (and of team handoffs in snapshots) | `domain::teamwork::Template`, converted from the config's `config::TemplateFile` | that of the event | [`events`]' `the_template_stored_in_a_recorded_initiated_event_round_trips`; `config::templates`' `a_renamed_config_key_does_not_change_the_bytes_stored_in_an_initiated_event` |
//! | **Pages**: JSON on `<prefix>.page.<route>.<team>` (`BATON_PAGES`), `Nats-Msg-Id` `<event>:<route>` | [`page`]: `Page`, `pages_for`; the publisher task is `pages` | none: it only grows (new optional fields), consumers outside Baton parse it | `tests/fixtures/pages/from_recorded_events.jsonl`, [`page`]'s test |
//! | **Snapshots**: LZ4 chunks of MessagePack entries and a JSON manifest (`BATON_SNAPSHOTS`) | [`snapshot`]: `Manifest`, `Encoder`, `decode`; the slots and the periodic task are `snapshot` | `FORMAT` = 3 and the manifest's `event_version`; anything else is skipped and replayed from the log, so no golden file | round trip and refusals in `replay/tests.rs` |
//! | **On-call events**: one JSON `OncallEvent` per message on `<prefix>.oncall.<rotation>` (`BATON_ONCALL`), `Nats-Msg-Id` the event id | [`oncall`]: encode, decode, version refusal; the types are `domain::oncall`'s | `version`, `ONCALL_EVENT_VERSION` = 1; a newer one is refused | `tests/fixtures/oncall/*.json`, one per kind: [`oncall`]'s tests |
//! | **API bodies**: NATS replies on `<prefix>.cmd.*`, HTTP `/v1/…`, the CLI's output | `views` (`HandoffView`, tagged by `kind`), not moved here while it is reworked | none | `tests/http_api.rs` |
//!
//! Also read by other processes, and not (yet) here: the report a runner
//! sends (`domain::parse_report`), the rejected-report record (`ingest`),
//! job claims, run records and digests (`jobs`; golden files under
//! `tests/fixtures/jobs/`), the person credential record on
//! `<prefix>.credential.<id>` (`identity::record`, `version` 1, pinned by
//! its golden test there), and the subject and stream names themselves
//! (`store::Names`, pinned by its tests).

pub mod events;
pub mod oncall;
pub mod page;
pub mod snapshot;
