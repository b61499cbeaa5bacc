//! Every subject and stream name Baton uses, under one prefix. Nothing
//! else in the crate builds a subject or a stream name: it asks [`Names`].
//! The names are a documented contract (docs/wire-contract.md), so
//! a change here is a breaking change for every runner and consumer.

use uuid::Uuid;

/// A stream Baton owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `BATON_EVENTS`: the handoff event log, the source of truth.
    Events,
    /// `BATON_REPORTS`: reports from runners.
    Reports,
    /// `BATON_PAGES`: pages for paging consumers.
    Pages,
    /// `BATON_REJECTED`: reports that failed validation.
    Rejected,
    /// `BATON_JOBS`: job claims and run records.
    Jobs,
    /// `BATON_DIGESTS`: daily reviews and ownership audits.
    Digests,
    /// `BATON_SNAPSHOTS`: projector snapshots.
    Snapshots,
    /// `BATON_HEARTBEATS`: heartbeat monitors' pings.
    Heartbeats,
    /// `BATON_CREDENTIALS`: person credentials (hashed), one per subject.
    Credentials,
    /// `BATON_ONCALL`: overrides and participant changes of rotations.
    Oncall,
}

impl Stream {
    /// Every stream Baton owns, the one list: `ensure_streams` creates or
    /// updates each of them and `/readyz` checks each of them.
    pub const ALL: [Stream; 10] = [
        Stream::Events,
        Stream::Reports,
        Stream::Pages,
        Stream::Rejected,
        Stream::Jobs,
        Stream::Digests,
        Stream::Snapshots,
        Stream::Heartbeats,
        Stream::Credentials,
        Stream::Oncall,
    ];
}

/// Subject and stream names under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    /// The first token(s) of every subject (`nats.prefix`).
    pub prefix: String,
    stream_stem: String,
}

impl Names {
    /// Names under `prefix`; stream names are the prefix upper-cased with
    /// `.` and `-` as `_`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            stream_stem: prefix.to_ascii_uppercase().replace(['.', '-'], "_"),
        }
    }
    /// `BATON_EVENTS`.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.stream_stem)
    }
    /// `BATON_REPORTS`.
    pub fn reports_stream(&self) -> String {
        format!("{}_REPORTS", self.stream_stem)
    }
    /// `BATON_PAGES`.
    pub fn pages_stream(&self) -> String {
        format!("{}_PAGES", self.stream_stem)
    }
    /// `BATON_REJECTED`.
    pub fn rejected_stream(&self) -> String {
        format!("{}_REJECTED", self.stream_stem)
    }
    /// `BATON_JOBS`.
    pub fn jobs_stream(&self) -> String {
        format!("{}_JOBS", self.stream_stem)
    }
    /// `BATON_DIGESTS`.
    pub fn digests_stream(&self) -> String {
        format!("{}_DIGESTS", self.stream_stem)
    }
    /// `<prefix>.events.<handoff_id>`: one handoff's commits.
    pub fn events(&self, id: Uuid) -> String {
        format!("{}.events.{id}", self.prefix)
    }
    /// `<prefix>.report.<template>`: reports for a template.
    pub fn report(&self, template: &str) -> String {
        format!("{}.report.{template}", self.prefix)
    }
    /// `<prefix>.rejected.<template>`: rejected reports.
    pub fn rejected(&self, template: &str) -> String {
        format!("{}.rejected.{template}", self.prefix)
    }
    /// `<prefix>.page.<route>.<team>`: pages.
    pub fn page(&self, route: &str, team: &str) -> String {
        format!("{}.page.{route}.{team}", self.prefix)
    }
    /// `<prefix>.cmd.<verb>`: a command (request/reply).
    pub fn cmd(&self, verb: &str) -> String {
        format!("{}.cmd.{verb}", self.prefix)
    }
    /// The `<template>` token of a report subject.
    pub fn template_of<'a>(&self, subject: &'a str) -> &'a str {
        subject
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(".report."))
            .unwrap_or("")
    }
    /// `BATON_SNAPSHOTS`: the events stream's name with `_EVENTS` trimmed
    /// off its end (repeatedly: `trim_end_matches`) and `_SNAPSHOTS`
    /// appended, as every release so far has named it. For a prefix whose
    /// last token is `events` that is not `<STEM>_SNAPSHOTS` (`acme.events`
    /// gives `ACME_SNAPSHOTS`); existing deployments keep their snapshots
    /// under this name, so it stays.
    pub fn snapshots_stream(&self) -> String {
        let events = self.events_stream();
        format!("{}_SNAPSHOTS", events.trim_end_matches("_EVENTS"))
    }
    /// The name of one of Baton's streams.
    pub fn stream(&self, stream: Stream) -> String {
        match stream {
            Stream::Events => self.events_stream(),
            Stream::Reports => self.reports_stream(),
            Stream::Pages => self.pages_stream(),
            Stream::Rejected => self.rejected_stream(),
            Stream::Jobs => self.jobs_stream(),
            Stream::Digests => self.digests_stream(),
            Stream::Snapshots => self.snapshots_stream(),
            Stream::Heartbeats => self.heartbeats_stream(),
            Stream::Credentials => self.credentials_stream(),
            Stream::Oncall => self.oncall_stream(),
        }
    }
    /// Every handoff's events (`<prefix>.events.*`): the events stream's
    /// subjects and its readers' filter.
    pub fn events_all(&self) -> String {
        format!("{}.events.*", self.prefix)
    }
    /// The `<handoff_id>` token of an events subject.
    pub fn handoff_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(&self.prefix)?.strip_prefix(".events.")
    }
    /// Every report subject (`<prefix>.report.*`).
    pub fn reports_all(&self) -> String {
        format!("{}.report.*", self.prefix)
    }
    /// Every rejected-report subject (`<prefix>.rejected.*`).
    pub fn rejected_all(&self) -> String {
        format!("{}.rejected.*", self.prefix)
    }
    /// Every page subject (`<prefix>.page.*.*`).
    pub fn pages_all(&self) -> String {
        format!("{}.page.*.*", self.prefix)
    }
    /// Every command subject (`<prefix>.cmd.*`), served in queue group `baton`.
    pub fn cmd_all(&self) -> String {
        format!("{}.cmd.*", self.prefix)
    }
    /// The `<verb>` token of a command subject (empty if it is none).
    pub fn verb_of<'a>(&self, subject: &'a str) -> &'a str {
        subject
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(".cmd."))
            .unwrap_or("")
    }
    /// `<prefix>.job.<name>`: run a job now (request/reply).
    pub fn job(&self, name: &str) -> String {
        format!("{}.job.{name}", self.prefix)
    }
    /// Every on-demand job subject (`<prefix>.job.*`).
    pub fn job_all(&self) -> String {
        format!("{}.job.*", self.prefix)
    }
    /// The `<name>` token of an on-demand job subject (empty if it is none).
    pub fn job_of<'a>(&self, subject: &'a str) -> &'a str {
        subject
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(".job."))
            .unwrap_or("")
    }
    /// `<prefix>.jobs.<job>.claim`: the claims of a job's scheduled runs.
    pub fn job_claim(&self, job: &str) -> String {
        format!("{}.jobs.{job}.claim", self.prefix)
    }
    /// `<prefix>.jobs.<job>.run`: a job's run records.
    pub fn job_run(&self, job: &str) -> String {
        format!("{}.jobs.{job}.run", self.prefix)
    }
    /// Every claim and run record (`<prefix>.jobs.*.*`).
    pub fn job_records_all(&self) -> String {
        format!("{}.jobs.*.*", self.prefix)
    }
    /// `<prefix>.digest.daily`: the daily reviews.
    pub fn daily_digest(&self) -> String {
        format!("{}.digest.daily", self.prefix)
    }
    /// `<prefix>.digest.audit`: the ownership audits.
    pub fn audit_digest(&self) -> String {
        format!("{}.digest.audit", self.prefix)
    }
    /// Every digest subject (`<prefix>.digest.*`).
    pub fn digests_all(&self) -> String {
        format!("{}.digest.*", self.prefix)
    }
    /// `<prefix>.snapshot.<slot>.manifest`: a snapshot slot's manifest.
    pub fn snapshot_manifest(&self, slot: &str) -> String {
        format!("{}.snapshot.{slot}.manifest", self.prefix)
    }
    /// `<prefix>.snapshot.<slot>.chunk.<n>`: a snapshot slot's `n`th chunk.
    pub fn snapshot_chunk(&self, slot: &str, n: u64) -> String {
        format!("{}.snapshot.{slot}.chunk.{n}", self.prefix)
    }
    /// `BATON_HEARTBEATS`.
    pub fn heartbeats_stream(&self) -> String {
        format!("{}_HEARTBEATS", self.stream_stem)
    }
    /// `<prefix>.heartbeat.<name>`: a heartbeat monitor's pings.
    pub fn heartbeat(&self, name: &str) -> String {
        format!("{}.heartbeat.{name}", self.prefix)
    }
    /// Every heartbeat subject (`<prefix>.heartbeat.*`): one token per
    /// monitor, as monitor names are subject tokens.
    pub fn heartbeats_all(&self) -> String {
        format!("{}.heartbeat.*", self.prefix)
    }
    /// The `<name>` token of a heartbeat subject (empty if it is none).
    pub fn heartbeat_of<'a>(&self, subject: &'a str) -> &'a str {
        subject
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix(".heartbeat."))
            .unwrap_or("")
    }
    /// `BATON_ONCALL`.
    pub fn oncall_stream(&self) -> String {
        format!("{}_ONCALL", self.stream_stem)
    }
    /// `<prefix>.oncall.<rotation>`: one rotation's on-call events.
    pub fn oncall(&self, rotation: &str) -> String {
        format!("{}.oncall.{rotation}", self.prefix)
    }
    /// Every rotation's on-call events (`<prefix>.oncall.*`).
    pub fn oncall_all(&self) -> String {
        format!("{}.oncall.*", self.prefix)
    }
    /// Every snapshot subject (`<prefix>.snapshot.>`).
    pub fn snapshots_all(&self) -> String {
        format!("{}.snapshot.>", self.prefix)
    }
    /// `BATON_CREDENTIALS`.
    pub fn credentials_stream(&self) -> String {
        format!("{}_CREDENTIALS", self.stream_stem)
    }
    /// `<prefix>.credential.<id>`: one person credential's record.
    pub fn credential(&self, id: &str) -> String {
        format!("{}.credential.{id}", self.prefix)
    }
    /// Every credential subject (`<prefix>.credential.*`).
    pub fn credentials_all(&self) -> String {
        format!("{}.credential.*", self.prefix)
    }
}

/// The derivation of pages (`wire::page`) asks for its subjects here.
impl crate::wire::page::PageSubjects for Names {
    fn page(&self, route: &str, team: &str) -> String {
        Names::page(self, route, team)
    }
    fn cmd(&self, verb: &str) -> String {
        Names::cmd(self, verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let n = Names::new("acme.baton-x");
        assert_eq!(n.events_stream(), "ACME_BATON_X_EVENTS");
        assert_eq!(
            n.page("oncall", "payments"),
            "acme.baton-x.page.oncall.payments"
        );
        assert_eq!(
            n.template_of("acme.baton-x.report.agent_failure"),
            "agent_failure"
        );
    }

    #[test]
    fn every_subject_and_stream_keeps_its_documented_name() {
        let n = Names::new("baton");
        let streams: Vec<String> = Stream::ALL.iter().map(|s| n.stream(*s)).collect();
        assert_eq!(
            streams,
            [
                "BATON_EVENTS",
                "BATON_REPORTS",
                "BATON_PAGES",
                "BATON_REJECTED",
                "BATON_JOBS",
                "BATON_DIGESTS",
                "BATON_SNAPSHOTS",
                "BATON_HEARTBEATS",
                "BATON_CREDENTIALS",
                "BATON_ONCALL"
            ]
        );
        let id = Uuid::from_u128(7);
        assert_eq!(n.events(id), format!("baton.events.{id}"));
        assert_eq!(n.handoff_of(&n.events(id)), Some(id.to_string().as_str()));
        assert_eq!(n.handoff_of("other.events.x"), None);
        assert_eq!(n.events_all(), "baton.events.*");
        assert_eq!(n.report("agent_failure"), "baton.report.agent_failure");
        assert_eq!(n.reports_all(), "baton.report.*");
        assert_eq!(n.rejected("invalid"), "baton.rejected.invalid");
        assert_eq!(n.rejected_all(), "baton.rejected.*");
        assert_eq!(n.pages_all(), "baton.page.*.*");
        assert_eq!(n.cmd("ack"), "baton.cmd.ack");
        assert_eq!(n.cmd_all(), "baton.cmd.*");
        assert_eq!(n.verb_of("baton.cmd.ack"), "ack");
        assert_eq!(n.verb_of("baton.job.ack"), "");
        assert_eq!(n.job("daily-review"), "baton.job.daily-review");
        assert_eq!(n.job_all(), "baton.job.*");
        assert_eq!(n.job_of("baton.job.daily-review"), "daily-review");
        assert_eq!(n.job_claim("weekly-drill"), "baton.jobs.weekly-drill.claim");
        assert_eq!(n.job_run("weekly-drill"), "baton.jobs.weekly-drill.run");
        assert_eq!(n.job_records_all(), "baton.jobs.*.*");
        assert_eq!(n.daily_digest(), "baton.digest.daily");
        assert_eq!(n.audit_digest(), "baton.digest.audit");
        assert_eq!(n.digests_all(), "baton.digest.*");
        assert_eq!(n.snapshot_manifest("a"), "baton.snapshot.a.manifest");
        assert_eq!(n.snapshot_chunk("b", 3), "baton.snapshot.b.chunk.3");
        assert_eq!(n.snapshots_all(), "baton.snapshot.>");
        assert_eq!(n.heartbeat("nightly-etl"), "baton.heartbeat.nightly-etl");
        assert_eq!(n.heartbeats_all(), "baton.heartbeat.*");
        assert_eq!(n.heartbeat_of("baton.heartbeat.nightly-etl"), "nightly-etl");
        assert_eq!(n.credential("0123"), "baton.credential.0123");
        assert_eq!(n.credentials_all(), "baton.credential.*");
        assert_eq!(
            n.oncall("payments-primary"),
            "baton.oncall.payments-primary"
        );
        assert_eq!(n.oncall_all(), "baton.oncall.*");
    }

    #[test]
    fn the_snapshot_stream_name_trims_events_as_it_always_has() {
        assert_eq!(
            Names::new("acme.baton-x").snapshots_stream(),
            "ACME_BATON_X_SNAPSHOTS"
        );
        // Not ACME_EVENTS_SNAPSHOTS: earlier releases trimmed every trailing
        // `_EVENTS`, and a deployment's snapshots live under that name.
        assert_eq!(
            Names::new("acme.events").snapshots_stream(),
            "ACME_SNAPSHOTS"
        );
    }
}
