//! Atomic file writes: write a temporary file beside the target, flush it to
//! disk, then rename it over the target. A crash or a full disk leaves either
//! the old file or the new one, never half of one. The new file has the
//! mode the user's umask gives a new file, or the mode of the file it
//! replaces. An output named `-`, `/dev/stdout` or `/dev/fd/N` is written to
//! that open descriptor as it stands (a shell's `>>` appends), never renamed
//! over the file behind it.
//!
//! And bounded whole-file reads: every file recur reads whole goes through
//! [`read_bounded`], which refuses a device, pipe or folder (a symbolic
//! link to `/dev/zero` would otherwise be read until memory runs out) and a
//! file larger than the reader's limit, before allocating for it.

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The value of one field of Linux's `/proc/self/status` (`Umask`,
/// `SigIgn`, ...), trimmed; None where there is no such file or field.
pub fn proc_status(field: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The process's file-mode creation mask, as Linux shows it in
/// `/proc/self/status` (else the usual 022). Read there because umask(2)
/// reads the mask only by setting it, which races with other threads
/// creating files.
pub fn umask() -> u32 {
    proc_status("Umask")
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

/// Gives the temporary file `tmp` that will replace `path` the mode of the
/// file it replaces, or the mode the umask gives a new file (0644 under
/// the usual 022), where `tempfile` makes it 0600: a model directory is read
/// by other users and services, a private one (umask 077) stays private,
/// and the rename keeps the temporary file's mode. The group of the file
/// it replaces is kept too, where the user may give it (a file shared
/// with a group lost it, as `sed -i` does not), and its owner when root
/// writes it (a service's file became root's).
fn file_mode(tmp: &Path, path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let old = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file);
        let mode = old
            .as_ref()
            .map_or(0o666 & !umask(), |m| m.permissions().mode() & 0o777);
        if let Some(m) = &old {
            // Refused unless the user owns the file and is in the group,
            // or is root: then the file keeps the user's own group.
            let _ = std::os::unix::fs::chown(tmp, Some(m.uid()), Some(m.gid()))
                .or_else(|_| std::os::unix::fs::chown(tmp, None, Some(m.gid())));
        }
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (tmp, path);
    Ok(())
}

/// Where a write to `path` goes: a symbolic link is written through to
/// its target (the rename would replace the link), a device or pipe
/// is written directly, since it cannot be renamed over, and a descriptor
/// of this process (`-`, `/dev/stdout`, `/dev/fd/N`) is written through
/// that descriptor: reopening `/proc/self/fd/1` would truncate the file a
/// shell's `>>` appends to, and renaming over it would replace that file.
enum Target {
    File(std::path::PathBuf),
    Special(std::path::PathBuf),
    Fd(i32),
}

/// Whether `path` names standard output: `-`, or a link to this process's
/// descriptor 1 (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`). The
/// command line then prints its own lines to standard error.
pub fn is_stdout(path: &Path) -> bool {
    matches!(target(path), Ok(Target::Fd(1)))
}

/// The descriptor of this process that `p` names (`/proc/self/fd/N`, or
/// `/dev/fd/N`, whose folder is a link to it), where it is open.
fn own_fd(p: &Path) -> Option<i32> {
    let n = p.file_name()?.to_str()?.parse::<i32>().ok()?;
    let dir = std::fs::canonicalize(p.parent()?).ok()?;
    let own = Path::new("/proc").join(std::process::id().to_string());
    let is_fd_dir = dir == own.join("fd")
        || (dir.starts_with(own.join("task")) && dir.file_name() == Some("fd".as_ref()));
    (is_fd_dir && std::fs::symlink_metadata(p).is_ok()).then_some(n)
}

/// How an error names the descriptor `fd` an output named `shown` (`-`,
/// `/dev/stdout`, ...) goes to: standard output as such, as the commands'
/// own output's errors name it.
fn fd_name(fd: i32, shown: &Path) -> &Path {
    if fd == 1 {
        Path::new("standard output")
    } else {
        shown
    }
}

/// Writes `bytes` to this process's open descriptor `fd`, at its offset
/// and with its flags (a shell's `>>` appends).
fn write_fd(fd: i32, bytes: &[u8], shown: &Path) -> Result<()> {
    let shown = fd_name(fd, shown);
    #[cfg(unix)]
    {
        use std::os::fd::BorrowedFd;
        if fd == 1 {
            let mut o = std::io::stdout().lock();
            return o
                .write_all(bytes)
                .and_then(|_| o.flush())
                .map_err(|e| Error::io(shown, e));
        }
        // SAFETY: `own_fd` found the descriptor open in /proc a moment ago;
        // it is only borrowed to be duplicated, and the copy is ours.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .map_err(|e| Error::io(shown, e))?;
        let mut f = std::fs::File::from(owned);
        f.write_all(bytes).map_err(|e| Error::io(shown, e))
    }
    #[cfg(not(unix))]
    {
        let _ = (fd, bytes);
        Err(Error::Msg(format!(
            "{}: cannot write a descriptor here",
            shown.display()
        )))
    }
}

fn target(path: &Path) -> Result<Target> {
    if path.as_os_str() == "-" {
        return Ok(Target::Fd(1));
    }
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        if let Some(fd) = own_fd(&p) {
            return Ok(Target::Fd(fd));
        }
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                p = match p.parent() {
                    Some(dir) => dir.join(to),
                    None => to,
                };
            }
            Ok(m) if m.is_dir() => {
                return Err(Error::Msg(format!(
                    "{} is a folder: give a file name to write",
                    path.display()
                )))
            }
            Ok(m) if !m.is_file() => return Ok(Target::Special(p)),
            _ => return Ok(Target::File(p)),
        }
    }
    Err(Error::Msg(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Writes `bytes` to `path` atomically (temp file in the same folder + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = match target(path)? {
        Target::File(p) => p,
        Target::Fd(fd) => return write_fd(fd, bytes, path),
        Target::Special(p) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| Error::io(&p, e))?;
            return f.write_all(bytes).map_err(|e| Error::io(&p, e));
        }
    };
    let path = path.as_path();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    make_folders(dir)?;
    let mut tmp = temp_beside(path, dir)?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file_mode(tmp.path(), path).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Whether process `pid` is known to have ended: not this one, and not in
/// `/proc` (where there is no `/proc`, nothing is known to have ended).
pub fn pid_gone(pid: u32) -> bool {
    pid != std::process::id()
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `path` was last modified more than `secs` seconds ago (false
/// where that cannot be told): what a process left there may be another
/// container's at work, whose process id this one cannot see, until then.
pub fn untouched_for(path: &Path, secs: u64) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(secs))
}

/// The temporary file an atomic write of `path` goes through, in `dir`
/// beside it: `.NAME.recur-PID-XXXXXX`. A process killed while writing
/// (Ctrl-C in `predict`) left its temporary file for good; the next write
/// of the same name removes those of processes no longer running, and
/// untouched for ten minutes (a process id seen from another container
/// sharing the folder may be alive there).
fn temp_beside(path: &Path, dir: &Path) -> Result<tempfile::NamedTempFile> {
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().to_string());
    let name: String = name.chars().take(100).collect();
    let stem = format!(".{name}.recur-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let Some(pid) = n
                .strip_prefix(&stem)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if untouched_for(&e.path(), 600) && pid_gone(pid) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{stem}{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(|e| {
            // Said as what it is: an output that may be written where it
            // is cannot be replaced in a folder that refuses new files.
            use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
            let why = match e.kind() {
                PermissionDenied => "does not let this user create files",
                ReadOnlyFilesystem => "is on a read-only file system",
                _ => return Error::io(dir, e),
            };
            Error::Msg(format!(
                "cannot write {}: recur writes an output to a temporary file beside it and \
                 renames it into place (a stopped run never leaves half a file), and the folder \
                 {} {why}; write it to a folder where files can be created",
                path.display(),
                dir.display(),
            ))
        })
}

/// Writes `path` atomically through `write`, which is given the path of a
/// temporary file beside it (for writers that take a path, as candle's
/// `.npy` and `.npz` writers do); the file is flushed to disk before the
/// rename.
pub fn write_atomic_with<E: std::fmt::Display>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let path = match target(path)? {
        Target::File(p) => p,
        Target::Special(p) => {
            return write(&p).map_err(|e| Error::Msg(format!("cannot write {}: {e}", p.display())))
        }
        Target::Fd(fd) => {
            // The writer takes a path: it writes a private temporary file,
            // whose bytes then go to the descriptor.
            let shown = fd_name(fd, path);
            let tmp = tempfile::NamedTempFile::new().map_err(|e| {
                Error::Msg(format!(
                    "cannot write {}: a temporary file in {} (TMPDIR) failed: {e}",
                    shown.display(),
                    std::env::temp_dir().display()
                ))
            })?;
            write(tmp.path())
                .map_err(|e| Error::Msg(format!("cannot write {}: {e}", shown.display())))?;
            let bytes = std::fs::read(tmp.path()).map_err(|e| Error::io(shown, e))?;
            return write_fd(fd, &bytes, path);
        }
    };
    let path = path.as_path();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    make_folders(dir)?;
    let tmp = temp_beside(path, dir)?;
    write(tmp.path()).map_err(|e| Error::Msg(format!("cannot write {}: {e}", path.display())))?;
    file_mode(tmp.path(), path).map_err(|e| Error::io(path, e))?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Msg(format!("cannot serialise {}: {e}", path.display())))?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// The most recur reads whole from a config, JSON or other small text file.
pub const MAX_TEXT_FILE: u64 = 256 << 20;
/// The most recur reads whole from a data or weights file.
pub const MAX_DATA_FILE: u64 = 64 << 30;

/// Opens `path` to be read whole, refusing anything but a regular file
/// (after following links) and a file of more than `max` bytes; the
/// reader stops after `max + 1` bytes in case the file grows meanwhile.
pub fn open_bounded(path: &Path, max: u64) -> Result<std::io::Take<std::fs::File>> {
    use std::io::Read;
    Ok(open_regular(path, max)?.take(max + 1))
}

/// Opens a regular file of at most `max` bytes (see [`open_bounded`]), for
/// readers that seek, such as zip archives.
pub fn open_regular(path: &Path, max: u64) -> Result<std::fs::File> {
    // Looked at before the open too: opening a named pipe waits for a
    // writer, so a command given one would hang without a word.
    refuse_non_file(path)?;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let m = f.metadata().map_err(|e| Error::io(path, e))?;
    regular(path, &m)?;
    if m.len() > max {
        return Err(too_big(path, m.len(), max));
    }
    Ok(f)
}

/// Why `path` (a folder, or a file in one) cannot be looked into, when
/// permissions are the reason: a folder on its way that may not be
/// searched, or the folder itself without read or search permission.
/// Said so, where the callers' own tests (does it exist, does it hold the
/// weights) would call it missing.
pub fn access_denied(path: &Path) -> Option<&'static str> {
    let denied = |r: std::io::Result<()>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
    if denied(std::fs::metadata(path).map(drop)) {
        return Some(
            "cannot be reached: permission denied on a folder on its way (each needs search \
             permission, chmod a+x, for the user running recur)",
        );
    }
    let folder = path.is_dir()
        && (denied(std::fs::read_dir(path).map(drop))
            || denied(std::fs::metadata(path.join(".")).map(drop)));
    folder.then_some(
        "cannot be read: permission denied (the folder needs read and search permission, \
         chmod a+rx, for the user running recur)",
    )
}

/// Refuses a folder, device, pipe or socket at `path` before anything
/// opens it (opening a pipe would wait for a writer); a path that does
/// not exist is left to the reader, whose error names it.
pub fn refuse_non_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) => regular(path, &m),
        // `-` is standard input to many tools (and to recur's outputs,
        // standard output); nothing of that name is here, not even a link.
        Err(e)
            if path.as_os_str() == "-"
                && e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(path).is_err() =>
        {
            Err(Error::data(
                "-",
                "standard input is not read here: recur reads files (save what you would pipe \
                 in to a file and give its path)",
            ))
        }
        Err(_) => Ok(()),
    }
}

/// The error for `path` when its metadata `m` is not a regular file's.
fn regular(path: &Path, m: &std::fs::Metadata) -> Result<()> {
    if m.is_file() {
        return Ok(());
    }
    Err(Error::data(
        path.display().to_string(),
        if m.is_dir() {
            "is a folder; give a file".to_string()
        } else {
            "is not a regular file (a device, pipe or socket, perhaps through a symbolic \
             link); recur reads data from files"
                .to_string()
        },
    ))
}

fn too_big(path: &Path, len: u64, max: u64) -> Error {
    Error::data(
        path.display().to_string(),
        format!("is {len} bytes, more than the {max} bytes recur reads from a file of this kind"),
    )
}

/// The whole of `path`, at most `max` bytes (see [`open_bounded`]).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut r = open_bounded(path, max)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > max {
        return Err(too_big(path, out.len() as u64, max));
    }
    Ok(out)
}

/// The whole of a UTF-8 text file of at most [`MAX_TEXT_FILE`] bytes.
pub fn read_text(path: &Path) -> Result<String> {
    read_text_bounded(path, MAX_TEXT_FILE)
}

/// The whole of a UTF-8 text file of at most `max` bytes.
pub fn read_text_bounded(path: &Path, max: u64) -> Result<String> {
    let bytes = read_bounded(path, max)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::data(
            path.display().to_string(),
            format!(
                "is not UTF-8 text (byte {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads and parses a JSON file, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| Error::data(path.display().to_string(), e.to_string()))
}

/// Refuses a set of outputs of one command: none may be the `input`, lie
/// inside the model directory `model`, or be another of the outputs.
pub fn check_outputs(input: &Path, model: &Path, outputs: &[&Path]) -> Result<()> {
    check_io(&[input], &[model], outputs)
}

/// [`check_outputs`] for commands with several inputs (data files,
/// configs) or model directories: no output may be any of the `inputs`,
/// lie inside any of the `models`, or be another of the outputs.
pub fn check_io(inputs: &[&Path], models: &[&Path], outputs: &[&Path]) -> Result<()> {
    for (i, out) in outputs.iter().enumerate() {
        for input in inputs {
            refuse_overwrite(input, out)?;
        }
        refuse_into_model_dir(out)?;
        for model in models {
            refuse_inside(model, out)?;
        }
        for other in &outputs[i + 1..] {
            let same = out == other
                || matches!((resolve(out), resolve(other)), (Some(a), Some(b)) if a == b);
            if same {
                return Err(Error::Msg(format!(
                    "two outputs name one file, {}: give each its own",
                    out.display()
                )));
            }
        }
    }
    Ok(())
}

/// Refuses an output that would land in any recur model directory (a
/// folder with a `manifest.json`), not only the command's own `--model`:
/// its files are checked against each other on load, and one written over
/// (a checkpoint, its report) breaks the model.
pub fn refuse_into_model_dir(output: &Path) -> Result<()> {
    let Some(p) = resolve(output) else {
        return Ok(());
    };
    if let Some(dir) = p.parent() {
        // recur's manifest, not any file of the name (web projects have one).
        let m = dir.join(crate::dirwrite::MANIFEST);
        if m.is_file() && read_json::<crate::dirwrite::Manifest>(&m).is_ok() {
            return Err(Error::Msg(format!(
                "the output {} lies inside the model directory {}: write it elsewhere",
                output.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// SHA-256 of a file's contents, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut f = open_bounded(path, MAX_DATA_FILE)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex(&h.finalize()))
}

/// Refuses to write `output` over `input` (the same file by any path).
pub fn refuse_overwrite(input: &Path, output: &Path) -> Result<()> {
    let same = matches!((resolve(input), resolve(output)), (Some(a), Some(b)) if a == b)
        || same_inode(input, output);
    if same {
        return Err(Error::Msg(format!(
            "the output {} is the input file: choose another output path",
            output.display()
        )));
    }
    Ok(())
}

/// Whether two existing paths are one file: a bind mount (or a hard link)
/// shows it under another path that no resolving of links can tell, and
/// `predict` wrote its output over the input through one.
pub fn same_inode(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    let _ = (a, b);
    false
}

/// Refuses to write `output` inside the folder `dir` (a model directory,
/// whose files are checked against each other on load).
pub fn refuse_inside(dir: &Path, output: &Path) -> Result<()> {
    if let (Some(d), Some(p)) = (resolve(dir), resolve(output)) {
        if p.starts_with(&d) {
            return Err(Error::Msg(format!(
                "the output {} lies inside the model directory {}: write it elsewhere",
                output.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// The absolute path that `path` names once the folders missing on its
/// way are made (as recur makes an output's folders before writing it):
/// its longest existing ancestor with links resolved, then the rest with
/// `.` and `..` applied to the folders that will be made. Comparing these,
/// not the path text, is what stops `new/../input.csv` (whose `new` does
/// not exist yet) from passing for another file than `input.csv`. `None`
/// only where even the working folder cannot be resolved.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    resolve_within(path, 8)
}

fn resolve_within(path: &Path, links: usize) -> Option<PathBuf> {
    use std::path::Component;
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    // A link to a place not made yet: where it points (a write follows it
    // and makes the folders on the way), a few links deep at most.
    if links > 0 && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        let to = std::fs::read_link(path).ok()?;
        let to = match path.parent() {
            Some(p) if to.is_relative() => p.join(to),
            _ => to,
        };
        return resolve_within(&to, links - 1);
    }
    let parts: Vec<Component> = path.components().collect();
    for k in (0..parts.len()).rev() {
        let head: PathBuf = parts[..k].iter().collect();
        let head = if head.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            head
        };
        if let Ok(mut base) = std::fs::canonicalize(&head) {
            for c in &parts[k..] {
                match c {
                    Component::ParentDir => {
                        base.pop();
                    }
                    Component::Normal(n) => base.push(n),
                    Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                }
            }
            return Some(base);
        }
    }
    None
}

/// Makes the folder `dir` and those above it. Where one on the way is a
/// file, says so: "File exists (os error 17)" named the path, not what was
/// wrong with it.
pub fn make_folders(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        let file = dir
            .ancestors()
            .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
        match file {
            Some(f) => Error::Msg(format!(
                "{}: {} is not a folder; choose a path through folders",
                dir.display(),
                f.display()
            )),
            None => Error::io(dir, e),
        }
    })
}

/// The message for a path whose name is not UTF-8 text, where recur must
/// save it in a text file (a config, a corpus's build record).
pub fn not_utf8(p: &Path) -> String {
    format!(
        "{} is not UTF-8 text, and recur records this path in a text file: rename it, or link \
         to it under a UTF-8 name",
        crate::terminal::inline(&p.display().to_string())
    )
}

/// SHA-256 of bytes, as lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// Bytes as lowercase hex (how recur prints and stores digests).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn whole_file_reads_refuse_devices_folders_and_files_past_their_limit() {
        let d = tempfile::tempdir().unwrap();
        let zero = d.path().join("weights.safetensors");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_bounded(&zero, MAX_DATA_FILE).unwrap_err().to_string();
        assert!(
            e.contains("weights.safetensors") && e.contains("not a regular file"),
            "{e}"
        );
        assert!(sha256_file(&zero).is_err());
        let e = read_text(d.path()).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let f = d.path().join("c.yaml");
        std::fs::write(&f, "x: 1\n").unwrap();
        assert_eq!(read_text(&f).unwrap(), "x: 1\n");
        let e = read_bounded(&f, 3).unwrap_err().to_string();
        assert!(e.contains("is 5 bytes, more than the 3"), "{e}");
        std::fs::write(&f, [0xff, 0xfe, b'x']).unwrap();
        assert!(read_text(&f).unwrap_err().to_string().contains("not UTF-8"));
    }

    /// A write killed part way leaves its temporary file; the next write of
    /// the same name removes it, and leaves a running process's alone.
    #[test]
    fn the_next_write_removes_a_dead_writers_temporary_file() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("p.csv");
        let dead = d.path().join(".p.csv.recur-4000000000-abc123");
        let live = d
            .path()
            .join(format!(".p.csv.recur-{}-def456", std::process::id()));
        let other = d.path().join(".q.csv.recur-4000000000-abc123");
        let fresh = d.path().join(".p.csv.recur-4000000001-ghi789");
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for f in [&dead, &live, &other, &fresh] {
            std::fs::write(f, "part").unwrap();
            if f != &fresh {
                let h = std::fs::File::options().write(true).open(f).unwrap();
                h.set_modified(hour_ago).unwrap();
            }
        }
        write_atomic(&out, b"done").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"done");
        // A file touched in the last ten minutes stays, whoever wrote it.
        assert!(!dead.exists() && live.exists() && other.exists() && fresh.exists());
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_descriptor_is_written_through_not_renamed_over() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let all = d.path().join("all.csv");
        std::fs::write(&all, b"precious\n").unwrap();
        let inode = std::fs::metadata(&all).unwrap().ino();
        // As a shell's `>> all.csv` opens it, for /dev/fd/N and the
        // /proc/self/fd/N that /dev/stdout links to.
        let f = std::fs::OpenOptions::new().append(true).open(&all).unwrap();
        let n = f.as_raw_fd();
        write_atomic(Path::new(&format!("/dev/fd/{n}")), b"one\n").unwrap();
        write_atomic(Path::new(&format!("/proc/self/fd/{n}")), b"two\n").unwrap();
        write_atomic_with(Path::new(&format!("/dev/fd/{n}")), |p| {
            std::fs::write(p, b"three\n")
        })
        .unwrap();
        assert_eq!(std::fs::read(&all).unwrap(), b"precious\none\ntwo\nthree\n");
        assert_eq!(std::fs::metadata(&all).unwrap().ino(), inode);
        assert!(is_stdout(Path::new("-")) && is_stdout(Path::new("/dev/stdout")));
        assert!(!is_stdout(Path::new(&format!("/dev/fd/{n}"))) && !is_stdout(&all));
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_leave_files_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.json");
        write_atomic(&a, b"{}").unwrap();
        let b = d.path().join("b.bin");
        write_atomic_with(&b, |p| std::fs::write(p, b"x")).unwrap();
        for p in [&a, &b] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !umask(), "{}", p.display());
        }
        // A file written again keeps its mode: a private output stays so.
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&a, b"[]").unwrap();
        write_atomic_with(&b, |p| std::fs::write(p, b"y")).unwrap();
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read(&a).unwrap(), b"[]");
        // Through a symbolic link: the target is written, the link stays.
        let t = d.path().join("target.csv");
        std::fs::write(&t, b"old").unwrap();
        let l = d.path().join("link.csv");
        std::os::unix::fs::symlink(&t, &l).unwrap();
        write_atomic(&l, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&l)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&t).unwrap(), b"new");
        // A device is written directly, not replaced.
        write_atomic(Path::new("/dev/null"), b"x").unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        let e = write_atomic(d.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        // Outputs inside a model directory are refused, beside it allowed.
        let m = d.path().join("m");
        std::fs::create_dir(&m).unwrap();
        assert!(refuse_inside(&m, &m.join("p.csv")).is_err());
        assert!(refuse_inside(&m, &d.path().join("p.csv")).is_ok());
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// A path through a file is named as such, for a single output and for
    /// a model directory alike (both said "File exists (os error 17)").
    #[test]
    fn a_path_through_a_file_says_which_one_is_a_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("afile");
        std::fs::write(&f, "x").unwrap();
        let e = write_atomic(&f.join("sub/x.json"), b"{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("afile is not a folder"), "{e}");
        let e = crate::dirwrite::DirWriter::begin(&f.join("m"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("afile is not a folder"), "{e}");
    }

    /// An output named through folders that do not exist yet (recur makes
    /// them before writing) is compared by the file it will be: `new/..`
    /// leads back to the input's folder, and into the model directory.
    #[test]
    fn outputs_through_missing_folders_are_compared_by_where_they_land() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in.csv");
        std::fs::write(&input, b"a\n1\n").unwrap();
        let m = d.path().join("m");
        std::fs::create_dir(&m).unwrap();
        let sneaky = d.path().join("new").join("..").join("in.csv");
        let e = check_outputs(&input, &m, &[&sneaky])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the input file"), "{e}");
        let deep = d.path().join("a/b/../../m/config.yaml");
        let e = check_outputs(&input, &m, &[&deep]).unwrap_err().to_string();
        assert!(e.contains("inside the model directory"), "{e}");
        let twice = [d.path().join("x/../o.csv"), d.path().join("o.csv")];
        let e = check_io(&[], &[], &[&twice[0], &twice[1]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two outputs name one file"), "{e}");
        // A dangling link to the input through a folder not made yet.
        #[cfg(unix)]
        {
            let link = d.path().join("o.csv");
            std::os::unix::fs::symlink("new2/../in.csv", &link).unwrap();
            let e = check_outputs(&input, &m, &[&link]).unwrap_err().to_string();
            assert!(e.contains("is the input file"), "{e}");
        }
        // One file under another path that no link resolves to it (a bind
        // mount; here a hard link, which shows the same).
        let hard = d.path().join("hard.csv");
        std::fs::hard_link(&input, &hard).unwrap();
        let e = check_outputs(&input, &m, &[&hard]).unwrap_err().to_string();
        assert!(e.contains("is the input file"), "{e}");
        // Into any model directory, not only the command's own.
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(crate::dirwrite::MANIFEST), b"{}").unwrap();
        // A manifest.json of another tool's is not recur's.
        check_io(&[], &[], &[&other.join("report.json")]).unwrap();
        std::fs::write(
            other.join(crate::dirwrite::MANIFEST),
            br#"{"format_version": 1, "run": "r", "files": {}}"#,
        )
        .unwrap();
        let e = check_io(&[], &[], &[&other.join("report.json")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside the model directory"), "{e}");
        // A new file in a new folder is fine, and nothing was made.
        let fresh = d.path().join("new/out.csv");
        check_outputs(&input, &m, &[&fresh]).unwrap();
        assert!(!d.path().join("new").exists());
        assert_eq!(
            resolve(Path::new("no/such/../x")),
            Some(
                std::env::current_dir()
                    .unwrap()
                    .canonicalize()
                    .unwrap()
                    .join("no/x")
            )
        );
    }
}
