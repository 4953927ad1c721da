//! Multi-section sub-tables (13818-1 §2.4.4, EN 300 468 §5.1): a sub-table is complete when
//! sections 0..=last_section_number of one version are in; a version change (or a changed
//! last_section_number) restarts the collection; sections with current_next_indicator 0 are
//! ignored.

use std::collections::BTreeMap;

use crate::psi::Section;

/// What identifies a sub-table: table_id, table_id_extension and, for SDT/EIT, the
/// original_network_id in the body (0 for other tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubTableKey {
    /// table_id.
    pub table_id: u8,
    /// table_id_extension.
    pub extension: u16,
    /// original_network_id for SDT (body bytes 0..2), else 0.
    pub onid: u16,
}

impl SubTableKey {
    /// The key of a section.
    pub fn of(s: &Section) -> SubTableKey {
        let onid = if matches!(s.header.table_id, 0x42 | 0x46 | 0x4E..=0x6F) {
            s.body()
                .get(..2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
        } else {
            0
        };
        SubTableKey {
            table_id: s.header.table_id,
            extension: s.header.table_id_extension,
            onid,
        }
    }
}

/// What pushing one section did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Section ignored (current_next 0, a short section, or already complete at this version).
    Ignored,
    /// Stored; the sub-table is still incomplete.
    Stored,
    /// This section completed the sub-table.
    Completed,
    /// A new version arrived: the collection restarted with this section (and may already be
    /// complete if it is the only section).
    Restarted {
        /// Whether the restarted sub-table is complete already.
        complete: bool,
    },
}

/// The sections of one sub-table.
#[derive(Debug, Clone, Default)]
pub struct SubTable {
    version: u8,
    last_section_number: u8,
    sections: BTreeMap<u8, Section>,
}

impl SubTable {
    /// Version of the sections held.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// All sections 0..=last are in.
    pub fn is_complete(&self) -> bool {
        self.sections.len() == usize::from(self.last_section_number) + 1
    }

    /// The sections in section_number order.
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.values()
    }
}

/// Collects sub-tables of any table ids.
#[derive(Debug, Clone, Default)]
pub struct SubTables {
    tables: BTreeMap<SubTableKey, SubTable>,
}

impl SubTables {
    /// Nothing collected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one (CRC-checked) section.
    pub fn push(&mut self, s: &Section) -> Push {
        let h = &s.header;
        if !h.syntax || !h.current_next || h.section_number > h.last_section_number {
            return Push::Ignored;
        }
        let key = SubTableKey::of(s);
        let mut restarted = false;
        let t = self.tables.entry(key).or_insert_with(|| SubTable {
            version: h.version,
            last_section_number: h.last_section_number,
            sections: BTreeMap::new(),
        });
        if t.version != h.version || t.last_section_number != h.last_section_number {
            *t = SubTable {
                version: h.version,
                last_section_number: h.last_section_number,
                sections: BTreeMap::new(),
            };
            restarted = true;
        }
        let was_complete = t.is_complete();
        if was_complete && !restarted {
            return Push::Ignored;
        }
        t.sections.insert(h.section_number, s.clone());
        let complete = t.is_complete();
        if restarted {
            Push::Restarted { complete }
        } else if complete {
            Push::Completed
        } else {
            Push::Stored
        }
    }

    /// The sub-table under `key`.
    pub fn get(&self, key: &SubTableKey) -> Option<&SubTable> {
        self.tables.get(key)
    }

    /// Every complete sub-table with this table_id.
    pub fn complete(&self, table_id: u8) -> impl Iterator<Item = (&SubTableKey, &SubTable)> {
        self.tables
            .iter()
            .filter(move |(k, t)| k.table_id == table_id && t.is_complete())
    }

    /// Number of sub-tables of this table_id seen (complete or not).
    pub fn count(&self, table_id: u8) -> usize {
        self.tables
            .keys()
            .filter(|k| k.table_id == table_id)
            .count()
    }

    /// Whether some sub-table of this table_id has been seen (complete or not).
    pub fn seen(&self, table_id: u8) -> bool {
        self.tables.keys().any(|k| k.table_id == table_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::si::long_section;

    fn sec(version: u8, n: u8, last: u8) -> Section {
        Section::parse(&long_section(
            0x40,
            0x2174,
            version,
            n,
            last,
            &[0xF0, 0, 0xF0, 0],
        ))
        .unwrap()
    }

    #[test]
    fn complete_only_with_every_section_of_one_version() {
        let mut t = SubTables::new();
        assert_eq!(t.push(&sec(1, 0, 2)), Push::Stored);
        assert_eq!(t.push(&sec(1, 2, 2)), Push::Stored);
        assert_eq!(t.push(&sec(1, 2, 2)), Push::Stored);
        assert_eq!(t.complete(0x40).count(), 0);
        assert_eq!(t.push(&sec(1, 1, 2)), Push::Completed);
        assert_eq!(t.complete(0x40).count(), 1);
        assert_eq!(t.push(&sec(1, 1, 2)), Push::Ignored);
    }

    #[test]
    fn version_change_restarts() {
        let mut t = SubTables::new();
        t.push(&sec(1, 0, 1));
        assert_eq!(t.push(&sec(2, 1, 1)), Push::Restarted { complete: false });
        // Section 0 of version 1 was dropped with the restart.
        assert_eq!(t.complete(0x40).count(), 0);
        assert_eq!(t.push(&sec(2, 0, 1)), Push::Completed);
        let (_, st) = t.complete(0x40).next().unwrap();
        assert_eq!(st.version(), 2);
        assert_eq!(
            st.sections()
                .map(|s| s.header.section_number)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        // A complete table of a new version restarts to a single-section table.
        assert_eq!(t.push(&sec(3, 0, 0)), Push::Restarted { complete: true });
    }

    #[test]
    fn current_next_zero_is_ignored() {
        let mut raw = long_section(0x40, 1, 0, 0, 0, &[0xF0, 0, 0xF0, 0]);
        raw[5] &= !1;
        let crc = crate::crc::crc32_mpeg2(&raw[..raw.len() - 4]);
        let n = raw.len();
        raw[n - 4..].copy_from_slice(&crc.to_be_bytes());
        let s = Section::parse(&raw).unwrap();
        assert!(!s.header.current_next);
        let mut t = SubTables::new();
        assert_eq!(t.push(&s), Push::Ignored);
        assert!(!t.seen(0x40));
    }
}
