//! Prometheus series. Names and labels are part of the wire contract
//! (docs/operations.md, "Metrics"). Labels are low-cardinality only: severity, template, team-free
//! states, levels, field names and reason codes — never a handoff id, a
//! person or free text.
//!
//! Series derived from events (counters and histograms) are fed by the
//! projector, which sees every commit of the stream exactly once per process,
//! so after a full replay they describe the same history again (after a
//! snapshot restore, only the tail: see `snapshot`). The gauges are
//! recomputed from the rebuilt state. Process-local series start from zero:
//! the timings (`baton_event_append_seconds`, lateness), rejections (counted
//! where the report was refused), pages published and job runs.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::{Event, EventData, Handoff};

/// All of Baton's collectors, registered in their own registry.
pub struct Metrics {
    pub registry: Registry,
    pub mtta_seconds: HistogramVec,
    pub hcs: HistogramVec,
    pub handoffs_opened_total: IntCounterVec,
    pub handoffs_resolved_total: IntCounterVec,
    pub open_handoffs: IntGaugeVec,
    pub open_team_handoffs: IntGaugeVec,
    pub escalations_total: IntCounterVec,
    pub sla_breaches_total: IntCounterVec,
    pub gate_holds_total: IntCounterVec,
    pub packet_missing_field_total: IntCounterVec,
    pub reports_rejected_total: IntCounterVec,
    /// `baton_reports_terminated_total{reason}`: reports the ingest gave
    /// up on after `limits.max_report_attempts` deliveries
    /// ([`TERMINATED_UNRECORDABLE`]).
    pub reports_terminated_total: IntCounterVec,
    pub escalation_lateness_seconds: Histogram,
    pub overdue_deadlines: IntGauge,
    /// `baton_store_up`: 1 while Baton can write to JetStream, 0 while it
    /// cannot (disconnected, or its calls failing); see `store::health`.
    pub store_up: IntGauge,
    pub projector_lag_events: IntGauge,
    /// `baton_snapshot_restored_seq`: the events-stream sequence the last
    /// start restored from a snapshot (0: it replayed the whole stream).
    pub snapshot_restored_seq: IntGauge,
    /// `baton_handoffs_in_memory`: handoffs the projection holds (open,
    /// and closed within `limits.closed_retention`), as of the last
    /// eviction tick.
    pub handoffs_in_memory: IntGauge,
    /// `baton_handoffs_evicted_total`: closed handoffs dropped from memory
    /// after the retention (still read from the log).
    pub handoffs_evicted_total: IntCounter,
    pub event_append_seconds: Histogram,
    pub pages_published_total: IntCounterVec,
    /// `baton_undecodable_commits_total{reason}`: commits the page publisher
    /// could not read, per delivery; `newer_version` (left unacked for a
    /// newer daemon) or `corrupt` (terminated, no pages).
    pub undecodable_commits_total: IntCounterVec,
    pub job_runs_total: IntCounterVec,
    pub ownership_audit_findings: IntGaugeVec,
    pub work_handoffs_total: IntCounterVec,
    pub work_accept_seconds: HistogramVec,
    pub work_complete_seconds: HistogramVec,
    pub work_returns_total: IntCounterVec,
    pub work_completeness: HistogramVec,
    pub work_rating: HistogramVec,
    pub work_sla_missed_total: IntCounterVec,
    /// `baton_delivery_seconds{channel}`: from a page's event being stored
    /// to the remote end's 2xx (process-local, fed by the delivery worker).
    pub delivery_seconds: HistogramVec,
    /// `baton_delivery_attempts_total{channel}`: every attempt, retries too.
    pub delivery_attempts_total: IntCounterVec,
    /// `baton_delivery_failures_total{channel,reason}`: contact methods
    /// given up on a page (`reason`: `http_<code>`, a Slack code,
    /// `smtp_<code>`, `retries_exhausted`, …).
    pub delivery_failures_total: IntCounterVec,
    /// `baton_delivery_queue_depth{channel}`: pages not yet finished.
    /// `channel="slack"|"webhook"|"email"`: pages this process has taken
    /// from `BATON_PAGES` and not yet finished (outcome stored and acked),
    /// under the channel of the contact method being tried (its retries
    /// included; before the first attempt, the first method's), kept live
    /// from when its contacts are known (a redelivery's log read before
    /// that, and a page with no contact at all, count as `pending`).
    /// `channel="pending"`: the rest of the `baton-delivery` consumer's
    /// backlog as this process sees it every 5 s (stored and not yet
    /// fetched, plus fetched and unacknowledged, minus this process's
    /// pages above): waiting, or in another daemon's hands. One process:
    /// the channels and `pending` add up to the consumer's backlog.
    pub delivery_queue_depth: IntGaugeVec,
    /// `baton_heartbeat_pings_total{monitor,status}`: pings this daemon took
    /// live (configured monitors only: a bounded label).
    pub heartbeat_pings_total: IntCounterVec,
    /// `baton_heartbeat_pings_rejected_total{reason}`: pings for no
    /// configured monitor or with a bad body.
    pub heartbeat_pings_rejected_total: IntCounterVec,
    /// `baton_heartbeat_misses_total{monitor}`: missed deadlines this daemon
    /// opened an incident for.
    pub heartbeat_misses_total: IntCounterVec,
    /// `baton_heartbeat_last_ok_timestamp_seconds{monitor}`: the last `ok`.
    pub heartbeat_last_ok_timestamp_seconds: IntGaugeVec,
    /// `baton_unresolved_targets_total{route}`: notice targets that
    /// resolved to nobody when the decision was taken (the route's
    /// fallback, if any, was paged instead); counted from stored events.
    pub unresolved_targets_total: IntCounterVec,
}

/// `reason` of `baton_undecodable_commits_total`: a newer Baton's commit.
pub const UNDECODABLE_NEWER: &str = "newer_version";
/// `reason` of `baton_undecodable_commits_total`: not a commit at all.
pub const UNDECODABLE_CORRUPT: &str = "corrupt";

/// `reason` of `baton_reports_terminated_total`: neither the report's
/// events nor its rejection could be stored in the attempts allowed.
pub const TERMINATED_UNRECORDABLE: &str = "unrecordable";

/// Team-handoff durations: minutes to weeks.
const WORK_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 432000.0,
    864000.0, 1728000.0,
];

/// Buckets that resolve each SLA band: seconds up to the P3 band's hours.
const MTTA_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0, 86400.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($c:expr) => {{
                let c = $c.expect("metric definition is valid");
                registry
                    .register(Box::new(c.clone()))
                    .expect("metric registered once");
                c
            }};
        }
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            HistogramOpts::new(name, help).buckets(buckets)
        };
        Self {
            mtta_seconds: reg!(HistogramVec::new(
                hist(
                    "baton_mtta_seconds",
                    "Time from opened to acknowledged.",
                    MTTA_BUCKETS.to_vec()
                ),
                &["severity"]
            )),
            hcs: reg!(HistogramVec::new(
                hist(
                    "baton_hcs",
                    "Handoff Completeness Score at open.",
                    // 0..=100 in steps of 10: `le="0"` counts empty packets.
                    (0..=10).map(|i| f64::from(i) * 10.0).collect()
                ),
                &["severity", "template"]
            )),
            handoffs_opened_total: reg!(IntCounterVec::new(
                Opts::new("baton_handoffs_opened_total", "Handoffs opened."),
                &["severity", "template"]
            )),
            handoffs_resolved_total: reg!(IntCounterVec::new(
                Opts::new("baton_handoffs_resolved_total", "Handoffs resolved."),
                &["severity", "template"]
            )),
            open_handoffs: reg!(IntGaugeVec::new(
                Opts::new("baton_open_handoffs", "Incidents not resolved, by state."),
                &["severity", "state"]
            )),
            open_team_handoffs: reg!(IntGaugeVec::new(
                Opts::new(
                    "baton_open_team_handoffs",
                    "Team handoffs neither completed nor cancelled, by workflow state."
                ),
                &["template", "state"]
            )),
            escalations_total: reg!(IntCounterVec::new(
                Opts::new("baton_escalations_total", "Escalation steps stored."),
                &["severity", "level"]
            )),
            sla_breaches_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_sla_breaches_total",
                    "Handoffs whose first-response deadline passed without an acknowledgement."
                ),
                &["severity"]
            )),
            gate_holds_total: reg!(IntCounterVec::new(
                Opts::new("baton_gate_holds_total", "Reports held by the HCS gate."),
                &["severity"]
            )),
            packet_missing_field_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_packet_missing_field_total",
                    "Packet fields missing at open (after auto-enrichment)."
                ),
                &["field"]
            )),
            reports_rejected_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_reports_rejected_total",
                    "Reports rejected by validation."
                ),
                &["template", "reason"]
            )),
            reports_terminated_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_reports_terminated_total",
                    "Reports given up on after every delivery attempt failed to store them."
                ),
                &["reason"]
            )),
            escalation_lateness_seconds: reg!(Histogram::with_opts(hist(
                "baton_escalation_lateness_seconds",
                "Time from an escalation deadline to its page being stored.",
                vec![0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0]
            ))),
            overdue_deadlines: reg!(IntGauge::new(
                "baton_overdue_deadlines",
                "Deadlines more than a second past due with no escalation stored; 0 when healthy."
            )),
            store_up: reg!(IntGauge::new(
                "baton_store_up",
                "1 while Baton can write to JetStream, 0 while it cannot (readiness is false then)."
            )),
            projector_lag_events: reg!(IntGauge::new(
                "baton_projector_lag_events",
                "Events in the stream not yet applied by the projector."
            )),
            snapshot_restored_seq: reg!(IntGauge::new(
                "baton_snapshot_restored_seq",
                "Events-stream sequence this process restored from a snapshot at start; 0 = full replay."
            )),
            handoffs_in_memory: reg!(IntGauge::new(
                "baton_handoffs_in_memory",
                "Handoffs held in memory: open ones and those closed within the retention."
            )),
            handoffs_evicted_total: reg!(IntCounter::new(
                "baton_handoffs_evicted_total",
                "Closed handoffs evicted from memory after limits.closed_retention (read from the log since)."
            )),
            event_append_seconds: reg!(Histogram::with_opts(hist(
                "baton_event_append_seconds",
                "Latency of one event-commit append to JetStream.",
                vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]
            ))),
            unresolved_targets_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_unresolved_targets_total",
                    "Notice targets that resolved to nobody (the route's fallback was paged)."
                ),
                &["route"]
            )),
            pages_published_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_pages_published_total",
                    "Pages stored on the page stream."
                ),
                &["kind"]
            )),
            undecodable_commits_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_undecodable_commits_total",
                    "Event commits the page publisher could not read, per delivery: \
                     newer_version (left for a newer daemon) or corrupt (no pages)."
                ),
                &["reason"]
            )),
            job_runs_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_job_runs_total",
                    "Scheduled or on-demand job runs by outcome."
                ),
                &["job", "outcome"]
            )),
            ownership_audit_findings: reg!(IntGaugeVec::new(
                Opts::new(
                    "baton_ownership_audit_findings",
                    "Findings of the last ownership audit, by kind (counts, never names)."
                ),
                &["kind"]
            )),
            work_handoffs_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_work_handoffs_total",
                    "Team handoffs by outcome (initiated, completed, cancelled)."
                ),
                &["template", "from_team", "outcome"]
            )),
            work_accept_seconds: reg!(HistogramVec::new(
                hist(
                    "baton_work_accept_seconds",
                    "Team handoffs: time from initiated to accepted.",
                    WORK_BUCKETS.to_vec()
                ),
                &["template", "from_team"]
            )),
            work_complete_seconds: reg!(HistogramVec::new(
                hist(
                    "baton_work_complete_seconds",
                    "Team handoffs: time from initiated to completed.",
                    WORK_BUCKETS.to_vec()
                ),
                &["template", "from_team"]
            )),
            work_returns_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_work_returns_total",
                    "Team handoffs sent back for missing context."
                ),
                &["template", "from_team"]
            )),
            work_completeness: reg!(HistogramVec::new(
                hist(
                    "baton_work_completeness",
                    "Team handoffs: completeness score at start.",
                    (1..=10).map(|i| f64::from(i) * 10.0).collect()
                ),
                &["template", "from_team"]
            )),
            work_rating: reg!(HistogramVec::new(
                hist(
                    "baton_work_rating",
                    "Team handoffs: the receiving team's rating (1-5).",
                    vec![1.0, 2.0, 3.0, 4.0, 5.0]
                ),
                &["template", "from_team"]
            )),
            work_sla_missed_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_work_sla_missed_total",
                    "Team handoffs whose accept or complete SLA passed."
                ),
                &["template", "stage"]
            )),
            delivery_seconds: reg!(HistogramVec::new(
                hist(
                    "baton_delivery_seconds",
                    "From a page's event being stored to the remote end accepting it.",
                    vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]
                ),
                &["channel"]
            )),
            delivery_attempts_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_delivery_attempts_total",
                    "Delivery attempts, retries included."
                ),
                &["channel"]
            )),
            delivery_failures_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_delivery_failures_total",
                    "Contact methods given up on a page, by reason."
                ),
                &["channel", "reason"]
            )),
            delivery_queue_depth: reg!(IntGaugeVec::new(
                Opts::new(
                    "baton_delivery_queue_depth",
                    "Pages not yet delivered: this process's in delivery by channel, the \
                     consumer's other pages as pending."
                ),
                &["channel"]
            )),
            heartbeat_pings_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_heartbeat_pings_total",
                    "Heartbeat pings taken, by monitor and status."
                ),
                &["monitor", "status"]
            )),
            heartbeat_pings_rejected_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_heartbeat_pings_rejected_total",
                    "Heartbeat pings refused: unknown_monitor, invalid_body or too_large."
                ),
                &["reason"]
            )),
            heartbeat_misses_total: reg!(IntCounterVec::new(
                Opts::new(
                    "baton_heartbeat_misses_total",
                    "Missed heartbeat deadlines this daemon opened an incident for."
                ),
                &["monitor"]
            )),
            heartbeat_last_ok_timestamp_seconds: reg!(IntGaugeVec::new(
                Opts::new(
                    "baton_heartbeat_last_ok_timestamp_seconds",
                    "Unix time of each heartbeat monitor's last ok ping."
                ),
                &["monitor"]
            )),
            registry,
        }
    }

    fn observe_team(&self, event: &Event, w: &crate::domain::TeamHandoff) {
        let labels = [w.template.name.as_str(), w.template.from_team.as_str()];
        let outcome = |o: &str| {
            self.work_handoffs_total
                .with_label_values(&[labels[0], labels[1], o])
                .inc()
        };
        match &event.data {
            EventData::Initiated { completeness, .. } => {
                outcome("initiated");
                self.work_completeness
                    .with_label_values(&labels)
                    .observe(completeness.score);
            }
            EventData::Accepted { accept_ms, .. } => self
                .work_accept_seconds
                .with_label_values(&labels)
                .observe(*accept_ms as f64 / 1000.0),
            EventData::Completed { complete_ms, .. } => {
                outcome("completed");
                self.work_complete_seconds
                    .with_label_values(&labels)
                    .observe(*complete_ms as f64 / 1000.0);
            }
            EventData::Cancelled { .. } => outcome("cancelled"),
            EventData::Returned { .. } => self.work_returns_total.with_label_values(&labels).inc(),
            EventData::Rated { rating, .. } => self
                .work_rating
                .with_label_values(&labels)
                .observe(f64::from(*rating)),
            EventData::SlaMissed { stage, .. } => self
                .work_sla_missed_total
                .with_label_values(&[labels[0], stage])
                .inc(),
            _ => {}
        }
    }

    /// Feeds one stored event; `state` is the handoff after the event;
    /// `opening` is true for the events of the commit that opened it.
    pub fn observe(&self, event: &Event, state: Option<&Handoff>, opening: bool) {
        if let Some((_, notice)) = event.data.notice() {
            for rt in notice.routes.iter().filter(|rt| rt.unresolved) {
                self.unresolved_targets_total
                    .with_label_values(&[&rt.route])
                    .inc();
            }
        }
        let h = match state {
            Some(Handoff::Team(t)) => return self.observe_team(event, t),
            // Drills are real events but not production figures.
            Some(Handoff::Incident(h)) if !h.drill => h,
            _ => return,
        };
        let sev = h.severity.as_str();
        match &event.data {
            EventData::Opened {
                template, severity, ..
            } => {
                self.handoffs_opened_total
                    .with_label_values(&[severity.as_str(), template])
                    .inc();
            }
            EventData::Scored { hcs, .. } if opening => {
                // The score at open; re-scores after enrichment are not new handoffs.
                self.hcs
                    .with_label_values(&[sev, &h.template])
                    .observe(hcs.score);
                for f in &hcs.missing {
                    self.packet_missing_field_total
                        .with_label_values(&[f])
                        .inc();
                }
            }
            EventData::Held { .. } => self.gate_holds_total.with_label_values(&[sev]).inc(),
            EventData::Escalated { step, level, .. } => {
                self.escalations_total
                    .with_label_values(&[sev, &level.to_string()])
                    .inc();
                if *step == 1 {
                    self.sla_breaches_total.with_label_values(&[sev]).inc();
                }
            }
            EventData::Acknowledged {
                mtta_ms, breached, ..
            } => {
                self.mtta_seconds
                    .with_label_values(&[sev])
                    .observe(*mtta_ms as f64 / 1000.0);
                // A late ack that beat the timer's first step (or a severity
                // with no escalation levels) is a breach no step counted.
                if *breached && h.escalation_steps == 0 {
                    self.sla_breaches_total.with_label_values(&[sev]).inc();
                }
            }
            EventData::Resolved { .. } => self
                .handoffs_resolved_total
                .with_label_values(&[sev, &h.template])
                .inc(),
            _ => {}
        }
    }

    /// Whether this process has met a commit written by a newer Baton (it
    /// cannot page it, so it reports not ready until it is replaced).
    pub fn met_newer_commits(&self) -> bool {
        self.undecodable_commits_total
            .with_label_values(&[UNDECODABLE_NEWER])
            .get()
            > 0
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
