/// The paper's loops table: matching steps per outer iteration (`outer`) and network-training epochs
/// between them (`inner`), by images per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Loops {
    pub outer: usize,
    pub inner: usize,
}

impl Loops {
    /// The images per class of the table's rows.
    pub const PUBLISHED_IPC: [usize; 6] = [1, 10, 20, 30, 40, 50];

    /// The table's row for `ipc`, if it has one.
    pub fn published(ipc: usize) -> Option<Loops> {
        Self::PUBLISHED_IPC.contains(&ipc).then(|| Loops::for_ipc(ipc))
    }

    /// The published values for ipc 1, 10, 20, 30, 40, 50; other ipc values take the nearest row below
    /// (configs are checked to give their own loops for those).
    pub fn for_ipc(ipc: usize) -> Loops {
        let (outer, inner) = match ipc {
            0..=9 => (1, 1),
            10..=19 => (10, 50),
            20..=29 => (20, 25),
            30..=39 => (30, 20),
            40..=49 => (40, 15),
            _ => (50, 10),
        };
        Loops { outer, inner }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_rows() {
        assert_eq!(Loops::for_ipc(1), Loops { outer: 1, inner: 1 });
        assert_eq!(Loops::for_ipc(10), Loops { outer: 10, inner: 50 });
        assert_eq!(Loops::for_ipc(20), Loops { outer: 20, inner: 25 });
        assert_eq!(Loops::for_ipc(30), Loops { outer: 30, inner: 20 });
        assert_eq!(Loops::for_ipc(40), Loops { outer: 40, inner: 15 });
        assert_eq!(Loops::for_ipc(50), Loops { outer: 50, inner: 10 });
        for ipc in Loops::PUBLISHED_IPC {
            assert_eq!(Loops::published(ipc), Some(Loops::for_ipc(ipc)));
        }
        assert_eq!(Loops::published(7), None);
    }
}
