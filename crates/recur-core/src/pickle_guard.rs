//! Bounds on a pickle before candle's reader parses it.
//!
//! candle's pickle reader (used for PyTorch checkpoints) runs no pickled
//! code, but it builds the whole object tree and copies an object each time
//! the memo is read: a pickle of a few hundred bytes that puts a list into
//! the memo and reads it back twice, over and over ("billion laughs"),
//! grows to gigabytes, and one that nests lists ten thousand deep
//! overflows the stack when the tree is dropped. So the pickle is first
//! run here on a shadow machine that keeps, for each value, only how many
//! objects and bytes it holds and how deep it nests, with every opcode
//! candle knows; what it would build is checked against limits far above
//! any real checkpoint's before candle builds it. It also lists the
//! globals (classes and functions) the pickle names, so the importer can
//! say which code a checkpoint refers to (none of it is ever called).

use std::collections::{BTreeSet, HashMap};

/// What a pickle may build.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Objects built in all, memo copies included.
    pub max_objects: u64,
    /// Bytes of strings built in all, memo copies included.
    pub max_bytes: u64,
    /// Containers inside containers.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // A state dict of a few hundred tensors builds a few thousand objects.
        Limits {
            max_objects: 4_000_000,
            max_bytes: 256 << 20,
            max_depth: 200,
        }
    }
}

/// What the shadow run found.
#[derive(Debug, Default)]
pub struct Scan {
    /// `module.name` of each global the pickle names, sorted.
    pub globals: BTreeSet<String>,
}

#[derive(Clone, Copy)]
enum Item {
    Mark,
    Value {
        objects: u64,
        bytes: u64,
        depth: u32,
    },
}

/// The shadow machine. Its memo follows candle's (as recur vendors it): an
/// object memoised while on the stack is read back as it is then, and the
/// memo keeps its copy, as it is, when it leaves the stack (`slots`: the
/// memo ids of each stack entry; `live`: where each such id's object is).
struct Shadow {
    stack: Vec<Item>,
    slots: Vec<Vec<u32>>,
    live: HashMap<u32, usize>,
    memo: HashMap<u32, Item>,
    objects: u64,
    bytes: u64,
    limits: Limits,
}

const LEAF: Item = Item::Value {
    objects: 1,
    bytes: 0,
    depth: 0,
};

impl Shadow {
    fn charge(&mut self, item: Item) -> Result<(), String> {
        if let Item::Value {
            objects,
            bytes,
            depth,
        } = item
        {
            self.objects = self.objects.saturating_add(objects);
            self.bytes = self.bytes.saturating_add(bytes);
            if self.objects > self.limits.max_objects {
                return Err(format!(
                    "it would build more than {} objects (memo copies included): \
                     not a checkpoint, or a hostile file",
                    self.limits.max_objects
                ));
            }
            if self.bytes > self.limits.max_bytes {
                return Err(format!(
                    "it would build more than {} bytes of strings: not a checkpoint, \
                     or a hostile file",
                    self.limits.max_bytes
                ));
            }
            if depth > self.limits.max_depth {
                return Err(format!(
                    "it nests containers more than {} deep: not a checkpoint, or a hostile file",
                    self.limits.max_depth
                ));
            }
        }
        Ok(())
    }

    fn push_new(&mut self, item: Item) -> Result<(), String> {
        self.charge(item)?;
        self.push(item);
        Ok(())
    }

    fn push(&mut self, item: Item) {
        self.stack.push(item);
        self.slots.push(Vec::new());
    }

    /// The memo's copies of an item leaving the stack, charged as built.
    fn settle(&mut self, item: Item, ids: Vec<u32>) -> Result<(), String> {
        for id in ids {
            self.live.remove(&id);
            self.charge(item)?;
            self.memo.insert(id, item);
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Item, String> {
        let (item, ids) = self.take_top();
        self.settle(item, ids)?;
        Ok(item)
    }

    fn pop_to_mark(&mut self) -> Result<Vec<Item>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .unwrap_or(0);
        let items = self.stack.split_off(at);
        let slots = self.slots.split_off(at.min(self.slots.len()));
        for (item, ids) in items.iter().zip(slots) {
            self.settle(*item, ids)?;
        }
        Ok(items
            .into_iter()
            .filter(|i| !matches!(i, Item::Mark))
            .collect())
    }

    /// A new container holding `items`, which move into it: only the
    /// container itself is new.
    fn container(&mut self, items: &[Item]) -> Result<(), String> {
        let (objects, bytes, depth) = combine(items);
        self.charge(Item::Value {
            objects: 1,
            bytes: 0,
            depth: depth + 1,
        })?;
        self.push(Item::Value {
            objects: objects.saturating_add(1),
            bytes,
            depth: depth + 1,
        });
        Ok(())
    }

    /// The top item and its memo ids, still live: it is changed, not
    /// gone (see [`Shadow::keep_ids`]).
    fn take_top(&mut self) -> (Item, Vec<u32>) {
        (
            self.stack.pop().unwrap_or(LEAF),
            self.slots.pop().unwrap_or_default(),
        )
    }

    /// Memo ids taken off an item that was changed, given to the item
    /// that replaced it on top of the stack.
    fn keep_ids(&mut self, ids: Vec<u32>) {
        let at = self.stack.len() - 1;
        for &id in &ids {
            self.live.insert(id, at);
        }
        self.slots[at] = ids;
    }

    /// `items` moved into the container on top of the stack.
    fn extend_top(&mut self, items: &[Item]) -> Result<(), String> {
        // The container is changed in place: its memo ids stay with it.
        let (top, ids) = self.take_top();
        let (o, b, d) = combine(&[top]);
        let (objects, bytes, depth) = combine(items);
        let depth = d.max(depth + 1);
        self.charge(Item::Value {
            objects: 0,
            bytes: 0,
            depth,
        })?;
        self.push(Item::Value {
            objects: o.saturating_add(objects),
            bytes: b.saturating_add(bytes),
            depth,
        });
        self.keep_ids(ids);
        Ok(())
    }
}

/// The objects and bytes `items` hold together, and the deepest of them.
fn combine(items: &[Item]) -> (u64, u64, u32) {
    let (mut objects, mut bytes, mut depth) = (0u64, 0u64, 0u32);
    for i in items {
        if let Item::Value {
            objects: o,
            bytes: b,
            depth: d,
        } = *i
        {
            objects = objects.saturating_add(o);
            bytes = bytes.saturating_add(b);
            depth = depth.max(d);
        }
    }
    (objects, bytes, depth)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| "it ends in the middle of an opcode".to_string())?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A global's line, trimmed, and its length as candle keeps it (the
    /// trailing spaces too: a megabyte of them was charged as nothing).
    fn line(&mut self) -> Result<(String, usize), String> {
        let rest = &self.data[self.at..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| "a global's name has no end".to_string())?;
        let s = String::from_utf8_lossy(&rest[..n]).trim_end().to_string();
        self.at += n + 1;
        Ok((s, n))
    }
}

/// Runs `data` (a whole pickle) on the shadow machine. An opcode candle
/// does not know ends the run: candle refuses the file at the same place.
pub fn scan(data: &[u8], limits: Limits) -> Result<Scan, String> {
    let mut sh = Shadow {
        stack: Vec::new(),
        slots: Vec::new(),
        live: HashMap::new(),
        memo: HashMap::new(),
        objects: 0,
        bytes: 0,
        limits,
    };
    let mut r = Reader { data, at: 0 };
    let mut out = Scan::default();
    while r.at < data.len() {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?;
            }
            b'c' => {
                let (module, m) = r.line()?;
                let (name, n) = r.line()?;
                let bytes = (m + n) as u64;
                out.globals.insert(format!("{module}.{name}"));
                sh.push_new(Item::Value {
                    objects: 1,
                    bytes,
                    depth: 0,
                })?;
            }
            b'K' => {
                r.take(1)?;
                sh.push_new(LEAF)?;
            }
            b'M' => {
                r.take(2)?;
                sh.push_new(LEAF)?;
            }
            b'J' => {
                r.take(4)?;
                sh.push_new(LEAF)?;
            }
            b'G' => {
                r.take(8)?;
                sh.push_new(LEAF)?;
            }
            0x8a => {
                let n = r.u8()? as usize;
                r.take(n)?;
                sh.push_new(LEAF)?;
            }
            b'X' => {
                let n = r.u32()? as usize;
                r.take(n)?;
                sh.push_new(Item::Value {
                    objects: 1,
                    bytes: n as u64,
                    depth: 0,
                })?;
            }
            0x88 | 0x89 | b'N' | b'}' | b')' | b']' => sh.push_new(LEAF)?,
            b'(' => sh.push(Item::Mark),
            // BINPERSID: a wrapper around the popped id.
            b'Q' => {
                let v = sh.pop()?;
                sh.container(&[v])?;
            }
            b't' | b'd' => {
                let items = sh.pop_to_mark()?;
                sh.container(&items)?;
            }
            0x85 => {
                let a = sh.pop()?;
                sh.container(&[a])?;
            }
            0x86 => {
                let b = sh.pop()?;
                let a = sh.pop()?;
                sh.container(&[a, b])?;
            }
            0x87 => {
                let c = sh.pop()?;
                let b = sh.pop()?;
                let a = sh.pop()?;
                sh.container(&[a, b, c])?;
            }
            // REDUCE, NEWOBJ: a node holding callable and args.
            b'R' | 0x81 => {
                let b = sh.pop()?;
                let a = sh.pop()?;
                sh.container(&[a, b])?;
            }
            // BUILD likewise, but the object keeps its memo ids (candle's
            // memo names the built object, state included).
            b'b' => {
                let b = sh.pop()?;
                let (a, ids) = sh.take_top();
                sh.container(&[a, b])?;
                sh.keep_ids(ids);
            }
            b'a' => {
                let v = sh.pop()?;
                sh.extend_top(&[v])?;
            }
            b's' => {
                let v = sh.pop()?;
                let k = sh.pop()?;
                sh.extend_top(&[k, v])?;
            }
            b'e' | b'u' => {
                let items = sh.pop_to_mark()?;
                sh.extend_top(&items)?;
            }
            b'h' | b'j' => {
                let id = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                // candle copies the memo's object onto the stack: as it is
                // now where it is still on the stack.
                let item = match sh.live.get(&id).and_then(|&at| sh.stack.get(at)) {
                    Some(i) => *i,
                    None => sh.memo.get(&id).copied().unwrap_or(LEAF),
                };
                sh.push_new(item)?;
            }
            b'q' | b'r' => {
                let id = if op == b'q' { r.u8()? as u32 } else { r.u32()? };
                // ... and names the top of the stack in the memo.
                let Some(at) = sh.stack.len().checked_sub(1) else {
                    break;
                };
                if let Some(old) = sh.live.insert(id, at) {
                    if let Some(slot) = sh.slots.get_mut(old) {
                        slot.retain(|&i| i != id);
                    }
                }
                sh.memo.remove(&id);
                sh.slots[at].push(id);
            }
            // STOP, or an opcode candle does not know (it refuses those).
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pickle that doubles a list `rounds` times through the memo:
    /// each round appends two copies of the last list to a new one.
    fn laughs(rounds: usize) -> Vec<u8> {
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for i in 0..rounds {
            let (prev, next) = ((i % 2) as u8, ((i + 1) % 2) as u8);
            p.extend_from_slice(&[b']', b'(', b'h', prev, b'h', prev, b'e', b'q', next]);
        }
        p.push(b'.');
        p
    }

    #[test]
    fn a_memo_doubling_pickle_is_refused_before_it_is_built() {
        let small = scan(&laughs(8), Limits::default()).unwrap();
        assert!(small.globals.is_empty());
        let e = scan(&laughs(64), Limits::default()).unwrap_err();
        assert!(e.contains("more than 4000000 objects"), "{e}");
    }

    /// The memo names an object, not its state when it was put: a list
    /// memoised empty, then filled with a megabyte, is read back full (as
    /// candle's reader now reads it), 300 times over.
    #[test]
    fn a_memo_of_an_object_filled_after_it_was_put_counts_as_filled() {
        let mut p = vec![0x80, 2, b']', b'q', 0, b'(', b'X'];
        p.extend_from_slice(&(1u32 << 20).to_le_bytes());
        p.extend(std::iter::repeat_n(b'x', 1 << 20));
        p.extend_from_slice(b"e](");
        for _ in 0..300 {
            p.extend_from_slice(&[b'h', 0]);
        }
        p.extend_from_slice(b"e.");
        let e = scan(&p, Limits::default()).unwrap_err();
        assert!(e.contains("bytes of strings"), "{e}");
        // Read back fewer times, it is no bomb.
        let mut short = p[..p.len() - 2 - 2 * 290].to_vec();
        short.extend_from_slice(b"e.");
        assert!(scan(&short, Limits::default()).is_ok());
    }

    /// A global's trailing spaces count as candle keeps them: a megabyte
    /// of them, memoised and read back 300 times, was charged as nothing.
    #[test]
    fn a_global_name_is_charged_with_its_trailing_spaces() {
        let mut p = b"\x80\x02cos\n".to_vec();
        p.extend(std::iter::repeat_n(b' ', 1 << 20));
        p.extend_from_slice(b"\nq\x00]q\x01(");
        for _ in 0..300 {
            p.extend_from_slice(b"h\x00");
        }
        p.extend_from_slice(b"e.");
        let e = scan(&p, Limits::default()).unwrap_err();
        assert!(e.contains("bytes of strings"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_and_globals_are_listed() {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b']', 10_000));
        p.extend(std::iter::repeat_n(b'a', 10_000));
        p.push(b'.');
        let e = scan(&p, Limits::default()).unwrap_err();
        assert!(e.contains("more than 200 deep"), "{e}");
        let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let s = scan(p, Limits::default()).unwrap();
        assert_eq!(s.globals.iter().collect::<Vec<_>>(), ["os.system"]);
        assert!(scan(b"\x80\x02X\xff\xff\xff\xff", Limits::default())
            .unwrap_err()
            .contains("ends in the middle"));
    }
}
