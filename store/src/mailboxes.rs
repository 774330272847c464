//! Where each mailbox's rows are: the store's own record of `offline_messages` by recipient,
//! so storing a message is an append to the table and nothing else.
//!
//! The table used to carry an index on `(recipient_key, seq)`, which every removal used. A
//! message stored for one of many recipients wrote into that recipient's part of the index:
//! with 1000 mailboxes a batch of 400 messages dirtied some 400 index pages, each written
//! whole into the WAL and again at the checkpoint, and read back from the OS once they no
//! longer fit SQLite's page cache. Commits slowed as rows accumulated (62k/s on an empty
//! store, 15k/s at 1 M rows). Without the index a batch writes the table's last few pages;
//! a removal finds its rows here, by `seq` (the table's rowid).
//!
//! The record follows every commit. A commit that fails leaves it unknown (the transaction
//! rolled back, or maybe reached the disk): it is read again from the table before the
//! next commit that needs it.

use std::collections::{HashMap, VecDeque};

use rusqlite::Connection;

/// Each recipient key's rows, in queue order (`seq` ascending): `(seq, id)`.
#[derive(Debug, Default)]
pub(crate) struct Mailboxes {
    rows: HashMap<String, VecDeque<(i64, i64)>>,
}

impl Mailboxes {
    /// Reads the record from the table.
    pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Mailboxes> {
        let mut mailboxes = Mailboxes::default();
        let mut statement =
            conn.prepare("SELECT seq, id, recipient_key FROM offline_messages ORDER BY seq")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let key = row.get_ref(2)?.as_str()?;
            mailboxes.queued(key, row.get(0)?, row.get(1)?);
        }
        Ok(mailboxes)
    }

    /// Row `seq` holds message `id` for `key`, after every row recorded for it so far.
    pub(crate) fn queued(&mut self, key: &str, seq: i64, id: i64) {
        match self.rows.get_mut(key) {
            Some(queue) => queue.push_back((seq, id)),
            None => {
                self.rows
                    .insert(key.to_owned(), VecDeque::from([(seq, id)]));
            }
        }
    }

    /// Forgets the rows of `key` from the front while their id is at most `through` (as
    /// `State::apply` pops a queue) and puts their `seq`s into `out`, for the caller to
    /// delete.
    pub(crate) fn take_through(&mut self, key: &str, through: i64, out: &mut Vec<i64>) {
        let Some(queue) = self.rows.get_mut(key) else {
            return;
        };
        while let Some(&(seq, _)) = queue.front().filter(|(_, id)| *id <= through) {
            out.push(seq);
            queue.pop_front();
        }
        if queue.is_empty() {
            self.rows.remove(key);
        }
    }

    /// Forgets every row of `key` and puts their `seq`s into `out`.
    pub(crate) fn take_all(&mut self, key: &str, out: &mut Vec<i64>) {
        if let Some(queue) = self.rows.remove(key) {
            out.extend(queue.into_iter().map(|(seq, _)| seq));
        }
    }

    /// Rows recorded in all (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Mailboxes;

    #[test]
    fn rows_leave_from_the_front_up_to_the_first_later_id() {
        let mut m = Mailboxes::default();
        for (seq, id, key) in [(1, 10, "a"), (2, 11, "b"), (3, 12, "a"), (4, 14, "a")] {
            m.queued(key, seq, id);
        }
        let mut out = Vec::new();
        m.take_through("a", 12, &mut out);
        assert_eq!(out, [1, 3]);
        m.take_through("a", 13, &mut out);
        assert_eq!(out, [1, 3], "14 is later than 13");
        m.take_through("nobody", 99, &mut out);
        assert_eq!(m.len(), 2);
        out.clear();
        m.take_all("a", &mut out);
        assert_eq!(out, [4]);
        m.take_through("b", 11, &mut out);
        assert_eq!(out, [4, 2]);
        assert_eq!(m.len(), 0);
        assert!(m.rows.is_empty(), "no empty queues are kept");
    }
}
