//! Reading the kernel lock table so that what it lacks is known to be absent.
//!
//! /proc/locks is a seq_file: each read(2) formats about a page of it under
//! the lock-list lock and lets go, and the next read starts again from a
//! position, an index into the list. When a lock listed before that
//! position is released between two reads, every later entry moves up one,
//! and the entry that was next is never shown: a held lock goes missing.
//! SQLite takes and releases POSIX locks on every transaction, so a busy
//! host (an OpenViking server's own queue) makes this churn all the time.
//!
//! A table that fits one read is one snapshot. A longer one is assembled
//! page by page, and each page after the first is read from an offset a
//! little before the end of what has been assembled, so that it begins
//! with records already seen (the anchors). The kernel formats each page
//! under one hold of its lock, so when the anchors come back with the same
//! positions and the same text, nothing before them was added or removed
//! in between, and the page continues the table where the last one ended.
//! Anything else (the anchors moved, or a page cannot be parsed) starts
//! the reading over; after [`PASSES`] tries the table is left unsettled,
//! and its absences prove nothing.
//!
//! Every lock seen in any read is kept: a lock shown once was held then.

use std::collections::HashSet;
use std::io;

use super::kernel_locks::{self, KernelLock};

/// How many times the whole table is read before it is called unsettled.
pub const PASSES: usize = 12;

/// How many records each page must repeat from the one before. Two, so that
/// a lock released and taken again by the same process (the same text),
/// landing by chance at the same position, cannot pass for an anchor alone.
const ANCHORS: usize = 2;

/// A read that fills this buffer may have been cut short.
pub const READ_BUFFER: usize = 256 * 1024;

/// More pages than any lock table has (a million locks): a pass that reads
/// more is given up rather than left to run on.
const MAX_PAGES: usize = 20_000;

/// What a careful reading of the lock table found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reading {
    /// Every held or waiting lock seen in any read.
    pub locks: Vec<KernelLock>,
    /// Whether one pass read the table whole and consistent: then a lock
    /// held throughout the reading is among `locks`, and one missing from
    /// them was not held. False when the table kept changing.
    pub settled: bool,
    /// How many read(2) calls it took, for the benchmarks.
    pub reads: usize,
}

/// One record of the table: a held lock and the requests blocked on it,
/// each a line, with the position the kernel numbered it by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    ordinal: u64,
    text: Vec<u8>,
}

/// Reads the table through `read_at(offset, buf)`, which fills `buf` with
/// what one pread(2) of the table at `offset` returns.
pub fn read(mut read_at: impl FnMut(u64, &mut Vec<u8>) -> io::Result<()>) -> io::Result<Reading> {
    let mut seen = Seen::default();
    let mut buf = Vec::with_capacity(READ_BUFFER);
    for _ in 0..PASSES {
        if pass(&mut read_at, &mut buf, &mut seen)? {
            return Ok(seen.into_reading(true));
        }
    }
    Ok(seen.into_reading(false))
}

/// Every lock seen so far, and how many reads it took.
#[derive(Default)]
struct Seen {
    locks: HashSet<KernelLock>,
    order: Vec<KernelLock>,
    reads: usize,
}

impl Seen {
    fn add(&mut self, records: &[Record]) {
        for record in records {
            let text = String::from_utf8_lossy(&record.text);
            for lock in text.lines().filter_map(kernel_locks::parse_line) {
                if self.locks.insert(lock.clone()) {
                    self.order.push(lock);
                }
            }
        }
    }

    fn into_reading(self, settled: bool) -> Reading {
        Reading {
            locks: self.order,
            settled,
            reads: self.reads,
        }
    }
}

/// One pass over the whole table: true when it read it consistently.
fn pass(
    read_at: &mut impl FnMut(u64, &mut Vec<u8>) -> io::Result<()>,
    buf: &mut Vec<u8>,
    seen: &mut Seen,
) -> io::Result<bool> {
    let mut fetch = |offset: u64, buf: &mut Vec<u8>| -> io::Result<Option<Vec<Record>>> {
        buf.clear();
        read_at(offset, buf)?;
        seen.reads += 1;
        if buf.len() >= READ_BUFFER {
            return Ok(None);
        }
        // From any offset but 0 the kernel first finishes the record it
        // stopped in, as the table was when it looked: not part of the page.
        let page = if offset == 0 {
            &buf[..]
        } else {
            after_cut(buf)
        };
        let records = records(page);
        if let Some(records) = &records {
            seen.add(records);
        }
        Ok(records)
    };
    let Some(mut table) = fetch(0, buf)? else {
        return Ok(false);
    };
    // Where each record of `table` begins in the text read so far.
    let mut starts: Vec<u64> = Vec::with_capacity(table.len());
    let mut end = 0u64;
    for record in &table {
        starts.push(end);
        end += record.text.len() as u64;
    }
    for _ in 0..MAX_PAGES {
        if table.is_empty() {
            return Ok(true);
        }
        let first_anchor = table.len().saturating_sub(ANCHORS);
        let anchors = &table[first_anchor..];
        // One byte before the first anchor: the kernel cuts there and the
        // page proper begins at a record boundary.
        let offset = starts[first_anchor].saturating_sub(1);
        let Some(page) = fetch(offset, buf)? else {
            return Ok(false);
        };
        let Some(at) = page
            .windows(anchors.len())
            .position(|window| window == anchors)
        else {
            return Ok(false);
        };
        let after = &page[at + anchors.len()..];
        if after.is_empty() {
            // The page ended with the anchors: the end of the table, unless
            // the next record did not fit in it. A read from the end tells.
            let Some(beyond) = fetch(end.saturating_sub(1), buf)? else {
                return Ok(false);
            };
            return Ok(beyond.is_empty());
        }
        for record in after {
            starts.push(end);
            end += record.text.len() as u64;
        }
        table.extend_from_slice(after);
    }
    Ok(false)
}

/// What follows the cut: past the end of the first line, and past the lines
/// of requests blocked on it, which belong to the same record.
fn after_cut(text: &[u8]) -> &[u8] {
    let Some(newline) = text.iter().position(|&b| b == b'\n') else {
        return &[];
    };
    let mut rest = &text[newline + 1..];
    while let Some(line) = first_line(rest).filter(|line| is_blocked_request(line)) {
        rest = &rest[line.len()..];
    }
    rest
}

/// The first line of `text`, with its newline; None when there is no whole line.
fn first_line(text: &[u8]) -> Option<&[u8]> {
    let end = text.iter().position(|&b| b == b'\n')?;
    Some(&text[..=end])
}

/// `N: -> FLOCK ...`: a request blocked on the lock of the line before.
fn is_blocked_request(line: &[u8]) -> bool {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|field| !field.is_empty())
        .nth(1)
        == Some(b"->")
}

/// The records of a page, or None when it is not whole lines of the table.
fn records(page: &[u8]) -> Option<Vec<Record>> {
    let mut records: Vec<Record> = Vec::new();
    let mut rest = page;
    while !rest.is_empty() {
        let line = first_line(rest)?;
        rest = &rest[line.len()..];
        let ordinal_text = line.split(|&b| b == b':').next()?;
        let ordinal = std::str::from_utf8(ordinal_text)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if is_blocked_request(line) {
            let last = records.last_mut().filter(|r| r.ordinal == ordinal)?;
            last.text.extend_from_slice(line);
        } else {
            records.push(Record {
                ordinal,
                text: line.to_vec(),
            });
        }
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What happens to the lock list before a look at it, given how many
    /// reads came before.
    type Churn = Box<dyn FnMut(&mut Vec<String>, usize)>;

    /// A stand-in for the kernel's seq_file over the lock list: each read
    /// formats whole records from an index under one look at the list, at
    /// most a page of them, and between reads the list may change.
    struct SeqFile {
        list: Vec<String>,
        page: usize,
        /// Run before every read: the churn.
        churn: Churn,
        reads: usize,
    }

    impl SeqFile {
        fn new(list: Vec<String>, churn: impl FnMut(&mut Vec<String>, usize) + 'static) -> Self {
            SeqFile {
                list,
                page: 4096,
                churn: Box::new(churn),
                reads: 0,
            }
        }

        fn record(&self, index: usize) -> String {
            format!("{}: {}\n", index + 1, self.list[index])
        }

        /// pread(2): the kernel walks the records to `offset` (one look at
        /// the list), returns the rest of the record it stops in, then
        /// fills a page from the next record (another look).
        fn read_at(&mut self, offset: u64, buf: &mut Vec<u8>) {
            (self.churn)(&mut self.list, self.reads);
            self.reads += 1;
            let mut pos = 0usize;
            let mut index = 0usize;
            let offset = offset as usize;
            while pos < offset && index < self.list.len() {
                let record = self.record(index);
                index += 1;
                if pos + record.len() > offset {
                    buf.extend_from_slice(&record.as_bytes()[offset - pos..]);
                    break;
                }
                pos += record.len();
            }
            (self.churn)(&mut self.list, self.reads);
            let mut filled = 0;
            while index < self.list.len() {
                let record = self.record(index);
                if filled + record.len() > self.page {
                    break;
                }
                filled += record.len();
                buf.extend_from_slice(record.as_bytes());
                index += 1;
            }
        }
    }

    fn lock(n: usize) -> String {
        format!("POSIX  ADVISORY  READ {} 08:01:{n} 128 128", 1000 + n)
    }

    fn flock(ino: u64) -> String {
        format!("FLOCK  ADVISORY  WRITE 77 fe:00:{ino} 0 EOF")
    }

    fn read_file(file: &mut SeqFile) -> Reading {
        read(|offset, buf| {
            file.read_at(offset, buf);
            Ok(())
        })
        .unwrap()
    }

    fn has(reading: &Reading, ino: u64) -> bool {
        reading.locks.iter().any(|l| l.ino == ino)
    }

    /// A naive reader: read(2) after read(2), each going on from where the
    /// last one ended, as `read_to_string` does.
    fn naive(file: &mut SeqFile) -> Vec<KernelLock> {
        let mut text = Vec::new();
        let mut index = 0;
        loop {
            (file.churn)(&mut file.list, file.reads);
            file.reads += 1;
            let mut filled = 0;
            let before = index;
            while index < file.list.len() {
                let record = file.record(index);
                if filled + record.len() > file.page {
                    break;
                }
                filled += record.len();
                text.extend_from_slice(record.as_bytes());
                index += 1;
            }
            if index == before {
                break;
            }
        }
        kernel_locks::parse_table(&String::from_utf8(text).unwrap())
    }

    /// 300 locks, with the flock on inode 9 near the end.
    fn busy_table() -> Vec<String> {
        let mut list: Vec<String> = (1000..1300).map(lock).collect();
        list.insert(280, flock(9));
        list
    }

    /// 300 locks, and the flock on inode 9 the first record of the second page.
    fn flock_opening_page_two() -> Vec<String> {
        let mut list: Vec<String> = (1000..1300).map(lock).collect();
        let sizer = SeqFile::new(list.clone(), |_, _| {});
        let mut filled = 0;
        let first_page = (0..list.len())
            .take_while(|&i| {
                filled += sizer.record(i).len();
                filled <= sizer.page
            })
            .count();
        list.insert(first_page, flock(9));
        list
    }

    #[test]
    fn a_short_table_is_one_read() {
        let mut file = SeqFile::new(vec![flock(9), lock(1)], |_, _| {});
        let reading = read_file(&mut file);
        assert!(reading.settled);
        assert!(has(&reading, 9) && has(&reading, 1));
        assert_eq!(reading.locks.len(), 2);
    }

    #[test]
    fn an_empty_table_is_settled_and_empty() {
        let mut file = SeqFile::new(Vec::new(), |_, _| {});
        let reading = read_file(&mut file);
        assert!(reading.settled);
        assert!(reading.locks.is_empty());
    }

    #[test]
    fn a_long_quiet_table_is_read_whole() {
        let mut file = SeqFile::new(busy_table(), |_, _| {});
        let reading = read_file(&mut file);
        assert!(reading.settled);
        assert_eq!(reading.locks.len(), 301);
        assert!(has(&reading, 9));
    }

    #[test]
    fn a_release_between_reads_makes_a_naive_reader_miss_a_held_lock() {
        // The premise of this module, shown on the stand-in: a lock released
        // near the top between two pages hides one that is held throughout.
        // The flock first on the second page, and the first lock released
        // just before that page is read.
        let mut file = SeqFile::new(flock_opening_page_two(), |list, reads| {
            if reads == 1 {
                list.remove(0);
            }
        });
        let locks = naive(&mut file);
        assert!(!locks.iter().any(|l| l.ino == 9));
    }

    #[test]
    fn a_release_between_reads_is_seen_and_the_table_read_again() {
        let mut file = SeqFile::new(flock_opening_page_two(), |list, reads| {
            if reads == 1 {
                list.remove(0);
            }
        });
        let reading = read_file(&mut file);
        assert!(reading.settled);
        assert!(has(&reading, 9));
    }

    #[test]
    fn a_table_that_never_stops_changing_is_unsettled() {
        // Every read, a lock near the top goes and another comes.
        let mut next = 5000;
        let mut file = SeqFile::new(busy_table(), move |list, _| {
            list.remove(0);
            list.insert(3, lock(next));
            list.remove(1);
            next += 1;
        });
        let reading = read_file(&mut file);
        assert!(!reading.settled);
        assert!(reading.reads > PASSES);
    }

    #[test]
    fn a_lock_seen_once_is_kept_though_released_since() {
        let mut list: Vec<String> = (1000..1300).map(lock).collect();
        list.insert(5, flock(9));
        // Released once the first page has shown it.
        let mut file = SeqFile::new(list, |list, reads| {
            if reads == 3 {
                list.retain(|l| *l != flock(9));
            }
        });
        let reading = read_file(&mut file);
        assert!(reading.settled);
        assert!(has(&reading, 9));
    }

    #[test]
    fn blocked_requests_stay_with_their_lock() {
        let text = b"1: FLOCK  ADVISORY  WRITE 77 fe:00:9 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 78 fe:00:9 0 EOF\n2: POSIX  ADVISORY  READ 5 08:01:3 0 EOF\n";
        let records = records(text).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].text.iter().filter(|&&b| b == b'\n').count(), 2);
        // Cut inside the first record: its blocked request is not the page.
        assert!(after_cut(&text[5..]).starts_with(b"2: POSIX"));
    }

    #[test]
    fn a_page_that_is_not_whole_lines_is_refused() {
        assert_eq!(records(b"1: FLOCK  ADVISORY  WRITE 77 fe:00:9 0 EOF"), None);
        assert_eq!(records(b"x: FLOCK\n"), None);
        // A blocked request with no lock before it.
        assert_eq!(
            records(b"3: -> FLOCK  ADVISORY  WRITE 78 fe:00:9 0 EOF\n"),
            None
        );
    }

    proptest! {
        /// Whatever locks come and go near the top of the table between
        /// reads, a settled reading never lacks a lock held throughout.
        #[test]
        fn a_settled_reading_never_lacks_a_lock_held_throughout(
            churn in proptest::collection::vec((0usize..3, 0usize..40), 1..400),
            at in 0usize..300,
        ) {
            let mut list: Vec<String> = (1000..1300).map(lock).collect();
            list.insert(at, flock(9));
            let mut next = 7000;
            let mut file = SeqFile::new(list, move |list, reads| {
                let (what, index) = churn[reads % churn.len()];
                let top = index.min(list.len().saturating_sub(1));
                match what {
                    0 if list[top] != flock(9) => {
                        list.remove(top);
                    }
                    1 => {
                        list.insert(top, lock(next));
                        next += 1;
                    }
                    _ => {}
                }
            });
            let reading = read_file(&mut file);
            prop_assert!(!reading.settled || has(&reading, 9));
        }
    }
}
