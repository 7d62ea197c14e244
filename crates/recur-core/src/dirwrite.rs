//! Model directories written as a unit, under a lock, with a manifest.
//!
//! A directory is built in a fresh folder beside its target, its
//! `manifest.json` lists every file with its SHA-256 and the run they
//! belong to, and only then is it swapped in: on Linux in one step
//! (`renameat2` with `RENAME_EXCHANGE`), elsewhere by two renames in one
//! folder. A crash leaves the old directory or the new one, never new
//! weights beside an old scaler; a stale file of an earlier run (a
//! `trees.json` the new config no longer makes) goes with the old
//! directory. Whatever else the old directory holds (folders of other
//! models, as the demo keeps there; a user's notes) is moved into the new
//! one after the swap; nothing recur did not write is deleted. A lock beside
//! the target (`flock`, released by the kernel if the process dies) stops
//! two runs writing one directory.
//!
//! A crash during the swap can leave the old directory's sub-folders, or
//! (with two renames) the old directory itself, in a hidden folder beside
//! the target. The next writer, holding the lock, puts them back before
//! anything else ([`DirWriter::begin`]); the tests crash a commit after
//! each of its steps and check this. What cannot be put back (its name
//! taken meanwhile) stays in the hidden folder, and the writer says so.
//!
//! On load, [`check_manifest`] refuses a directory whose files differ from
//! its manifest and says which: a hand-edited or mixed directory.

use crate::fsx::{read_json, sha256_file, write_json};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";

/// The `format_version` of the manifests this recur writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// `manifest.json`: every file of a model directory with its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Which training run wrote the files (time and process).
    pub run: String,
    pub files: BTreeMap<String, String>,
}

/// A directory being written: write into [`Self::path`], then [`Self::commit`].
pub struct DirWriter {
    target: PathBuf,
    tmp: Option<tempfile::TempDir>,
    /// The run's name (time and process), in the manifest and in the name
    /// of the folder it is built in (`.NAME.new-<run>`): after the swap
    /// that folder holds the old directory, which a recovery tells from an
    /// unswapped build by the run of the directory now in place.
    run: String,
    _lock: std::fs::File,
}

fn parent_of(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The directory's name as the lock and temporary names beside it use
/// it: as it is when it is UTF-8; otherwise its lossy form and a digest
/// of its bytes, so that `y\xff` and `y\xfe` (both `y�` when lossy) do
/// not share a lock or each other's hidden folders.
fn name_of(p: &Path) -> String {
    let Some(n) = p.file_name() else {
        return "model".into();
    };
    match n.to_str() {
        Some(s) => s.to_string(),
        None => {
            #[cfg(unix)]
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec();
            #[cfg(not(unix))]
            let bytes = n.to_string_lossy().as_bytes().to_vec();
            let digest = crate::fsx::sha256_bytes(&bytes);
            let lossy: String = n.to_string_lossy().chars().take(40).collect();
            format!("{lossy}~{}", &digest[..8])
        }
    }
}

/// The longest directory name recur writes: the hidden folders beside it
/// (`.NAME.old-<run>`, the run a time and a process id) must fit the
/// 255-byte limit of a file name.
pub const MAX_NAME_BYTES: usize = 200;

/// The lock file's name beside a directory named `name`.
fn lock_name(name: &str) -> String {
    format!(".{name}.lock")
}

/// Whether a file name is that of a lock [`DirWriter::begin`] leaves beside
/// the directory it wrote (`.NAME.lock`): a folder holding a sub-model holds
/// its lock too.
pub fn is_lock_name(file: &str) -> bool {
    file.strip_prefix('.')
        .and_then(|f| f.strip_suffix(".lock"))
        .is_some_and(|name| !name.is_empty())
}

/// The locks this process holds for a whole run ([`hold`]), by lock path.
static HELD: std::sync::Mutex<Vec<(PathBuf, std::fs::File)>> = std::sync::Mutex::new(Vec::new());

/// The lock of `dir` for a whole run, taken before its work starts, so
/// that a second run writing the same directory is refused at its start
/// rather than both running and the last to finish winning (the lock was
/// taken only for the final swap). [`DirWriter::begin`] in the same
/// process uses it; it is released when the `Hold` drops.
pub struct Hold {
    lock_path: PathBuf,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock() {
            held.retain(|(p, _)| p != &self.lock_path);
        }
    }
}

/// Takes `dir`'s lock for the run (see [`Hold`]), and puts back what a
/// stopped write left beside it, so that what cannot be put back is said
/// before the work, not after it.
pub fn hold(dir: &Path) -> Result<Hold> {
    let held = keep(take_lock(dir)?)?;
    recover(dir)?;
    Ok(held)
}

/// Keeps a lock taken for the run in this process's table.
fn keep((lock_path, lock): (PathBuf, std::fs::File)) -> Result<Hold> {
    HELD.lock()
        .map_err(|_| Error::Msg("the lock table was poisoned".into()))?
        .push((lock_path.clone(), lock));
    Ok(Hold { lock_path })
}

/// Refuses a target that cannot be replaced as a whole, before any work:
/// `.` or `..` (the rename failed after training, leaving the new model
/// in a hidden folder), the folder the process runs in or one above it,
/// and a link (the rename replaced the link, `current -> v3`, with a
/// folder, and the model it pointed to stayed as it was).
pub fn check_target(dir: &Path) -> Result<()> {
    let raw = dir.to_string_lossy();
    let last = raw.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if last == "." || last == ".." || raw.trim_end_matches('/').is_empty() {
        return Err(Error::Msg(format!(
            "{raw} is not a folder recur can replace as a whole: name the model directory itself \
             (for example --out model)"
        )));
    }
    let bare = Path::new(raw.trim_end_matches('/'));
    // Checked before the work, not at the rename after it.
    let len = bare.file_name().map_or(0, |n| n.len());
    if len > MAX_NAME_BYTES {
        return Err(Error::Msg(format!(
            "{raw}: the folder's name is {len} bytes; recur writes a model directory beside \
             itself under a longer hidden name, so it takes names of at most {MAX_NAME_BYTES} bytes"
        )));
    }
    if is_mount_point(bare) {
        return Err(Error::Msg(format!(
            "{raw} is a mount point: a model directory is replaced as a whole by a rename, which a \
             mount point refuses; name a folder inside it (for example {raw}/model)"
        )));
    }
    // `link/` would follow the link: look at `link` itself.
    if let Ok(m) = std::fs::symlink_metadata(bare) {
        if let Some(what) = not_a_folder(&m) {
            // A device or a pipe was swapped aside for the model
            // (`--out /dev/null` moved the system's null device).
            return Err(Error::Msg(format!(
                "{} is {what}, not a folder: --out names the model directory to write",
                dir.display()
            )));
        }
        if m.file_type().is_symlink() {
            let to = std::fs::read_link(bare).map_or("?".into(), |t| t.display().to_string());
            return Err(Error::Msg(format!(
                "{} is a link (to {to}): a model directory is replaced as a whole, which would \
                 replace the link with a folder; give the folder itself",
                dir.display()
            )));
        }
    }
    if let (Ok(d), Ok(here)) = (
        std::fs::canonicalize(dir),
        std::env::current_dir().and_then(std::fs::canonicalize),
    ) {
        if here.starts_with(&d) {
            return Err(Error::Msg(format!(
                "{} holds the folder this runs in ({}): a model directory is replaced as a whole; \
                 name one beside or below it",
                dir.display(),
                here.display()
            )));
        }
    }
    Ok(())
}

/// What a path is when it is neither a folder nor a link ("a file", "a
/// device", ...), for messages.
fn not_a_folder(m: &std::fs::Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_dir() || t.is_symlink() {
        return None;
    }
    if t.is_file() {
        return Some("a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_fifo() {
            return Some("a named pipe");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a folder")
}

/// Whether `dir` is a mount point (a Docker volume, a bind mount): on
/// another device than its parent, or listed in `/proc/self/mountinfo`
/// (a bind mount of the same file system keeps the device).
fn is_mount_point(dir: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return false;
    };
    if !real.is_dir() || real.parent().is_none() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (
            std::fs::metadata(&real),
            std::fs::metadata(real.parent().unwrap_or(Path::new("/"))),
        ) {
            if a.dev() != b.dev() {
                return true;
            }
        }
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&unescape_mount(m)) == real)
    })
}

/// A mountinfo path, whose space, tab, newline and backslash are written
/// as octal escapes (`\040`).
fn unescape_mount(m: &str) -> String {
    let b = m.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lock beside `target` for the whole run of a command that writes
/// files there but does not replace a directory (`recur tune`'s folder,
/// `recur corpus build`'s `.npz` and the files beside it), so that two
/// runs cannot interleave their writes. Released when the `Hold` drops,
/// or by the kernel when the process dies. The lock is that of the place
/// the target resolves to: `--out C` and `--out link-to-C` (or `C/x/..`)
/// took two locks, and two searches wrote one folder.
pub fn hold_outputs(target: &Path) -> Result<Hold> {
    let real = crate::fsx::resolve(target).unwrap_or_else(|| target.to_path_buf());
    keep(lock_beside(&real)?)
}

/// Opens and locks the lock file beside `dir`, or says who holds it.
fn take_lock(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    check_target(dir)?;
    let taken = lock_beside(dir)?;
    refuse_busy_inside(dir)?;
    refuse_read_only(dir)?;
    Ok(taken)
}

/// Refuses, before the work, a directory this user may not write in
/// (mode 555, or another user's): the new directory takes its mode, so
/// what the old one held besides its model could not be moved into it,
/// and the old model's files could not be removed; the hidden copy left
/// beside it then failed every later write. Tried by making a file there,
/// which answers for root, groups and access lists alike.
fn refuse_read_only(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    if let Err(e) = tempfile::Builder::new()
        .prefix(".recur-write-")
        .tempfile_in(dir)
    {
        return Err(Error::Msg(format!(
            "{} cannot be written by this user ({e}): recur replaces a model directory as a \
             whole and moves what else it holds into the new one; make it writable (chmod u+w) \
             or choose another folder",
            dir.display()
        )));
    }
    // Its folders move into the new directory after the swap: one that
    // cannot (a mount point; one the user may not write, whose `..` a
    // rename rewrites) was found only after the work, and stayed aside.
    for e in std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
    {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let sub = e.path();
        let why = if is_mount_point(&sub) {
            Some("it is a mount point".to_string())
        } else {
            #[cfg(target_os = "linux")]
            {
                rustix::fs::access(&sub, rustix::fs::Access::WRITE_OK)
                    .err()
                    .map(|e| format!("this user may not write it ({e})"))
            }
            #[cfg(not(target_os = "linux"))]
            None
        };
        if let Some(why) = why {
            return Err(Error::Msg(format!(
                "{} cannot be moved into the new model directory: {why}. recur replaces {} as a \
                 whole and moves its folders along; move that folder out (or make it writable), \
                 then run again",
                sub.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Refuses to replace `dir` while another process writes a model
/// directory inside it (the demo's `lvm/`): the swap moved that writer's
/// work aside and dropped its lock file, after which a second writer of
/// the same sub-model was let in. Checked when the lock is taken and again
/// just before the swap.
fn refuse_busy_inside(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mine: Vec<PathBuf> = HELD
        .lock()
        .map(|h| h.iter().map(|(p, _)| p.clone()).collect())
        .unwrap_or_default();
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if !is_lock_name(&n) || mine.contains(&e.path()) {
            continue;
        }
        // Only a plain file can be a recur lock: a pipe there (or a link to
        // one) would be waited on for a writer.
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(f) = std::fs::File::open(e.path()) else {
            continue;
        };
        if let Err(std::fs::TryLockError::WouldBlock) = f.try_lock() {
            let sub = &n[1..n.len() - ".lock".len()];
            return Err(Error::Msg(format!(
                "{} is being written by another recur (it holds {}): wait for it to finish, \
                 then write {}",
                dir.join(sub).display(),
                e.path().display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// [`take_lock`] without the checks of a directory to replace.
fn lock_beside(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    let parent = parent_of(dir);
    crate::fsx::make_folders(parent)?;
    let lock_path = parent.join(lock_name(&name_of(dir)));
    // Never through a link or onto a device: a link planted at the lock's
    // name (in a shared folder) had root create an empty file wherever it
    // pointed. The check names it; O_NOFOLLOW closes the gap after it.
    if let Some(what) = std::fs::symlink_metadata(&lock_path)
        .ok()
        .filter(|m| !m.is_file())
        .map(|m| {
            if m.file_type().is_symlink() {
                "a link"
            } else {
                "not a plain file"
            }
        })
    {
        return Err(Error::Msg(format!(
            "{} is {what}: recur keeps the lock of {} there as a plain file; remove it and run again",
            lock_path.display(),
            dir.display()
        )));
    }
    let mut open = std::fs::OpenOptions::new();
    open.create(true).truncate(false).write(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let lock = open
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok((lock_path, lock)),
        // A file error (Python's BlockingIOError, an OSError), not bad
        // input: it was a ValueError in Python.
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "another recur is writing it (it holds {}): wait for it, or write elsewhere",
                    lock_path.display()
                ),
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
    }
}

impl DirWriter {
    /// Locks `dir` for writing (or shares the lock this process [`hold`]s
    /// for it) and makes the folder to build it in.
    pub fn begin(dir: &Path) -> Result<DirWriter> {
        let parent = parent_of(dir);
        let name = name_of(dir);
        let lock_path = parent.join(lock_name(&name));
        let held = HELD.lock().ok().and_then(|h| {
            h.iter()
                .find(|(p, _)| p == &lock_path)
                .map(|(_, f)| f.try_clone())
        });
        let lock = match held {
            Some(f) => f.map_err(|e| Error::io(&lock_path, e))?,
            None => take_lock(dir)?.1,
        };
        recover(dir)?;
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let run = format!("{t:x}-{}", std::process::id());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.new-{run}"))
            .rand_bytes(0)
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        Ok(DirWriter {
            target: dir.to_path_buf(),
            tmp: Some(tmp),
            run,
            _lock: lock,
        })
    }

    /// The folder to write the files into.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("not committed yet").path()
    }

    /// Writes the manifest and swaps the new directory in.
    pub fn commit(self) -> Result<()> {
        self.commit_steps(usize::MAX, true)
    }

    /// The commit, stopped as if the process died after `steps` of its
    /// steps (for the crash tests; `usize::MAX` runs it all). Each step is
    /// one write or rename. `swap: false` uses two renames, as where the
    /// system has no exchange.
    fn commit_steps(mut self, steps: usize, swap: bool) -> Result<()> {
        let mut left = steps;
        // `false` once the simulated crash happens: nothing more is done,
        // nothing is cleaned up.
        let mut step = || {
            if left == 0 {
                return false;
            }
            left -= 1;
            true
        };
        refuse_busy_inside(&self.target)?;
        // The new folder is deleted on an error until it is renamed (a
        // manifest that did not fit on the disk left a model-sized hidden
        // copy behind); a simulated crash keeps it, as a dead process would.
        let tmp = self.tmp.take().expect("committed once");
        let dir = tmp.path().to_path_buf();
        let mut files = BTreeMap::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            if e.file_type().map_err(|x| Error::io(e.path(), x))?.is_file() {
                let name = e.file_name().to_string_lossy().to_string();
                files.insert(name, sha256_file(&e.path())?);
            }
        }
        let manifest = Manifest {
            format_version: MANIFEST_VERSION,
            run: self.run.clone(),
            files,
        };
        if !step() {
            let _ = tmp.keep();
            return Ok(());
        }
        write_json(&dir.join(MANIFEST), &manifest)?;
        #[cfg(unix)]
        {
            // The mode of the directory it replaces (a private one stays
            // private), else what the umask gives a new folder (0755 under
            // 022), where the temporary folder is 0700.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&self.target)
                .ok()
                .filter(std::fs::Metadata::is_dir)
                .map_or(0o777 & !crate::fsx::umask(), |m| {
                    m.permissions().mode() & 0o777
                });
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(&dir, e))?;
        }
        let target = self.target.clone();
        if !step() {
            let _ = tmp.keep();
            return Ok(());
        }
        // Checked before the work too; here in case it changed meanwhile.
        if let Some(what) = std::fs::symlink_metadata(&target)
            .ok()
            .as_ref()
            .and_then(not_a_folder)
        {
            return Err(Error::Msg(format!(
                "{} is {what}, not a folder: the model was not written",
                target.display()
            )));
        }
        let kept = tmp.keep();
        // Before the first rename that succeeds, the new folder is only ours.
        let discard = |e: Error| {
            let _ = std::fs::remove_dir_all(&kept);
            e
        };
        if !target.exists() {
            std::fs::rename(&kept, &target).map_err(|e| discard(Error::io(&target, e)))?;
            sync_parent(&target);
            return Ok(());
        }
        // After the swap the old directory is at `old`.
        let old = parent_of(&target).join(format!(".{}.old-{}", name_of(&target), manifest.run));
        if swap && exchange(&kept, &target) {
            if !step() {
                return Ok(());
            }
            std::fs::rename(&kept, &old).map_err(|e| Error::io(&kept, e))?;
        } else {
            std::fs::rename(&target, &old).map_err(|e| discard(Error::io(&target, e)))?;
            if !step() {
                return Ok(());
            }
            std::fs::rename(&kept, &target).map_err(|e| Error::io(&target, e))?;
        }
        // What the old directory holds besides its model comes along:
        // other models kept inside it (the demo's `lvm/`), a user's notes,
        // a file put there while this model trained. Only the old model's
        // own files go; nothing recur did not write is deleted.
        let own = own_files(&old);
        let Some(stranded) = carry_over(&old, &target, &own, &mut step)? else {
            return Ok(());
        };
        if !step() {
            return Ok(());
        }
        let left = remove_own(&old, &own);
        sync_parent(&target);
        match left {
            Ok(()) => Ok(()),
            Err(e) if stranded.is_empty() => Err(Error::Msg(format!(
                "the model was written to {}, but the old one's folder {} could not be removed: \
                 {e}",
                target.display(),
                old.display()
            ))),
            Err(_) => Err(Error::Msg(format!(
                "the model was written to {}, but what the old directory held besides its model \
                 could not all be moved into it ({}); it is in {}: move it where it belongs, \
                 then remove that folder",
                target.display(),
                stranded.join("; "),
                old.display()
            ))),
        }
    }
}

/// The names in a model directory `dir` that are recur's own, to go with
/// it when it is replaced: the files its manifest lists, the manifest,
/// `report.html` (written beside the model), the Python package's record
/// of the model (`.recur-python.json`, which describes the old model
/// only), and every name recur reads as a model file, so that a model
/// with a damaged manifest takes its files with it.
fn own_files(dir: &Path) -> Names {
    let mut own: Names = MODEL_FILES
        .iter()
        .chain(&[MANIFEST, "report.html", ".recur-python.json"])
        .map(Into::into)
        .collect();
    if let Ok(m) = read_json::<Manifest>(&dir.join(MANIFEST)) {
        own.extend(m.files.into_keys().map(Into::into));
    }
    own
}

/// File names in a folder.
type Names = std::collections::HashSet<std::ffi::OsString>;

/// Moves what the old directory `from` holds besides `own` into the
/// directory `to`, each unless its name is taken there; what stayed, each
/// with why. `None` when `step` says the simulated crash of the commit's
/// tests came first (each move is a step).
fn carry_over(
    from: &Path,
    to: &Path,
    own: &Names,
    step: &mut dyn FnMut() -> bool,
) -> Result<Option<Vec<String>>> {
    let mut stranded = Vec::new();
    for e in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let e = e.map_err(|e| Error::io(from, e))?;
        if own.contains(&e.file_name()) {
            continue;
        }
        if !step() {
            return Ok(None);
        }
        let name = e.file_name().to_string_lossy().to_string();
        let dest = to.join(e.file_name());
        if std::fs::symlink_metadata(&dest).is_ok() {
            stranded.push(format!("{name}: the new directory has one of that name"));
        } else if let Err(x) = std::fs::rename(e.path(), &dest) {
            stranded.push(format!("{name}: {x}"));
        }
    }
    Ok(Some(stranded))
}

/// Removes the files of `own` from `dir`, then `dir` itself when nothing
/// else is left in it. A folder recur did not make is never removed with
/// its contents (a mount inside a model directory went with it).
fn remove_own(dir: &Path, own: &Names) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        if own.contains(&e.file_name()) && e.file_type().is_ok_and(|t| !t.is_dir()) {
            std::fs::remove_file(e.path()).map_err(|x| Error::io(e.path(), x))?;
        }
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))
}

fn sync_parent(target: &Path) {
    if let Ok(d) = std::fs::File::open(parent_of(target)) {
        let _ = d.sync_all();
    }
}

/// Swaps two directories in one step where the system can; `false` where
/// it cannot (then nothing was changed).
pub fn exchange(a: &Path, b: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        false
    }
}

/// The hidden folders a write of `dir` stopped part way left beside it,
/// sorted: `.NAME.new-<run>` (a build, or after the swap the old
/// directory) and `.NAME.old-<run>` (the old directory), each named by
/// its run (time in hex, a dash, the process). Names of other shapes are
/// another directory's (`.lstm.old-v1.new-<run>` is the build of
/// `lstm.old-v1`, not a leftover of `lstm`) or the user's.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let name = name_of(dir);
    // A run: nanoseconds since 1970 in hex (16 digits since 2001), a dash,
    // the process id. A user's `.m.old-backup` or `.m.old-2024-1` is not
    // one; neither are the random names of recurs before stop 56, whose
    // leftovers are left alone rather than guessed at.
    let shaped = |rest: &str| {
        rest.split_once('-').is_some_and(|(t, pid)| {
            t.len() >= 12
                && t.bytes().all(|b| b.is_ascii_hexdigit())
                && !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
        })
    };
    let ours = |n: &str| {
        [format!(".{name}.new-"), format!(".{name}.old-")]
            .iter()
            .any(|p| n.strip_prefix(p.as_str()).is_some_and(shaped))
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(parent_of(dir))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    ours(&e.file_name().to_string_lossy())
                        && e.file_type().is_ok_and(|t| t.is_dir())
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Puts back what a crashed commit left beside `dir` (called with the lock
/// held). An old directory (`.old-`, or the `.new-` folder named by the
/// run of the directory now in place: the swap happened, the rename after
/// it did not) goes back when nothing is in its place; otherwise what it
/// holds besides its model moves into the current directory, and only its
/// model's files are removed. A build never swapped in holds only recur's
/// files, which are removed. Whatever cannot move (its name taken, a mount
/// point) stays, with the folder, and the error says so: nothing recur did
/// not write is deleted.
fn recover(dir: &Path) -> Result<()> {
    let name = name_of(dir);
    // The run in place, read before any old directory goes back (the
    // `.new-` folders sort first).
    let in_place = read_json::<Manifest>(&dir.join(MANIFEST))
        .ok()
        .map(|m| m.run);
    for l in leftovers(dir) {
        let n = l
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // A `.new-<run>` folder is the build of that run when its manifest
        // names the run, or (none written yet) when the directory in place
        // is not that run's; otherwise the swap happened and it holds the
        // old directory, whose manifest names an earlier run.
        let own_run = read_json::<Manifest>(&l.join(MANIFEST)).ok().map(|m| m.run);
        let run = n.rsplit_once(".new-").map_or("", |(_, r)| r);
        let is_old = n.starts_with(&format!(".{name}.old-"))
            || own_run.as_deref().is_some_and(|r| r != run)
            || (own_run.is_none() && in_place.as_deref() == Some(run));
        let exists = std::fs::symlink_metadata(dir).is_ok();
        // The old directory, moved aside with nothing in its place, goes
        // back (with or without a model: it may have held only other
        // models' folders).
        if is_old && !exists {
            std::fs::rename(&l, dir).map_err(|e| Error::io(&l, e))?;
            continue;
        }
        // A build holds files recur wrote, none hidden, and no folder:
        // any folder or hidden file in it is moved back, not deleted, as
        // an old directory's are.
        let own: Names = if is_old {
            own_files(&l)
        } else {
            std::fs::read_dir(&l)
                .map_err(|e| Error::io(&l, e))?
                .flatten()
                .filter(|e| {
                    e.file_type().is_ok_and(|t| !t.is_dir())
                        && !e.file_name().to_string_lossy().starts_with('.')
                })
                .map(|e| e.file_name())
                .collect()
        };
        let stranded = if dir.is_dir() {
            carry_over(&l, dir, &own, &mut || true)?.unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Err(e) = remove_own(&l, &own) {
            return Err(Error::Msg(if stranded.is_empty() {
                format!(
                    "{} is left from an earlier write of {} and cannot be removed ({e}): move \
                     out what of it is yours, remove it, then run again",
                    l.display(),
                    dir.display()
                )
            } else {
                format!(
                    "{} holds what an earlier write of {} could not move back into it ({}): \
                     move it where it belongs and remove that folder, then run again",
                    l.display(),
                    dir.display(),
                    stranded.join("; ")
                )
            }));
        }
    }
    Ok(())
}

/// Puts back what a write stopped part way left beside `dir`, as the next
/// writer would, when a reader comes first: the old directory itself (two
/// renames, where the file system has no exchange, and the process died
/// between them: no model at all was there) or its sub-folders (the
/// demo's `lvm/`, moved out for the swap). Only with the lock, which a
/// writer at work holds, and only when such hidden folders are there (one
/// read of the parent folder); a reader that cannot take the lock (a
/// read-only folder) leaves everything as it is.
pub fn repair(dir: &Path) {
    // A model inside another's directory (the demo's `lvm/`) that is not
    // there may have been moved aside by a write of the outer one, which
    // its repair puts back (it was reported missing until the outer
    // directory itself was read).
    // Only an outer folder with a name of its own: `.` or `..` (the outer
    // of `./model`) would be taken for a directory named `model`, and a
    // write of `model` that crashed would be scattered into it.
    if !dir.exists() {
        if let Some(outer) = dir.parent().filter(|p| p.file_name().is_some()) {
            repair_one(outer);
        }
    }
    repair_one(dir);
}

fn repair_one(dir: &Path) {
    // `.`, `..`, `/`: no name for hidden folders beside it to carry.
    if dir.file_name().is_none() {
        return;
    }
    if !leftovers(dir).is_empty() {
        if let Ok((_path, _lock)) = lock_beside(dir) {
            let _ = recover(dir);
        }
    }
}

/// The files of a model directory that recur reads (of either job): each
/// that is there must be listed in its manifest.
pub const MODEL_FILES: [&str; 16] = [
    "model.safetensors",
    "config.yaml",
    "features.json",
    "scaler.json",
    "data.json",
    "selection.json",
    "ensemble.json",
    "trees.json",
    "xgboost.json",
    "reference.json",
    "history.json",
    "report.json",
    "final.safetensors",
    "training_history.json",
    "split.json",
    "import.json",
];

/// Refuses a directory whose files differ from its `manifest.json`,
/// naming each: a listed file changed or missing, or a model file there
/// that it does not list. Weights without a manifest are refused too:
/// deleting it (or entries of it) turned the check off. A folder with
/// neither passes, for the caller to say that it holds no model.
pub fn check_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let p = dir.join(MANIFEST);
    // A pipe or a device there is named as such, not as a missing file.
    crate::fsx::refuse_non_file(&p)?;
    if !p.is_file() && !dir.join(MODEL_FILES[0]).exists() {
        // No model here at all: the caller says what it looked for.
        return Ok(None);
    }
    if !p.is_file() {
        return Err(Error::checkpoint(
            dir,
            format!(
                "no {MANIFEST}: recur writes one with every model directory, listing each file's \
                 SHA-256. It was removed, or the folder holds no recur model (or one from before \
                 manifests): retrain, or restore it"
            ),
        ));
    }
    // A file that cannot be read says why; one that reads but does not
    // parse is damaged.
    let text = crate::fsx::read_text(&p)?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| {
        Error::checkpoint(
            dir,
            format!(
                "{MANIFEST} is damaged (a copy cut short?): {e}; restore the directory from a \
                 good copy, or retrain"
            ),
        )
    })?;
    if m.format_version != MANIFEST_VERSION {
        return Err(Error::checkpoint(
            dir,
            format!(
                "{MANIFEST} has format version {}; this recur reads version {MANIFEST_VERSION}: use the recur that wrote it, or retrain",
                m.format_version
            ),
        ));
    }
    let mut differ = Vec::new();
    for (name, sha) in &m.files {
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            differ.push(format!("{name} (not a file name)"));
            continue;
        }
        if let Some(why) = differs(dir, name, sha)? {
            differ.push(format!("{name} ({why})"));
        }
    }
    for name in MODEL_FILES {
        if !m.files.contains_key(name) && dir.join(name).exists() {
            differ.push(format!("{name} (not listed)"));
        }
    }
    if differ.is_empty() {
        Ok(Some(m))
    } else {
        Err(Error::checkpoint(
            dir,
            format!(
                "these files differ from {MANIFEST} (run {}): {}; the directory was edited or mixed with another run's files: retrain, or restore them",
                m.run,
                differ.join(", ")
            ),
        ))
    }
}

/// Rewrites `dir`'s manifest with the digests its listed files have now,
/// as someone editing a model by hand could: the tests use it to reach the
/// checks behind the manifest's (each file's own, and across files),
/// which must hold without it.
#[doc(hidden)]
pub fn reseal(dir: &Path) -> Result<()> {
    let p = dir.join(MANIFEST);
    let mut m: Manifest = read_json(&p)?;
    for (name, sha) in m.files.iter_mut() {
        *sha = sha256_file(&dir.join(name))?;
    }
    write_json(&p, &m)
}

/// One file of `dir` against its manifest: an error naming it when the
/// manifest lists it with another digest or it is missing; nothing to say
/// when there is no manifest or it does not list the file.
pub fn check_listed(dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(MANIFEST);
    if !p.exists() {
        return Ok(());
    }
    let m: Manifest = read_json(&p)?;
    let Some(sha) = m.files.get(name) else {
        return Ok(());
    };
    let Some(why) = differs(dir, name, sha)? else {
        return Ok(());
    };
    Err(Error::checkpoint(
        dir,
        format!(
            "{name} ({why}) differs from {MANIFEST} (run {}): it was edited or mixed with another run's; retrain, or restore it",
            m.run
        ),
    ))
}

/// How file `name` of `dir` differs from the digest its manifest lists:
/// `missing`, `changed`, or not at all.
fn differs(dir: &Path, name: &str, sha: &str) -> Result<Option<&'static str>> {
    let f = dir.join(name);
    Ok(if !f.is_file() {
        Some("missing")
    } else if sha256_file(&f)? != sha {
        Some("changed")
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Targets whose rename would fail after the work are refused before
    /// it: a name too long for the hidden folders beside it, a mount
    /// point. Names that are not UTF-8 keep locks of their own.
    #[test]
    fn long_names_and_mount_points_are_refused_and_odd_names_keep_their_own_lock() {
        let d = tempfile::tempdir().unwrap();
        let e = check_target(&d.path().join("n".repeat(MAX_NAME_BYTES + 1)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("201 bytes") && e.contains("at most 200"), "{e}");
        check_target(&d.path().join("n".repeat(MAX_NAME_BYTES))).unwrap();
        check_target(&d.path().join("m")).unwrap();
        if Path::new("/proc/self/mountinfo").exists() {
            let e = check_target(Path::new("/proc")).unwrap_err().to_string();
            assert!(e.contains("is a mount point"), "{e}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let a = d.path().join(std::ffi::OsStr::from_bytes(b"y\xff"));
            let b = d.path().join(std::ffi::OsStr::from_bytes(b"y\xfe"));
            assert_ne!(name_of(&a), name_of(&b));
            let _ha = hold(&a).unwrap();
            let _hb = hold(&b).unwrap();
        }
        assert_eq!(name_of(&d.path().join("plain")), "plain");
    }

    /// A directory is not replaced while another process writes a model
    /// inside it (its lock beside the sub-model, inside the directory).
    #[test]
    fn a_directory_is_not_replaced_while_a_model_inside_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        let w = DirWriter::begin(&m).unwrap();
        std::fs::write(w.path().join("a.json"), "1").unwrap();
        w.commit().unwrap();
        // Another process's lock: an open file description of our own
        // that this process's table does not list.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(m.join(".lvm.lock"))
            .unwrap();
        lock.try_lock().unwrap();
        let e = hold(&m).err().unwrap().to_string();
        assert!(e.contains("m/lvm is being written by another recur"), "{e}");
        drop(lock);
        let run = hold(&m).unwrap();
        let w = DirWriter::begin(&m).unwrap();
        std::fs::write(w.path().join("a.json"), "2").unwrap();
        w.commit().unwrap();
        drop(run);
        assert_eq!(std::fs::read_to_string(m.join("a.json")).unwrap(), "2");
    }

    /// A run holds its directory's lock from its start: a second run is
    /// refused then (both ran and the last to finish won, when the lock
    /// was only taken for the swap), the run's own writer shares the lock,
    /// and it is free again once the run ends.
    #[test]
    fn a_run_holds_the_lock_from_its_start() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        let run = hold(&m).unwrap();
        let e = hold(&m).err().unwrap();
        // A file error naming the directory (Python's BlockingIOError).
        assert!(
            matches!(&e, Error::Io { path, io } if path == &m && io.kind() == std::io::ErrorKind::WouldBlock),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.contains("another recur is writing"), "{e}");
        let w = DirWriter::begin(&m).unwrap();
        std::fs::write(w.path().join("a.json"), "1").unwrap();
        w.commit().unwrap();
        assert!(hold(&m).is_err(), "the run still holds it");
        drop(run);
        let again = hold(&m).unwrap();
        drop(again);
        DirWriter::begin(&m).unwrap();
    }

    /// Targets that cannot be swapped whole are refused before any work.
    #[test]
    fn a_target_of_dot_a_link_or_the_working_folder_is_refused() {
        let d = tempfile::tempdir().unwrap();
        for p in [".", "..", "a/.", "a/..", "/"] {
            let e = check_target(Path::new(p)).unwrap_err().to_string();
            assert!(e.contains("not a folder recur can replace"), "{p}: {e}");
        }
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = d.path().join("current");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = check_target(&link).unwrap_err().to_string();
        assert!(e.contains("is a link"), "{e}");
        let slash = PathBuf::from(format!("{}/", link.display()));
        assert!(check_target(&slash)
            .unwrap_err()
            .to_string()
            .contains("is a link"));
        assert!(DirWriter::begin(&link).is_err());
        let here = std::env::current_dir().unwrap();
        let e = check_target(here.parent().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds the folder this runs in"), "{e}");
        assert!(check_target(&real).is_ok() && check_target(&d.path().join("new")).is_ok());
    }

    /// Two runs into one folder named two ways (a link to it, `C/x/..`)
    /// take one lock: they took two and wrote one folder together.
    #[test]
    fn one_folder_named_two_ways_is_one_lock() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("c");
        std::fs::create_dir_all(c.join("x")).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&c, &link).unwrap();
        let held = hold_outputs(&c).unwrap();
        for other in [link.clone(), c.join("x/..")] {
            assert!(hold_outputs(&other).is_err(), "{}", other.display());
        }
        drop(held);
        hold_outputs(&link).unwrap();
    }

    /// A file, pipe or device given as the model directory is refused
    /// before the work (`--out /dev/null` moved the system's null device
    /// aside for the model), and a commit onto one that appeared meanwhile
    /// fails and leaves no hidden copy behind.
    #[test]
    fn a_target_that_is_not_a_folder_is_never_swapped_and_nothing_is_left() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = check_target(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a named pipe, not a folder"), "{e}");
        assert!(DirWriter::begin(&fifo).is_err());
        let file = d.path().join("f");
        std::fs::write(&file, "data").unwrap();
        assert!(check_target(&file)
            .unwrap_err()
            .to_string()
            .contains("is a file, not a folder"));
        let m = d.path().join("m");
        let w = DirWriter::begin(&m).unwrap();
        std::fs::write(w.path().join("a.json"), "1").unwrap();
        std::fs::write(&m, "appeared").unwrap();
        let e = w.commit().unwrap_err().to_string();
        assert!(e.contains("is a file, not a folder"), "{e}");
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "appeared");
        let hidden = |d: &Path| {
            std::fs::read_dir(d)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains(".new-") || n.contains(".old-"))
                .collect::<Vec<_>>()
        };
        assert!(hidden(d.path()).is_empty(), "{:?}", hidden(d.path()));
    }

    #[test]
    fn a_directory_is_swapped_in_whole_and_checked_against_its_manifest() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        let w = DirWriter::begin(&m).unwrap();
        std::fs::write(w.path().join("a.json"), "1").unwrap();
        std::fs::write(w.path().join("stale.json"), "old").unwrap();
        // Nothing is at the target until the commit.
        assert!(!m.exists());
        // A second writer is refused while the first holds the lock.
        let e = DirWriter::begin(&m).err().unwrap().to_string();
        assert!(e.contains("another recur is writing"), "{e}");
        w.commit().unwrap();
        assert!(check_manifest(&m).unwrap().is_some());
        std::fs::create_dir(m.join("lvm")).unwrap();
        std::fs::write(m.join("lvm/x"), "kept").unwrap();
        // Rewriting replaces every file: the stale one goes, sub-folders stay.
        let w = DirWriter::begin(&m).unwrap();
        std::fs::write(w.path().join("a.json"), "2").unwrap();
        w.commit().unwrap();
        assert_eq!(std::fs::read_to_string(m.join("a.json")).unwrap(), "2");
        assert!(!m.join("stale.json").exists());
        assert_eq!(std::fs::read_to_string(m.join("lvm/x")).unwrap(), "kept");
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".new-") || n.contains(".old-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // An edited file is named.
        std::fs::write(m.join("a.json"), "3").unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("a.json (changed)"), "{e}");
        std::fs::remove_file(m.join("a.json")).unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("a.json (missing)"), "{e}");
        // A model file the manifest does not list is named: removing its
        // entry turned the check off for it.
        std::fs::write(m.join("a.json"), "2").unwrap();
        std::fs::write(m.join("config.yaml"), "edited").unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("config.yaml (not listed)"), "{e}");
        std::fs::remove_file(m.join("config.yaml")).unwrap();
        // The user's XGBoost model too (it had passed); a file recur does
        // not read is the user's own.
        std::fs::write(m.join("xgboost.json"), "{}").unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("xgboost.json (not listed)"), "{e}");
        std::fs::remove_file(m.join("xgboost.json")).unwrap();
        std::fs::write(m.join("notes.txt"), "mine").unwrap();
        check_manifest(&m).unwrap();
        std::fs::remove_file(m.join("notes.txt")).unwrap();
        // So are weights without a manifest (deleting it did the same); a
        // folder with neither holds no model, for the caller to say.
        let saved = std::fs::read(m.join(MANIFEST)).unwrap();
        std::fs::remove_file(m.join(MANIFEST)).unwrap();
        std::fs::write(m.join("model.safetensors"), "w").unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("no manifest.json"), "{e}");
        std::fs::remove_file(m.join("model.safetensors")).unwrap();
        assert!(check_manifest(&m).unwrap().is_none());
        // A manifest cut short (an interrupted copy) is named as damaged.
        std::fs::write(m.join(MANIFEST), &saved[..saved.len() / 2]).unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(
            e.contains("manifest.json is damaged (a copy cut short?)"),
            "{e}"
        );
        std::fs::write(m.join(MANIFEST), saved).unwrap();
        assert!(check_manifest(&m).unwrap().is_some());
        // Rewritten to match an edit, it passes (what the tests of the
        // checks behind it use).
        std::fs::write(m.join("a.json"), "edited").unwrap();
        assert!(check_manifest(&m).is_err());
        reseal(&m).unwrap();
        assert!(check_manifest(&m).is_ok());
        // A manifest of another format version is refused, not read.
        let mut man: Manifest = read_json(&m.join(MANIFEST)).unwrap();
        man.files.clear();
        man.format_version = 999;
        write_json(&m.join(MANIFEST), &man).unwrap();
        let e = check_manifest(&m).unwrap_err().to_string();
        assert!(e.contains("format version 999"), "{e}");
    }

    /// What a replaced directory holds besides its model comes along: a
    /// file put there while the new model was built (it was deleted with
    /// the old one), hidden files, other models' folders. The old model's
    /// own files go, including a stale one of its manifest.
    #[test]
    fn what_the_old_directory_holds_besides_its_model_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        write_version(&m, 1, usize::MAX, true);
        std::fs::write(m.join("report.html"), "old report").unwrap();
        std::fs::write(m.join(".notes"), "mine").unwrap();
        std::fs::create_dir(m.join("lvm")).unwrap();
        std::fs::write(m.join("lvm/x"), "kept").unwrap();
        for swap in [true, false] {
            let w = DirWriter::begin(&m).unwrap();
            std::fs::write(w.path().join("a.json"), "2").unwrap();
            std::fs::write(w.path().join("b.json"), "2").unwrap();
            std::fs::write(m.join("thesis.txt"), "written meanwhile").unwrap();
            w.commit_steps(usize::MAX, swap).unwrap();
            assert_eq!(version(&m), 2);
            for (f, want) in [
                (".notes", "mine"),
                ("lvm/x", "kept"),
                ("thesis.txt", "written meanwhile"),
            ] {
                assert_eq!(std::fs::read_to_string(m.join(f)).unwrap(), want, "{f}");
            }
            assert!(!m.join("report.html").exists());
        }
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".old-"))
            .collect();
        assert!(left.is_empty());
    }

    /// A folder of the old directory that cannot be moved back (a folder
    /// of its name is in the new one by then) is never deleted, by the
    /// next reader or writer either: the hidden folder stays, and the next
    /// writer says so. It was removed whole, a mount inside it included.
    #[test]
    fn a_folder_that_cannot_be_moved_back_is_never_deleted() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        write_version(&m, 1, usize::MAX, true);
        std::fs::create_dir(m.join("cache")).unwrap();
        std::fs::write(m.join("cache/precious.txt"), "precious").unwrap();
        // A crash right after the swap: the old directory is aside, its
        // folder inside it; the user makes a folder of that name meanwhile.
        write_version(&m, 2, 3, true);
        assert_eq!(version(&m), 2);
        std::fs::create_dir(m.join("cache")).unwrap();
        repair(&m);
        let old: Vec<PathBuf> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".m.old-"))
            .collect();
        assert_eq!(old.len(), 1, "{old:?}");
        let kept = old[0].join("cache/precious.txt");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "precious");
        // Only the old model's own files went.
        assert!(!old[0].join("a.json").exists() && !old[0].join(MANIFEST).exists());
        let e = DirWriter::begin(&m).err().unwrap().to_string();
        assert!(
            e.contains(".m.old-") && e.contains("cache: the new directory has one of that name"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "precious");
        // Once the user has moved it, writing goes on.
        std::fs::remove_dir(m.join("cache")).unwrap();
        drop(DirWriter::begin(&m).unwrap());
        assert_eq!(
            std::fs::read_to_string(m.join("cache/precious.txt")).unwrap(),
            "precious"
        );
        assert!(!old[0].exists());
    }

    /// Only folders of a leftover's shape are a directory's leftovers: the
    /// build of `lstm.old-v1` (`.lstm.old-v1.new-<run>`) starts like an
    /// old `lstm`, and a reader of `lstm` stripped its files.
    #[test]
    fn another_directorys_build_is_not_taken_for_a_leftover() {
        let d = tempfile::tempdir().unwrap();
        let other = d.path().join(".lstm.old-v1.new-18ef268616f72bf4-42");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("model.safetensors"), "w").unwrap();
        for n in [
            ".lstm.old-18ef268616f72bf4-42",
            ".lstm.new-18ef268616f72bf4-42",
            ".lstm.new-aB3dE9",
        ] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        let names: Vec<String> = leftovers(&d.path().join("lstm"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        // The random name of an earlier recur's build is left alone too.
        assert_eq!(
            names,
            [
                ".lstm.new-18ef268616f72bf4-42",
                ".lstm.old-18ef268616f72bf4-42"
            ]
        );
        repair(&d.path().join("lstm"));
        assert!(other.join("model.safetensors").exists());
    }

    /// A crash right after the swap leaves the old directory in the
    /// build's folder (`.m.new-<run>`); it is told apart by its manifest's
    /// run even when the new directory is gone or its manifest damaged
    /// (it was taken for a build, and its files deleted). Folders of the
    /// user's that look like leftovers but are not run-named are left
    /// alone, and a pipe among the locks inside is not waited on.
    #[test]
    fn the_old_directory_in_the_builds_folder_is_told_apart_by_its_run() {
        for spoil in ["removed", "damaged"] {
            let d = tempfile::tempdir().unwrap();
            let m = d.path().join("m");
            write_version(&m, 1, usize::MAX, true);
            std::fs::write(m.join(".notes"), "hidden").unwrap();
            write_version(&m, 2, 2, true);
            assert_eq!(version(&m), 2);
            if spoil == "removed" {
                std::fs::remove_dir_all(&m).unwrap();
                repair(&m);
                assert_eq!(version(&m), 1, "{spoil}");
            } else {
                std::fs::write(m.join(MANIFEST), "{").unwrap();
                repair(&m);
            }
            assert_eq!(
                std::fs::read_to_string(m.join(".notes")).unwrap(),
                "hidden",
                "{spoil}"
            );
            let left: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains(".new-") || n.contains(".old-"))
                .collect();
            assert!(left.is_empty(), "{spoil}: {left:?}");
        }
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        write_version(&m, 1, usize::MAX, true);
        for n in [".m.old-backup", ".m.new-staged", ".m.old-2024-1"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
            std::fs::write(d.path().join(n).join("a.json"), "mine").unwrap();
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            m.join(".x.lock"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        repair(&m);
        drop(DirWriter::begin(&m).unwrap());
        for n in [".m.old-backup", ".m.new-staged", ".m.old-2024-1"] {
            let kept = std::fs::read_to_string(d.path().join(n).join("a.json"));
            assert_eq!(kept.unwrap(), "mine", "{n}");
        }
    }

    /// The lock is never opened through a link (planted in a shared
    /// folder, it had root create files where it pointed).
    #[test]
    fn a_link_at_the_locks_name_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, d.path().join(".m.lock")).unwrap();
        let e = DirWriter::begin(&d.path().join("m"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(".m.lock is a link") && e.contains("remove it"),
            "{e}"
        );
        assert!(!target.exists());
    }

    /// Writes model `v` (files a.json and b.json) into `m`.
    fn write_version(m: &Path, v: u32, crash_after: usize, swap: bool) {
        let w = DirWriter::begin(m).unwrap();
        std::fs::write(w.path().join("a.json"), v.to_string()).unwrap();
        std::fs::write(w.path().join("b.json"), v.to_string()).unwrap();
        w.commit_steps(crash_after, swap).unwrap();
    }

    fn version(m: &Path) -> u32 {
        check_manifest(m).unwrap().expect("a manifest");
        let a = std::fs::read_to_string(m.join("a.json")).unwrap();
        let b = std::fs::read_to_string(m.join("b.json")).unwrap();
        assert_eq!(a, b, "a mixed directory");
        a.parse().unwrap()
    }

    #[test]
    fn a_commit_crashed_after_any_step_leaves_one_whole_model_and_loses_nothing() {
        for swap in [true, false] {
            crashes_leave_one_whole_model(swap);
        }
    }

    /// A reader of a missing path whose outer folder has no name (`../x`,
    /// `./x`) leaves a crash's leftovers alone: that outer was taken for a
    /// directory named `model` (the name of none), and the leftovers of a
    /// crashed write of `model` were scattered into it.
    #[test]
    fn a_reader_of_a_path_under_a_nameless_folder_leaves_leftovers_alone() {
        for crash_after in 0..12 {
            let d = tempfile::tempdir().unwrap();
            let top = d.path().join("top");
            std::fs::create_dir(&top).unwrap();
            let m = top.join("model");
            write_version(&m, 1, usize::MAX, false);
            std::fs::create_dir(m.join("price")).unwrap();
            std::fs::write(m.join("price").join("x"), "price").unwrap();
            write_version(&m, 2, crash_after, false);
            // `top/..` has no name; what is beside it read as its own.
            repair(&top.join("..").join("typo"));
            assert!(
                !d.path().join("price").exists(),
                "crash after {crash_after}"
            );
            repair(&m);
            let x = std::fs::read_to_string(m.join("price").join("x"));
            assert_eq!(x.unwrap(), "price", "crash after {crash_after}");
        }
    }

    fn crashes_leave_one_whole_model(swap: bool) {
        let mut crashed_between = 0;
        for crash_after in 0..12 {
            let d = tempfile::tempdir().unwrap();
            let m = d.path().join("m");
            write_version(&m, 1, usize::MAX, swap);
            for sub in ["price", "other"] {
                std::fs::create_dir(m.join(sub)).unwrap();
                std::fs::write(m.join(sub).join("x"), sub).unwrap();
            }
            // The user's own beside the models: a hidden file, a file and
            // a link, which no crash may delete.
            std::fs::write(m.join(".notes"), "hidden").unwrap();
            std::fs::write(m.join("notes.txt"), "mine").unwrap();
            std::os::unix::fs::symlink("price", m.join("shortcut")).unwrap();
            write_version(&m, 2, crash_after, swap);
            // Right after the crash: the old model or the new, whole (with
            // two renames, possibly none until a reader or the next writer
            // restores it; here a reader comes first).
            if !swap && !m.exists() {
                repair(&m);
                assert_eq!(version(&m), 1, "crash after {crash_after}");
            }
            let v = version(&m);
            if v == 2 && crash_after < 10 {
                crashed_between += 1;
            }
            // A reader (or the next writer) puts back what the crash left
            // aside, and leaves nothing hidden behind; a reader of a model
            // inside (the demo's `lvm/`) puts it back too.
            match crash_after % 3 {
                0 => repair(&m),
                1 => drop(DirWriter::begin(&m).unwrap()),
                _ => {
                    for sub in ["price", "other"] {
                        repair(&m.join(sub));
                        let x = std::fs::read_to_string(m.join(sub).join("x"));
                        assert_eq!(x.unwrap(), sub, "crash after {crash_after}: {sub} unseen");
                    }
                    repair(&m);
                }
            }
            assert_eq!(version(&m), v);
            for sub in ["price", "other"] {
                let x = std::fs::read_to_string(m.join(sub).join("x"));
                assert_eq!(x.unwrap(), sub, "crash after {crash_after}: {sub} lost");
            }
            for (f, want) in [
                (".notes", "hidden"),
                ("notes.txt", "mine"),
                ("shortcut/x", "price"),
            ] {
                let x = std::fs::read_to_string(m.join(f));
                assert_eq!(x.unwrap(), want, "crash after {crash_after}: {f} lost");
            }
            let hidden: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains(".new-") || n.contains(".old-"))
                .collect();
            assert!(hidden.is_empty(), "crash after {crash_after}: {hidden:?}");
        }
        // The swap happened before some of the crashes (so they tested the
        // moves of what the old directory held), not only before or after
        // the whole commit.
        assert!(crashed_between >= 5, "{crashed_between}");
    }
}
