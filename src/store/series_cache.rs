//! Decoded production windows kept in memory between reads.
//!
//! A live status reads its SLI's whole period (40,320 one-minute windows over 28 days) on every
//! request; reading and decoding them from the database is most of a status's time. Each
//! metric's latest read is kept here with the series' **revision**, a token that every write
//! of the metric's windows changes in the same transaction (`sli_series.revision`). A read
//! first asks the database for the revision (one primary-key lookup); when it matches, the
//! kept windows serve any range they cover. The database stays the source of truth: a write by
//! this process or any other (PostgreSQL with several servers) changes the revision, and the
//! next read goes to the database.
//!
//! A kept read covers `[from, to)`; when the series had no window at or after `to` at that
//! revision (`through_latest`), it also covers any later `to`, because windows written since
//! would have changed the revision. A write also records the revision it replaced and the
//! earliest window start it wrote (`previous_revision`, `changed_from`): a kept read one write
//! behind serves the windows before that start, and only the rest is read again (a series
//! pushed every minute and a status polled more often read a few windows per status). Entries
//! are evicted least recently used beyond a budget of bytes (`SLOPROOF_SERIES_CACHE_MB`; 0
//! turns the cache off). One read is kept per metric; a read of an old range does not displace
//! a read of the latest windows at the same revision.
//!
//! Every server writing a database must change the revision (servers from before migration
//! 000010 do not): during a rolling upgrade, turn the cache off until no older server writes.

use std::collections::HashMap;
use std::ops::{Deref, Range};
use std::sync::{Arc, Mutex};

use crate::domain::series::{SeriesWindow, WindowData};

/// Windows of one read: a range of a shared, immutable vector.
#[derive(Clone)]
pub struct Windows {
    data: Arc<Vec<SeriesWindow>>,
    range: Range<usize>,
}

impl Windows {
    pub fn owned(windows: Vec<SeriesWindow>) -> Windows {
        let range = 0..windows.len();
        Windows {
            data: Arc::new(windows),
            range,
        }
    }

    /// The windows starting in `[from, to)` (sorted by start).
    fn slice(data: &Arc<Vec<SeriesWindow>>, from: i64, to: i64) -> Windows {
        let lo = data.partition_point(|w| w.start < from);
        let hi = data.partition_point(|w| w.start < to).max(lo);
        Windows {
            data: Arc::clone(data),
            range: lo..hi,
        }
    }
}

impl Deref for Windows {
    type Target = [SeriesWindow];
    fn deref(&self) -> &[SeriesWindow] {
        &self.data[self.range.clone()]
    }
}

struct Entry {
    revision: i64,
    from: i64,
    to: i64,
    through_latest: bool,
    data: Arc<Vec<SeriesWindow>>,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<i64, Entry>,
    bytes: usize,
    clock: u64,
}

/// A series' revision: the current token and, when a write changed it, the token before that
/// write with the earliest window start it wrote.
#[derive(Debug, Clone, Copy)]
pub struct Revision {
    pub current: i64,
    pub previous: Option<(i64, i64)>,
}

/// What the cache gives for a read.
pub enum Lookup {
    /// The windows, as kept.
    Hit(Windows),
    /// The kept windows before this start (one write behind): read the rest from the database.
    ChangedFrom(i64, Windows),
    Miss,
}

/// Windows read from the database for `[from, to)` (those from some start on).
pub struct Read {
    pub from: i64,
    pub to: i64,
    /// No window at or after `to` existed at the revision read.
    pub through_latest: bool,
    pub windows: Vec<SeriesWindow>,
}

/// The cache of one database (held by [`super::Db`]).
pub struct SeriesCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// Approximate heap bytes of decoded windows.
fn size(windows: &[SeriesWindow]) -> usize {
    windows
        .iter()
        .map(|w| {
            std::mem::size_of::<SeriesWindow>()
                + match &w.data {
                    WindowData::Histogram { cumulative, .. } => cumulative.capacity() * 8,
                    WindowData::Events { .. } | WindowData::Values { .. } => 0,
                }
        })
        .sum()
}

impl SeriesCache {
    /// A cache holding at most `capacity` bytes of windows (0: nothing is kept).
    pub fn new(capacity: usize) -> SeriesCache {
        SeriesCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves at worst a stale entry whose revision is
        // checked on every read: the data stays usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the kept read of `metric` gives for `[from, to)` at `revision`.
    pub fn get(&self, metric: i64, revision: Revision, from: i64, to: i64) -> Lookup {
        if self.capacity == 0 {
            return Lookup::Miss;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let Some(e) = inner.entries.get_mut(&metric) else {
            return Lookup::Miss;
        };
        let covers = |until: i64| e.from <= from && (until <= e.to || e.through_latest);
        if e.revision == revision.current && covers(to) {
            e.used = clock;
            return Lookup::Hit(Windows::slice(&e.data, from, to));
        }
        match revision.previous {
            Some((previous, changed_from))
                if e.revision == previous && covers(changed_from.min(to)) =>
            {
                e.used = clock;
                Lookup::ChangedFrom(
                    changed_from,
                    Windows::slice(&e.data, from, changed_from.min(to)),
                )
            }
            _ => Lookup::Miss,
        }
    }

    /// Keeps a read of `metric`'s windows in `[from, to)` at `revision` and returns them: `read`
    /// holds the windows from `read_from` on, `kept` (from [`Lookup::ChangedFrom`]) those before.
    pub fn put(&self, metric: i64, revision: i64, read: Read, kept: Option<Windows>) -> Windows {
        let w = match kept.filter(|k| !k.is_empty()) {
            Some(k) => {
                let mut all = Vec::with_capacity(k.len() + read.windows.len());
                all.extend_from_slice(&k);
                all.extend(read.windows);
                Windows::owned(all)
            }
            None => Windows::owned(read.windows),
        };
        let bytes = size(&w);
        if self.capacity == 0 || bytes > self.capacity / 2 {
            return w;
        }
        let mut inner = self.lock();
        // A read of an old range (a replay, a status series) does not displace the kept read
        // of the series' latest windows at the same revision, which live statuses use.
        let keep_live = inner
            .entries
            .get(&metric)
            .is_some_and(|e| e.revision == revision && e.through_latest && !read.through_latest);
        if keep_live {
            return w;
        }
        if let Some(old) = inner.entries.remove(&metric) {
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.capacity {
            let Some((&oldest, _)) = inner.entries.iter().min_by_key(|(_, e)| e.used) else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
        }
        inner.clock += 1;
        let used = inner.clock;
        inner.bytes += bytes;
        inner.entries.insert(
            metric,
            Entry {
                revision,
                from: read.from,
                to: read.to,
                through_latest: read.through_latest,
                data: Arc::clone(&w.data),
                bytes,
                used,
            },
        );
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(starts: &[i64]) -> Vec<SeriesWindow> {
        starts
            .iter()
            .map(|&start| SeriesWindow {
                row: 0,
                start,
                data: WindowData::Events {
                    good: 1.0,
                    total: 2.0,
                },
            })
            .collect()
    }

    fn read((from, to): (i64, i64), through_latest: bool, starts: &[i64]) -> Read {
        Read {
            from,
            to,
            through_latest,
            windows: events(starts),
        }
    }

    fn at(current: i64) -> Revision {
        Revision {
            current,
            previous: None,
        }
    }

    fn starts(l: Lookup) -> Option<Vec<i64>> {
        match l {
            Lookup::Hit(w) => Some(w.iter().map(|w| w.start).collect()),
            _ => None,
        }
    }

    #[test]
    fn a_kept_read_serves_the_ranges_it_covers_at_its_revision() {
        let cache = SeriesCache::new(1 << 20);
        cache.put(7, 42, read((0, 300), true, &[0, 60, 120, 180]), None);
        assert_eq!(starts(cache.get(7, at(42), 60, 180)), Some(vec![60, 120]));
        // Later ends are covered: no window was at or after 300 at this revision.
        assert_eq!(starts(cache.get(7, at(42), 120, 900)), Some(vec![120, 180]));
        // Another revision, an earlier start, another metric: the database is read.
        assert!(starts(cache.get(7, at(43), 60, 180)).is_none());
        assert!(starts(cache.get(7, at(42), -60, 180)).is_none());
        assert!(starts(cache.get(8, at(42), 60, 180)).is_none());
        // A read that stopped before the series' end covers only up to its end.
        cache.put(7, 43, read((0, 120), false, &[0, 60]), None);
        assert!(starts(cache.get(7, at(43), 0, 180)).is_none());
        assert_eq!(starts(cache.get(7, at(43), 0, 120)), Some(vec![0, 60]));
    }

    #[test]
    fn one_write_behind_only_the_windows_from_its_start_are_read_again() {
        let cache = SeriesCache::new(1 << 20);
        cache.put(7, 1, read((0, 300), true, &[0, 60, 120]), None);
        let after_write = Revision {
            current: 2,
            previous: Some((1, 120)),
        };
        let Lookup::ChangedFrom(start, kept) = cache.get(7, after_write, 60, 360) else {
            panic!("a read one write behind gives its windows before the write");
        };
        assert_eq!(start, 120);
        assert_eq!(kept.iter().map(|w| w.start).collect::<Vec<_>>(), vec![60]);
        let w = cache.put(7, 2, read((60, 360), true, &[120, 180, 240]), Some(kept));
        assert_eq!(
            w.iter().map(|w| w.start).collect::<Vec<_>>(),
            vec![60, 120, 180, 240]
        );
        assert_eq!(
            starts(cache.get(7, at(2), 60, 360)),
            Some(vec![60, 120, 180, 240])
        );
        // Two writes behind: the kept read is of no use.
        let two_behind = Revision {
            current: 4,
            previous: Some((3, 240)),
        };
        assert!(matches!(cache.get(7, two_behind, 60, 360), Lookup::Miss));
    }

    #[test]
    fn a_read_of_an_old_range_keeps_the_latest_windows() {
        let cache = SeriesCache::new(1 << 20);
        cache.put(7, 1, read((600, 900), true, &[600, 660]), None);
        let old = cache.put(7, 1, read((0, 300), false, &[0, 60]), None);
        assert_eq!(old.len(), 2);
        assert_eq!(starts(cache.get(7, at(1), 600, 1200)), Some(vec![600, 660]));
    }

    #[test]
    fn entries_beyond_the_budget_are_evicted_least_recently_used() {
        let one = size(&events(&[0, 60]));
        let cache = SeriesCache::new(2 * one + one / 2);
        cache.put(1, 1, read((0, 120), true, &[0, 60]), None);
        cache.put(2, 1, read((0, 120), true, &[0, 60]), None);
        assert!(starts(cache.get(1, at(1), 0, 120)).is_some()); // 1 is now the more recent
        cache.put(3, 1, read((0, 120), true, &[0, 60]), None);
        assert!(starts(cache.get(2, at(1), 0, 120)).is_none());
        assert!(starts(cache.get(1, at(1), 0, 120)).is_some());
        assert!(starts(cache.get(3, at(1), 0, 120)).is_some());
        assert!(starts(SeriesCache::new(0).get(1, at(1), 0, 120)).is_none());
    }
}
