//! The list index: every handoff's place in the list order (newest first,
//! ties by id) and the few fields a list can be narrowed by, so that a page
//! of `GET /v1/handoffs` costs what it returns, and a window of stats or a
//! job costs the handoffs opened in it, not everything ever stored.
//!
//! Open and closed handoffs are kept in two maps, walked merged: a filter
//! only open handoffs can pass (`status=open`, or any status short of
//! resolved, completed and cancelled) walks the open ones alone, which stay
//! few while history grows. Other filters that keep few of many handoffs
//! pass over the whole order, copying nothing, a chunk per lock hold.
//!
//! An entry is small and allocates nothing: team and template names are
//! numbered once ([`Names`]), an entry holds the numbers. How the
//! projection keeps the index in step with its states is in `listing`.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::ops::Bound;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Handoff, Kind, Severity, Status, TeamStatus};

/// Where a handoff sits in the list: its opening time in nanoseconds, then
/// its id. The list shows keys in descending order (newest first); keyset
/// pagination on it is stable, as a handoff opened meanwhile lands before
/// the first page and never shifts later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub i64, pub Uuid);

impl Key {
    /// The key of a handoff (one opened past 2262 sorts as the newest).
    pub fn of(h: &Handoff) -> Self {
        Key(
            h.opened_at().timestamp_nanos_opt().unwrap_or(i64::MAX),
            h.id(),
        )
    }

    /// The smallest key of a moment: the list after it holds exactly the
    /// handoffs opened before `t`.
    pub fn first_at(t: DateTime<Utc>) -> Self {
        let nanos = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
        Key(nanos, Uuid::nil())
    }
}

/// The index's own form of a [`Key`], in the same order: integers compare
/// faster than a uuid's bytes, and every insert compares a dozen keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ix(i64, u64, u64);

impl From<Key> for Ix {
    fn from(Key(at, id): Key) -> Self {
        let (hi, lo) = id.as_u64_pair();
        Ix(at, hi, lo)
    }
}

impl From<Ix> for Key {
    fn from(Ix(at, hi, lo): Ix) -> Self {
        Key(at, Uuid::from_u64_pair(hi, lo))
    }
}

/// Which handoffs a list keeps; every filter set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    /// Incidents or team handoffs; both when `None`.
    pub kind: Option<Kind>,
    /// One status, or every open handoff.
    pub status: Option<StatusFilter>,
    /// Incidents of this severity (team handoffs have none).
    pub severity: Option<Severity>,
    /// An incident's team, or either team of a team handoff.
    pub team: Option<String>,
    /// The template it was opened under.
    pub template: Option<String>,
}

/// A status filter: one status in its kind's own words, or all still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Neither resolved, completed nor cancelled.
    Open,
    /// Exactly this status ([`Handoff::status_str`]).
    Is(&'static str),
}

impl Select {
    /// Every handoff.
    pub fn all() -> Self {
        Self::default()
    }

    /// Every handoff of one kind.
    pub fn kind(kind: Kind) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }

    /// Whether `h` is kept.
    pub fn matches(&self, h: &Handoff) -> bool {
        self.criteria(Some(self.team.as_deref()), Some(self.template.as_deref()))
            .is_some_and(|c| c.admits(&Fields::of(h)))
    }

    /// The same filters over the index's numbered names; `None` when a
    /// name the filter asks for was never seen, so nothing can match.
    pub(super) fn numbered(&self, names: &Names) -> Option<Criteria<Name>> {
        let number = |n: &Option<String>| match n {
            None => Some(None),
            Some(n) => names.get(n).map(Some),
        };
        self.criteria(number(&self.team), number(&self.template))
    }

    fn criteria<N>(
        &self,
        team: Option<Option<N>>,
        template: Option<Option<N>>,
    ) -> Option<Criteria<N>> {
        Some(Criteria {
            kind: self.kind,
            status: self.status,
            severity: self.severity,
            team: team?,
            template: template?,
        })
    }
}

/// A [`Select`] with its names as `N`: `&str` against a state, [`Name`]
/// against the index. [`Criteria::admits`] is the one definition of the
/// filters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Criteria<N> {
    kind: Option<Kind>,
    status: Option<StatusFilter>,
    severity: Option<Severity>,
    team: Option<N>,
    template: Option<N>,
}

impl<N: Copy + PartialEq> Criteria<N> {
    fn admits(&self, f: &Fields<N>) -> bool {
        let status_ok = match self.status {
            None => true,
            Some(StatusFilter::Open) => !f.closed,
            Some(StatusFilter::Is(s)) => f.stage.as_str() == s,
        };
        status_ok
            && self.kind.is_none_or(|k| f.stage.kind() == k)
            && self.severity.is_none_or(|s| f.severity == Some(s))
            && self
                .team
                .is_none_or(|t| f.team == t || f.to_team == Some(t))
            && self.template.is_none_or(|t| f.template == t)
    }

    /// Whether only open handoffs can match: then a walk takes the open
    /// ones alone.
    fn open_only(&self) -> bool {
        match self.status {
            Some(StatusFilter::Open) => true,
            Some(StatusFilter::Is(s)) => !is_closed_status(s),
            None => false,
        }
    }
}

/// Whether a status means closed ([`Handoff::is_closed`]): an incident is
/// closed once resolved, a team handoff once finished.
fn is_closed_status(s: &str) -> bool {
    s == Status::Resolved.as_str()
        || TeamStatus::ALL
            .iter()
            .any(|t| t.is_finished() && t.as_str() == s)
}

/// A status in its kind's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Incident(Status),
    Team(TeamStatus),
}

impl Stage {
    fn kind(self) -> Kind {
        match self {
            Stage::Incident(_) => Kind::Incident,
            Stage::Team(_) => Kind::Team,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Stage::Incident(s) => s.as_str(),
            Stage::Team(s) => s.as_str(),
        }
    }
}

/// What a filter reads of a handoff, its names as `N`: borrowed from a
/// state (`&str`) or numbered as the index holds them ([`Meta`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Fields<N> {
    stage: Stage,
    closed: bool,
    severity: Option<Severity>,
    /// An incident's team; a team handoff's sending team.
    team: N,
    /// A team handoff's receiving team.
    to_team: Option<N>,
    template: N,
}

/// The fields of one handoff as the index holds them: 16 bytes, no heap.
pub(super) type Meta = Fields<Name>;

impl<'a> Fields<&'a str> {
    fn of(h: &'a Handoff) -> Self {
        match h {
            Handoff::Incident(i) => Fields {
                stage: Stage::Incident(i.status()),
                closed: h.is_closed(),
                severity: Some(i.severity),
                team: &i.team,
                to_team: None,
                template: &i.template,
            },
            Handoff::Team(t) => Fields {
                stage: Stage::Team(t.status),
                closed: h.is_closed(),
                severity: None,
                team: &t.template.from_team,
                to_team: Some(&t.template.to_team),
                template: &t.template.name,
            },
        }
    }
}

impl Meta {
    /// The fields of `h`, its names numbered.
    pub fn numbered(h: &Handoff, names: &mut Names) -> Self {
        let f = Fields::of(h);
        Fields {
            stage: f.stage,
            closed: f.closed,
            severity: f.severity,
            team: names.number(f.team),
            to_team: f.to_team.map(|t| names.number(t)),
            template: names.number(f.template),
        }
    }
}

/// A team or template name, as [`Names`] numbers it.
pub(super) type Name = NonZeroU32;

/// The team and template names the index has seen, each stored once.
/// They are few (teams and templates) and never forgotten, as handoffs are
/// not.
#[derive(Debug, Default)]
pub(super) struct Names {
    ids: HashMap<Box<str>, Name, foldhash::fast::RandomState>,
}

impl Names {
    /// The number of `name`, given one if new.
    pub fn number(&mut self, name: &str) -> Name {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.ids.len() + 1)
            .ok()
            .and_then(Name::new)
            .expect("fewer than 4 billion names");
        self.ids.insert(name.into(), id);
        id
    }

    /// The number of `name`, if it was ever seen.
    pub fn get(&self, name: &str) -> Option<Name> {
        self.ids.get(name).copied()
    }
}

/// Every handoff held, by key, with its fields: the open ones and the
/// closed ones apart, so that a handoff is inserted once when it opens and
/// moved once when it closes, and the open ones can be walked alone.
#[derive(Debug, Default)]
pub(super) struct Index {
    open: BTreeMap<Ix, Meta>,
    closed: BTreeMap<Ix, Meta>,
}

/// A chunk of a walk: the keys kept, and where to go on from (`None` when
/// the walk has reached its end).
pub(super) struct Chunk {
    pub keys: Vec<Key>,
    pub resume: Option<Key>,
}

impl Index {
    /// Lists a handoff under `key` with `meta`, in place of its entry under
    /// `before` (its key when last listed, if it was).
    pub fn put(&mut self, before: Option<Key>, key: Key, meta: Meta) {
        let (into, other) = if meta.closed {
            (&mut self.closed, &mut self.open)
        } else {
            (&mut self.open, &mut self.closed)
        };
        if let Some(old) = before.map(Ix::from) {
            if old != Ix::from(key) {
                into.remove(&old);
            }
            other.remove(&old);
        }
        into.insert(key.into(), meta);
    }

    /// Unlists the handoff listed under `key` (evicted).
    pub fn remove(&mut self, key: Key) {
        let ix = Ix::from(key);
        if self.closed.remove(&ix).is_none() {
            self.open.remove(&ix);
        }
    }

    /// Lists many handoffs into an empty index at once; of two for one
    /// key, the later wins.
    pub fn fill(&mut self, entries: impl Iterator<Item = (Key, Meta)>) {
        debug_assert!(self.is_empty());
        let (closed, open): (Vec<_>, Vec<_>) = entries
            .map(|(k, m)| (Ix::from(k), m))
            .partition(|(_, m)| m.closed);
        // Collecting sorts (stably, keeping the last of equal keys) and
        // builds the tree in bulk, without searching it.
        self.open = open.into_iter().collect();
        self.closed = closed.into_iter().collect();
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.is_empty()
    }

    /// Numbers of open and closed handoffs listed.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.open.len(), self.closed.len())
    }

    /// Up to `want` keys `criteria` keeps, newest first, below `after` and
    /// not below `floor`, looking at no more than `budget` entries.
    pub fn scan(
        &self,
        criteria: &Criteria<Name>,
        after: Option<Key>,
        floor: Option<Key>,
        want: usize,
        budget: usize,
    ) -> Chunk {
        let (after, floor) = (after.map(Ix::from), floor.map(Ix::from));
        if floor.zip(after).is_some_and(|(f, a)| f >= a) {
            return Chunk {
                keys: vec![],
                resume: None,
            };
        }
        let range = (
            floor.map_or(Bound::Unbounded, Bound::Included),
            after.map_or(Bound::Unbounded, Bound::Excluded),
        );
        let mut open = self.open.range(range).rev().peekable();
        let mut closed = self.closed.range(range).rev().peekable();
        let open_only = criteria.open_only();
        let mut keys = Vec::new();
        let mut seen = 0;
        loop {
            // The two maps merged, newest first.
            let next = match (open.peek(), closed.peek()) {
                (Some(_), _) if open_only => open.next(),
                (Some(o), Some(c)) if o.0 < c.0 => closed.next(),
                (Some(_), _) => open.next(),
                (None, Some(_)) if !open_only => closed.next(),
                _ => None,
            };
            let Some((ix, meta)) = next else {
                return Chunk { keys, resume: None };
            };
            seen += 1;
            if criteria.admits(meta) {
                keys.push(Key::from(*ix));
            }
            if keys.len() == want || seen == budget {
                return Chunk {
                    keys,
                    resume: Some(Key::from(*ix)),
                };
            }
        }
    }
}
