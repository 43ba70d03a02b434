//! The registry's search index: for every elder, the few columns a search filters and sorts on, held
//! in the server's memory (about 45 bytes a person, ~20 MB for a 400k county). A search scans these
//! arrays instead of the table, so every filter combination costs the same few milliseconds, then
//! reads only the page's rows from the database (again bounded by the caller's scope).
//!
//! It follows the database through `registry_head` (see `MIGRATION_CHANGE_SEQ`): before answering, a
//! search compares the head with the number the index was built at; small changes are fetched by
//! `change_seq` and kept in an overlay beside the sorted base, large ones rebuild the base. Writes by
//! other processes (the command line, a second server) are picked up the same way.

use super::model::{ECONOMIC_STATUS, ELDER_STATUS, LIVING_STATUS};
use crate::platform::db::Db;
use futures_util::TryStreamExt;
use sqlx::Row;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Changed rows kept beside the base; beyond this the base is rebuilt from the database.
const OVERLAY_MAX: usize = 5_000;

/// With the current assessment's level from `elder_ability` (owned by the assessment module).
const COLS: &str = "e.id, e.name, e.birth_date, e.residence_region, e.living_status, e.economic_status, e.status, \
     e.change_seq, ea.level, ea.valid_until";

/// `level` of a person without any assessment.
const NO_ASSESSMENT: u8 = u8::MAX;

/// What a search asks for, already validated and in the index's terms (see `store::Filter`).
#[derive(Debug, Clone)]
pub struct Query {
    pub lo: u64,
    pub hi: u64,
    /// Birth dates as yyyymmdd, inclusive.
    pub birth_min: Option<u32>,
    pub birth_max: Option<u32>,
    /// ASCII-lower-cased fragment (SQLite's LIKE and PostgreSQL's ILIKE ignore ASCII case).
    pub name: Option<String>,
    pub living: Option<u8>,
    pub economic: Option<u8>,
    pub status: Option<u8>,
    /// 0–4: that level from a valid assessment; `store::NO_LEVEL`: no valid assessment.
    pub ability_level: Option<u8>,
    /// Today as yyyymmdd, for validity.
    pub today: u32,
    pub sort: Sort,
    pub offset: usize,
    pub limit: usize,
    /// Counting may stop once more than `cap` matches are found.
    pub cap: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// residence_region, birth_date, id
    Region,
    /// name (byte order), id
    Name,
    /// birth_date, id
    Birth,
    /// birth_date descending, id
    BirthDesc,
}

pub struct Hits {
    pub ids: Vec<String>,
    /// Matches counted; exact when ≤ cap.
    pub counted: usize,
}

/// One person's searchable columns.
#[derive(Debug, Clone)]
struct Entry {
    id: u128,
    region: u64,
    birth: u32,
    name: Box<str>,
    living: u8,
    economic: u8,
    status: u8,
    /// The current assessment's level (or [`NO_ASSESSMENT`]) and last valid day (yyyymmdd, 0 if none).
    level: u8,
    valid: u32,
}

/// Base arrays, one slot per person, sorted by (region, birth, id) so a region subtree is one slice.
#[derive(Default)]
struct Base {
    id: Vec<u128>,
    region: Vec<u64>,
    birth: Vec<u32>,
    name_off: Vec<u32>,
    name_len: Vec<u8>,
    /// First 8 bytes of the name, big-endian: sorting by name compares these first.
    name_key: Vec<u64>,
    arena: Vec<u8>,
    living: Vec<u8>,
    economic: Vec<u8>,
    status: Vec<u8>,
    level: Vec<u8>,
    valid: Vec<u32>,
    /// Superseded by an overlay entry.
    dead: Vec<bool>,
    /// Character → slots whose name contains it (ascending), to start a name search from the
    /// rarest character of the fragment.
    postings: HashMap<char, Vec<u32>>,
    /// Status value → slots holding it (ascending): living, economic, elder status.
    living_post: Vec<Vec<u32>>,
    economic_post: Vec<Vec<u32>>,
    status_post: Vec<Vec<u32>>,
    /// Slots in (name, id) and (birth, id) order, walked for those sorts over large sets.
    by_name: Vec<u32>,
    by_birth: Vec<u32>,
    /// (id, slot) sorted by id, to find a changed person's slot.
    by_id: Vec<(u128, u32)>,
}

struct Index {
    seq: i64,
    base: Base,
    /// Changed or new people since the base was built, sorted like the base.
    overlay: Vec<Entry>,
}

#[derive(Default)]
pub struct SearchIndex {
    inner: tokio::sync::RwLock<Option<Index>>,
    refresh: tokio::sync::Mutex<()>,
}

fn code(list: &[(&str, &str)], v: Option<&str>) -> u8 {
    v.and_then(|v| list.iter().position(|(c, _)| *c == v))
        .map_or(0, |i| i as u8 + 1)
}

/// Index code of a status value (0 = none), the same numbering the index stores.
pub fn living_code(v: &str) -> u8 {
    code(LIVING_STATUS, Some(v))
}
pub fn economic_code(v: &str) -> u8 {
    code(ECONOMIC_STATUS, Some(v))
}
pub fn status_code(v: &str) -> u8 {
    code(ELDER_STATUS, Some(v))
}

/// "1950-03-07" → 19500307.
pub fn date_num(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    digits.parse().ok()
}

fn name_key(name: &str) -> u64 {
    let mut k = [0u8; 8];
    let b = name.as_bytes();
    let n = b.len().min(8);
    k[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(k)
}

fn entry_of(r: &sqlx::any::AnyRow) -> Result<(Entry, i64), sqlx::Error> {
    let bad = |what: &str| sqlx::Error::Decode(format!("search index: bad {what}").into());
    let id: String = r.get(0);
    let name: String = r.get(1);
    let birth: String = r.get(2);
    let region: String = r.get(3);
    let living: Option<String> = r.get(4);
    let economic: Option<String> = r.get(5);
    let status: String = r.get(6);
    let level: Option<i64> = r.get(8);
    let valid: Option<String> = r.get(9);
    Ok((
        Entry {
            id: uuid::Uuid::parse_str(&id).map_err(|_| bad("id"))?.as_u128(),
            region: region.parse().map_err(|_| bad("region"))?,
            birth: date_num(&birth).ok_or_else(|| bad("birth_date"))?,
            name: name.into_boxed_str(),
            living: code(LIVING_STATUS, living.as_deref()),
            economic: code(ECONOMIC_STATUS, economic.as_deref()),
            status: code(ELDER_STATUS, Some(&status)),
            level: level
                .and_then(|l| u8::try_from(l).ok())
                .unwrap_or(NO_ASSESSMENT),
            valid: valid.as_deref().and_then(date_num).unwrap_or(0),
        },
        r.get(7),
    ))
}

fn order_key(e: &Entry) -> (u64, u32, u128) {
    (e.region, e.birth, e.id)
}

impl Base {
    fn build(mut v: Vec<Entry>) -> Base {
        v.sort_unstable_by_key(order_key);
        let n = v.len();
        let mut b = Base {
            id: Vec::with_capacity(n),
            region: Vec::with_capacity(n),
            birth: Vec::with_capacity(n),
            name_off: Vec::with_capacity(n),
            name_len: Vec::with_capacity(n),
            name_key: Vec::with_capacity(n),
            arena: Vec::with_capacity(n * 9),
            living: Vec::with_capacity(n),
            economic: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            level: Vec::with_capacity(n),
            valid: Vec::with_capacity(n),
            dead: vec![false; n],
            postings: HashMap::new(),
            living_post: vec![vec![]; LIVING_STATUS.len() + 1],
            economic_post: vec![vec![]; ECONOMIC_STATUS.len() + 1],
            status_post: vec![vec![]; ELDER_STATUS.len() + 1],
            by_name: (0..n as u32).collect(),
            by_birth: (0..n as u32).collect(),
            by_id: Vec::with_capacity(n),
        };
        for (slot, e) in v.into_iter().enumerate() {
            let slot = slot as u32;
            b.id.push(e.id);
            b.region.push(e.region);
            b.birth.push(e.birth);
            // Names are short; anything longer than 255 bytes is cut for matching, not for display.
            let nb = &e.name.as_bytes()[..e.name.len().min(255)];
            b.name_off.push(b.arena.len() as u32);
            b.name_len.push(nb.len() as u8);
            b.arena.extend_from_slice(nb);
            b.name_key.push(name_key(&e.name));
            b.living.push(e.living);
            b.economic.push(e.economic);
            b.status.push(e.status);
            b.level.push(e.level);
            b.valid.push(e.valid);
            let mut seen: Vec<char> = Vec::with_capacity(4);
            for c in e.name.chars().map(|c| c.to_ascii_lowercase()) {
                if !seen.contains(&c) {
                    seen.push(c);
                    b.postings.entry(c).or_default().push(slot);
                }
            }
            b.living_post[e.living as usize].push(slot);
            b.economic_post[e.economic as usize].push(slot);
            b.status_post[e.status as usize].push(slot);
            b.by_id.push((e.id, slot));
        }
        b.by_id.sort_unstable();
        let mut by_name = std::mem::take(&mut b.by_name);
        by_name.sort_unstable_by(|x, y| {
            let (x, y) = (*x as usize, *y as usize);
            b.name(x).cmp(b.name(y)).then(b.id[x].cmp(&b.id[y]))
        });
        b.by_name = by_name;
        let mut by_birth = std::mem::take(&mut b.by_birth);
        by_birth.sort_unstable_by_key(|x| (b.birth[*x as usize], b.id[*x as usize]));
        b.by_birth = by_birth;
        b
    }

    fn name(&self, i: usize) -> &[u8] {
        let o = self.name_off[i] as usize;
        &self.arena[o..o + self.name_len[i] as usize]
    }

    fn slot_of(&self, id: u128) -> Option<usize> {
        self.by_id
            .binary_search_by_key(&id, |x| x.0)
            .ok()
            .map(|i| self.by_id[i].1 as usize)
    }
}

fn contains(hay: &[u8], needle: &[u8], fold: bool) -> bool {
    if fold {
        let h = hay.to_ascii_lowercase();
        memchr::memmem::find(&h, needle).is_some()
    } else {
        memchr::memmem::find(hay, needle).is_some()
    }
}

/// A match: a base slot or an overlay position, with its sort key for the non-region orders.
#[derive(Clone, Copy)]
enum Hit {
    Base(u32),
    Over(u32),
}

impl Index {
    fn view(&self, h: Hit) -> (u128, u32, &[u8]) {
        match h {
            Hit::Base(i) => {
                let i = i as usize;
                (self.base.id[i], self.base.birth[i], self.base.name(i))
            }
            Hit::Over(i) => {
                let e = &self.overlay[i as usize];
                (e.id, e.birth, e.name.as_bytes())
            }
        }
    }

    fn apply(&mut self, changed: Vec<Entry>) {
        for e in changed {
            if let Some(s) = self.base.slot_of(e.id) {
                self.base.dead[s] = true;
            }
            if let Some(p) = self.overlay.iter().position(|o| o.id == e.id) {
                self.overlay.remove(p);
            }
            let at = self
                .overlay
                .partition_point(|o| order_key(o) < order_key(&e));
            self.overlay.insert(at, e);
        }
    }

    fn query(&self, q: &Query) -> Hits {
        let b = &self.base;
        let needle = q.name.as_deref().map(str::as_bytes);
        let fold = needle.is_some_and(|n| n.iter().any(u8::is_ascii_alphabetic));
        let level_fits = |level: u8, valid: u32| match q.ability_level {
            None => true,
            Some(want) => {
                let has = level <= 4 && valid >= q.today;
                if want <= 4 {
                    has && level == want
                } else {
                    !has
                }
            }
        };
        let fits = |birth: u32, living: u8, economic: u8, status: u8, name: &[u8]| {
            q.birth_min.is_none_or(|m| birth >= m)
                && q.birth_max.is_none_or(|m| birth <= m)
                && q.living.is_none_or(|v| v == living)
                && q.economic.is_none_or(|v| v == economic)
                && q.status.is_none_or(|v| v == status)
                && needle.is_none_or(|n| contains(name, n, fold))
        };
        let base_fits = |i: usize| {
            !b.dead[i]
                && level_fits(b.level[i], b.valid[i])
                && fits(
                    b.birth[i],
                    b.living[i],
                    b.economic[i],
                    b.status[i],
                    b.name(i),
                )
        };
        let in_region = |i: usize| b.region[i] >= q.lo && b.region[i] <= q.hi;
        // The region subtree is one slice of the base.
        let a = b.region.partition_point(|r| *r < q.lo);
        let z = b.region.partition_point(|r| *r <= q.hi);
        // Posting lists that every match must be in, cut to the slice; the two shortest are
        // intersected to give the candidates, which are then checked against every condition.
        let mut lists: Vec<&[u32]> = vec![];
        if let Some(n) = q.name.as_deref() {
            for c in n.chars() {
                lists.push(b.postings.get(&c).map_or(&[][..], |v| v.as_slice()));
            }
        }
        for (v, post) in [
            (q.living, &b.living_post),
            (q.economic, &b.economic_post),
            (q.status, &b.status_post),
        ] {
            if let Some(v) = v {
                lists.push(post.get(v as usize).map_or(&[][..], |v| v.as_slice()));
            }
        }
        let cut = |p: &'_ [u32]| -> std::ops::Range<usize> {
            let s = p.partition_point(|x| (*x as usize) < a);
            s..s + p[s..].partition_point(|x| (*x as usize) < z)
        };
        let mut lists: Vec<&[u32]> = lists.into_iter().map(|p| &p[cut(p)]).collect();
        lists.sort_by_key(|p| p.len());
        let candidates: Option<Vec<u32>> = match lists.as_slice() {
            [] => None,
            [one, ..] if one.len() >= z - a => None,
            [one] => Some(one.to_vec()),
            [one, two, ..] => Some(intersect(one, two)),
        };
        let estimate = candidates.as_ref().map_or(z - a, Vec::len);
        let over: Vec<Hit> = self
            .overlay
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.region >= q.lo
                    && e.region <= q.hi
                    && level_fits(e.level, e.valid)
                    && fits(e.birth, e.living, e.economic, e.status, e.name.as_bytes())
            })
            .map(|(i, _)| Hit::Over(i as u32))
            .collect();
        let want = q.offset + q.limit;
        let stop = want.max(q.cap + 1);
        let cmp = |x: &Hit, y: &Hit| -> Ordering {
            let (xi, xb, xn) = self.view(*x);
            let (yi, yb, yn) = self.view(*y);
            match q.sort {
                Sort::Region => self
                    .region_of(*x)
                    .cmp(&self.region_of(*y))
                    .then(xb.cmp(&yb))
                    .then(xi.cmp(&yi)),
                Sort::Name => xn.cmp(yn).then(xi.cmp(&yi)),
                Sort::Birth => xb.cmp(&yb).then(xi.cmp(&yi)),
                Sort::BirthDesc => yb.cmp(&xb).then(xi.cmp(&yi)),
            }
        };
        // Base matches in the requested order, lazily: candidates or the slice are already in
        // region order; for the other orders a large set is walked through the sorted
        // permutation (stopping early), a small one is collected and partly sorted.
        // Base matches beyond those yielded, already counted (the collected case).
        let mut tail = 0;
        let ordered: Box<dyn Iterator<Item = Hit> + '_> = match (q.sort, candidates) {
            (Sort::Region, Some(c)) => Box::new(
                c.into_iter()
                    .filter(move |i| base_fits(*i as usize))
                    .map(Hit::Base),
            ),
            (Sort::Region, None) => Box::new(
                (a..z)
                    .filter(move |i| base_fits(*i))
                    .map(|i| Hit::Base(i as u32)),
            ),
            (sort, _) if estimate > b.id.len() / WALK_FRACTION => {
                let fit = move |i: &u32| {
                    let i = *i as usize;
                    in_region(i) && base_fits(i)
                };
                match sort {
                    Sort::Name => Box::new(b.by_name.iter().copied().filter(fit).map(Hit::Base)),
                    Sort::Birth => Box::new(b.by_birth.iter().copied().filter(fit).map(Hit::Base)),
                    _ => Box::new(BirthDescWalk::new(b).filter(fit).map(Hit::Base)),
                }
            }
            (_, c) => {
                let mut all: Vec<Hit> = match c {
                    Some(c) => c
                        .into_iter()
                        .filter(|i| base_fits(*i as usize))
                        .map(Hit::Base)
                        .collect(),
                    None => (a..z)
                        .filter(|i| base_fits(*i))
                        .map(|i| Hit::Base(i as u32))
                        .collect(),
                };
                if want < all.len() {
                    tail = all.len() - want;
                    all.select_nth_unstable_by(want, cmp);
                    all.truncate(want);
                }
                all.sort_unstable_by(cmp);
                Box::new(all.into_iter())
            }
        };
        // Merge with the overlay's matches (sorted the same way) and cut the page.
        let mut over = over;
        over.sort_unstable_by(cmp);
        let mut base_hits = ordered.peekable();
        let mut over_hits = over.into_iter().peekable();
        let mut page = Vec::with_capacity(q.limit);
        let mut counted = 0;
        while counted < stop {
            let next = match (base_hits.peek(), over_hits.peek()) {
                (Some(x), Some(y)) if cmp(y, x) == Ordering::Less => over_hits.next(),
                (Some(_), _) => base_hits.next(),
                (None, Some(_)) => over_hits.next(),
                (None, None) => None,
            };
            let Some(h) = next else { break };
            if counted >= q.offset && counted < want {
                page.push(h);
            }
            counted += 1;
        }
        counted += tail;
        Hits {
            ids: page
                .iter()
                .map(|h| uuid::Uuid::from_u128(self.view(*h).0).to_string())
                .collect(),
            counted,
        }
    }

    fn region_of(&self, h: Hit) -> u64 {
        match h {
            Hit::Base(i) => self.base.region[i as usize],
            Hit::Over(i) => self.overlay[i as usize].region,
        }
    }
}

/// When the candidates are more than this share of everyone (1/5), the name and birth orders walk
/// their sorted permutation and stop early instead of sorting the candidates.
const WALK_FRACTION: usize = 5;

/// Slots by birth date descending, ties by id ascending (as the SQL orders them): the birth
/// permutation backwards, one group of equal dates at a time.
struct BirthDescWalk<'a> {
    b: &'a Base,
    end: usize,
    group: Vec<u32>,
}

impl<'a> BirthDescWalk<'a> {
    fn new(b: &'a Base) -> Self {
        BirthDescWalk {
            b,
            end: b.by_birth.len(),
            group: vec![],
        }
    }
}

impl Iterator for BirthDescWalk<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.group.is_empty() {
            if self.end == 0 {
                return None;
            }
            let p = &self.b.by_birth[..self.end];
            let d = self.b.birth[p[p.len() - 1] as usize];
            let start = p.partition_point(|s| self.b.birth[*s as usize] < d);
            self.group.extend(p[start..].iter().rev());
            self.end = start;
        }
        self.group.pop()
    }
}

/// Sorted intersection of two ascending lists, galloping through the longer one.
fn intersect(short: &[u32], long: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(short.len().min(long.len()));
    let mut rest = long;
    for x in short {
        let mut step = 1;
        while step < rest.len() && rest[step] < *x {
            step *= 2;
        }
        let lim = (step + 1).min(rest.len());
        let k = rest[..lim].partition_point(|y| y < x);
        rest = &rest[k..];
        if rest.first() == Some(x) {
            out.push(*x);
        }
        if rest.is_empty() {
            break;
        }
    }
    out
}

async fn head(db: &Db) -> Result<i64, sqlx::Error> {
    Ok(sqlx::query("SELECT seq FROM registry_head WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .get(0))
}

async fn fetch(db: &Db, since: Option<i64>) -> Result<Vec<Entry>, sqlx::Error> {
    // Changed people: their own row changed, or their current assessment did.
    let sql = match since {
        Some(_) => format!(
            "SELECT {COLS} FROM elder e LEFT JOIN elder_ability ea ON ea.elder_id = e.id WHERE e.change_seq > $1 \
             UNION ALL SELECT {COLS} FROM elder_ability ea JOIN elder e ON e.id = ea.elder_id \
             WHERE ea.change_seq > $1 AND e.change_seq <= $1"
        ),
        None => {
            format!("SELECT {COLS} FROM elder e LEFT JOIN elder_ability ea ON ea.elder_id = e.id")
        }
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(s) = since {
        q = q.bind(s);
    }
    let mut rows = q.fetch(&db.pool);
    let mut out = vec![];
    while let Some(r) = rows.try_next().await? {
        out.push(entry_of(&r)?.0);
    }
    Ok(out)
}

/// The assessment due list asked of the index (see `assessment::store::due`): who in a region
/// range is due, in the list's order — group 0 the aged without a valid assessment, group 1 those
/// with an open reassessment trigger, group 2 those whose validity runs out soon — each group in
/// (region, birth date, id) order, the base order, so no sorting is needed.
pub struct DueQuery {
    pub lo: u64,
    pub hi: u64,
    /// yyyymmdd
    pub today: u32,
    /// The "missing" group counts people born on or before this day (the age threshold).
    pub born_by: u32,
    /// Validity ending before this day counts as "soon".
    pub soon: u32,
    /// Which of the three groups are wanted.
    pub groups: [bool; 3],
    /// People with an open trigger (read from the database: a handful).
    pub triggered: std::collections::HashSet<u128>,
    /// Index code of the elder status `active`.
    pub active: u8,
    /// A name fragment, lowercased.
    pub name: Option<String>,
    /// Only these people (assigned to the caller); none of these (assigned to anyone).
    pub only: Option<std::collections::HashSet<u128>>,
    pub except: Option<std::collections::HashSet<u128>>,
    pub offset: usize,
    pub limit: usize,
    pub cap: usize,
}

/// The columns the due list needs of one person.
#[derive(Clone, Copy)]
struct DueView {
    id: u128,
    birth: u32,
    status: u8,
    valid: u32,
    /// The name holds the fragment asked for (true when none was).
    named: bool,
}

/// Merge two iterators sorted by key into one sorted stream.
fn merge_sorted<K: Ord, T>(
    a: impl Iterator<Item = (K, T)>,
    b: impl Iterator<Item = (K, T)>,
) -> impl Iterator<Item = T> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let take_b = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => y.0 < x.0,
            (None, Some(_)) => true,
            _ => false,
        };
        if take_b { b.next() } else { a.next() }.map(|(_, t)| t)
    })
}

impl Index {
    /// Everyone live in a region range, base and overlay merged, in (region, birth, id) order.
    fn in_order<'a>(
        &'a self,
        lo: u64,
        hi: u64,
        name: Option<&'a [u8]>,
    ) -> impl Iterator<Item = DueView> + 'a {
        let fold = name.is_some_and(|n| n.iter().any(u8::is_ascii_alphabetic));
        let named = move |hay: &[u8]| name.is_none_or(|n| contains(hay, n, fold));
        let b = &self.base;
        let a = b.region.partition_point(|r| *r < lo);
        let z = b.region.partition_point(|r| *r <= hi);
        let base = (a..z).filter(move |i| !b.dead[*i]).map(move |i| {
            (
                (b.region[i], b.birth[i], b.id[i]),
                DueView {
                    id: b.id[i],
                    birth: b.birth[i],
                    status: b.status[i],
                    valid: b.valid[i],
                    named: named(b.name(i)),
                },
            )
        });
        let over = self
            .overlay
            .iter()
            .filter(move |e| e.region >= lo && e.region <= hi)
            .map(move |e| {
                (
                    order_key(e),
                    DueView {
                        id: e.id,
                        birth: e.birth,
                        status: e.status,
                        valid: e.valid,
                        named: named(e.name.as_bytes()),
                    },
                )
            });
        merge_sorted(base, over)
    }

    fn due(&self, q: &DueQuery) -> Hits {
        let group = |v: &DueView| -> Option<usize> {
            if v.status != q.active
                || !v.named
                || q.only.as_ref().is_some_and(|s| !s.contains(&v.id))
                || q.except.as_ref().is_some_and(|s| s.contains(&v.id))
            {
                return None;
            }
            if v.valid < q.today && v.birth <= q.born_by {
                Some(0)
            } else if q.triggered.contains(&v.id) {
                Some(1)
            } else if v.valid >= q.today && v.valid < q.soon {
                Some(2)
            } else {
                None
            }
        };
        let want = q.offset + q.limit;
        let stop = want.max(q.cap + 1);
        let mut ids = vec![];
        let mut counted = 0;
        for g in (0..3).filter(|g| q.groups[*g]) {
            for v in self.in_order(q.lo, q.hi, q.name.as_deref().map(str::as_bytes)) {
                if counted >= stop {
                    break;
                }
                if group(&v) == Some(g) {
                    if counted >= q.offset && counted < want {
                        ids.push(uuid::Uuid::from_u128(v.id).to_string());
                    }
                    counted += 1;
                }
            }
        }
        Hits { ids, counted }
    }
}

impl SearchIndex {
    /// Bring the index up to the database's current head (build it on first use).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let h = head(db).await?;
        if self.inner.read().await.as_ref().is_some_and(|i| i.seq >= h) {
            return Ok(());
        }
        let _one = self.refresh.lock().await;
        let h = head(db).await?;
        let (seq, overlay_len) = match self.inner.read().await.as_ref() {
            Some(i) if i.seq >= h => return Ok(()),
            Some(i) => (Some(i.seq), i.overlay.len()),
            None => (None, 0),
        };
        if let Some(s) = seq {
            let n: i64 = sqlx::query("SELECT (SELECT COUNT(*) FROM elder WHERE change_seq > $1) + (SELECT COUNT(*) FROM elder_ability WHERE change_seq > $1)")
                .bind(s)
                .fetch_one(&db.pool)
                .await?
                .get(0);
            if overlay_len + n as usize <= OVERLAY_MAX {
                let changed = fetch(db, Some(s)).await?;
                let mut w = self.inner.write().await;
                if let Some(i) = w.as_mut() {
                    i.apply(changed);
                    i.seq = h;
                }
                return Ok(());
            }
        }
        let t0 = std::time::Instant::now();
        let all = fetch(db, None).await?;
        let n = all.len();
        let base = tokio::task::spawn_blocking(move || Base::build(all))
            .await
            .map_err(|e| sqlx::Error::Protocol(format!("search index build: {e}")))?;
        *self.inner.write().await = Some(Index {
            seq: h,
            base,
            overlay: vec![],
        });
        tracing::info!(
            elders = n,
            ms = t0.elapsed().as_millis() as u64,
            "search index built"
        );
        Ok(())
    }

    /// The assessment due list as of the last refresh (see [`DueQuery`]).
    pub async fn due(&self, q: &DueQuery) -> Hits {
        match self.inner.read().await.as_ref() {
            Some(i) => i.due(q),
            None => Hits {
                ids: vec![],
                counted: 0,
            },
        }
    }

    /// Search the index as of its last refresh.
    pub async fn query(&self, q: &Query) -> Hits {
        match self.inner.read().await.as_ref() {
            Some(i) => i.query(q),
            None => Hits {
                ids: vec![],
                counted: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: u128, region: u64, birth: u32, name: &str) -> Entry {
        Entry {
            id,
            region,
            birth,
            name: name.into(),
            living: 0,
            economic: 0,
            status: 1,
            level: NO_ASSESSMENT,
            valid: 0,
        }
    }

    fn q(sort: Sort) -> Query {
        Query {
            lo: 0,
            hi: u64::MAX,
            birth_min: None,
            birth_max: None,
            name: None,
            living: None,
            economic: None,
            status: None,
            ability_level: None,
            today: 20261123,
            sort,
            offset: 0,
            limit: 10,
            cap: 100,
        }
    }

    fn ids(h: &Hits) -> Vec<u128> {
        h.ids
            .iter()
            .map(|s| uuid::Uuid::parse_str(s).unwrap().as_u128())
            .collect()
    }

    #[test]
    fn orders_filters_and_overlay() {
        let mut ix = Index {
            seq: 1,
            base: Base::build(vec![
                e(1, 320682103001, 19400101, "王秀英"),
                e(2, 320682001001, 19500101, "李建国"),
                e(3, 320682103002, 19300101, "张秀兰"),
            ]),
            overlay: vec![],
        };
        assert_eq!(ids(&ix.query(&q(Sort::Region))), vec![2, 1, 3]);
        assert_eq!(ids(&ix.query(&q(Sort::Birth))), vec![3, 1, 2]);
        assert_eq!(ids(&ix.query(&q(Sort::BirthDesc))), vec![2, 1, 3]);
        let mut byname = q(Sort::Name);
        byname.name = Some("秀".into());
        let h = ix.query(&byname);
        assert_eq!(h.counted, 2);
        // Byte order of UTF-8: 张 (E5 BC A0) before 王 (E7 8E 8B).
        assert_eq!(ids(&h), vec![3, 1]);
        let mut town = q(Sort::Region);
        (town.lo, town.hi) = (320682103000, 320682103999);
        assert_eq!(ids(&ix.query(&town)), vec![1, 3]);
        // A rename and a move go to the overlay and hide the base slot.
        ix.apply(vec![e(1, 320682001005, 19400101, "王翠萍")]);
        let h = ix.query(&byname);
        assert_eq!(ids(&h), vec![3]);
        assert_eq!(ids(&ix.query(&town)), vec![3]);
        assert_eq!(ids(&ix.query(&q(Sort::Region))), vec![2, 1, 3]);
        // Paging past the first item.
        let mut p = q(Sort::Region);
        (p.offset, p.limit) = (1, 1);
        assert_eq!(ids(&ix.query(&p)), vec![1]);
        // An absent character matches nobody.
        let mut none = q(Sort::Region);
        none.name = Some("龘".into());
        assert_eq!(ix.query(&none).counted, 0);
    }

    #[test]
    fn count_stops_past_the_cap_in_region_order() {
        let ix = Index {
            seq: 1,
            base: Base::build(
                (0..500)
                    .map(|i| e(i, 320682001001, 19400101, "王"))
                    .collect(),
            ),
            overlay: vec![],
        };
        let h = ix.query(&q(Sort::Region));
        assert_eq!(h.counted, 101);
        assert_eq!(h.ids.len(), 10);
    }
}
