//! Reading `mlvpn.conf`: MLVPN's INI file, checked strictly, into one validated [`Config`].
//!
//! We keep the C original's file format, so existing configurations move over unchanged, but
//! not its leniency: the original read non-numbers as 0, dropped a final line without a newline
//! and deleted spaces inside values, all silently. Here every problem is an error naming file,
//! line and key (`mlvpn.conf:12: timeout: expected seconds, ...`), and all of them are reported
//! at once.
//!
//! * `ini` splits the text into sections and `key = value` entries with line numbers;
//! * `value` reads one value as a number, port, flag, host...;
//! * `build` knows the keys, their types and defaults, and the rules between them;
//! * `model` is the result, [`Config`], which turns into the engine's [`crate::proto::Config`];
//! * `error` holds [`ConfigError`] and [`ConfigErrors`] and their messages.
//!
//! The samples in `src/config/samples/` are commented configurations to start from.

mod build;
mod error;
mod ini;
mod model;
mod value;

pub use error::{ConfigError, ConfigErrors, ErrorKind, MAX_ERRORS, Syntax};
pub use model::{
    Config, ControlBind, DEFAULT_LATENCY_TOLERANCE, DEFAULT_LOSS_TOLERANCE, DEFAULT_REORDER_BUFFER_SIZE,
    DEFAULT_RETRANSMIT_BUFFER_SIZE, DEFAULT_TAP_MTU, DEFAULT_TIMEOUT, DEFAULT_TUN_MTU, HookEnv, IPV6_MIN_MTU,
    Link, MTU_MAX, MTU_MIN, Password, TunTap,
};
pub use value::{IFNAME_MAX, UNIX_PATH_MAX};

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Larger than any real configuration; a bigger file is the wrong file.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// Permission bits that let group or other read or write the file.
const GROUP_OTHER_RW: u32 = 0o066;

/// Parses `text`; `file_name` only labels the messages.
///
/// Syntax errors are reported alone: when a line cannot be read, what the rest of the file
/// means is uncertain (is a key missing, or on the broken line?), and guesses would bury the
/// real error under consequences.
pub fn parse(file_name: &str, text: &str) -> Result<Config, ConfigErrors> {
    let (sections, syntax) = ini::tokenize(text);
    if !syntax.is_empty() {
        let mut errors = ConfigErrors::new();
        for (line, s) in syntax {
            errors.push(ConfigError { file: file_name.into(), line, key: None, kind: ErrorKind::Syntax(s) });
        }
        return Err(errors);
    }
    build::build(file_name, &sections)
}

/// Reads and parses the file at `path`. Refuses a file that group or other may read or write,
/// since it holds the password, and says how to fix it (`chmod 600`).
///
/// The permissions are those of the file opened (`fstat`), not of the path looked up again, so
/// they are the permissions of the bytes we read.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_text(path).map(|(config, _)| config)
}

/// [`load`], also returning the text it parsed (the privileged parent hands that very text to
/// the network process, which cannot read the file).
pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigErrors> {
    let name = path.display().to_string();
    let io = |kind: ErrorKind| ConfigError { file: name.clone(), line: 0, key: None, kind };
    let os = |e: std::io::Error| io(ErrorKind::Io(e.to_string()));
    let file = std::fs::File::open(path).map_err(os)?;
    let meta = file.metadata().map_err(os)?;
    if !meta.is_file() {
        return Err(io(ErrorKind::Io("not a regular file".into())).into());
    }
    check_permissions(path, meta.permissions().mode())?;
    if meta.len() > MAX_FILE_SIZE {
        return Err(io(ErrorKind::Io("larger than 1 MiB: is this the right file?".into())).into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes).map_err(os)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
        ConfigError { file: name.clone(), line, key: None, kind: ErrorKind::Syntax(Syntax::NotUtf8) }
    })?;
    let config = parse(&name, &text)?;
    Ok((config, text))
}

/// Refuses `mode_bits` (as in `st_mode`) that let group or other read or write the file at
/// `path`, which only names the file in the message. Separate from [`load`] so the rule is
/// testable without creating files with chosen modes.
pub fn check_permissions(path: &Path, mode_bits: u32) -> Result<(), ConfigError> {
    if mode_bits & GROUP_OTHER_RW == 0 {
        Ok(())
    } else {
        Err(ConfigError {
            file: path.display().to_string(),
            line: 0,
            key: None,
            kind: ErrorKind::Permissions { mode: mode_bits },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_owner_only_is_fine() {
        for mode in [0o100600, 0o100400, 0o100700, 0o100611, 0o100601] {
            assert!(check_permissions(Path::new("m.conf"), mode).is_ok(), "{mode:o}");
        }
    }

    #[test]
    fn permissions_group_or_other_access_is_refused() {
        for mode in [0o100644, 0o100640, 0o100604, 0o100620, 0o100602, 0o100666] {
            let e = check_permissions(Path::new("/etc/mlvpn/m.conf"), mode).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Permissions { mode });
            assert!(e.to_string().ends_with("chmod 600 /etc/mlvpn/m.conf"), "{e}");
        }
    }

    #[test]
    fn syntax_errors_come_alone() {
        // The missing `=` would also leave [general] without a password; only the cause is said.
        let e =
            parse("m.conf", "[general]\nmode = client\npassword secret\n[l]\nremotehost=h\nremoteport=1\n")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.conf:3: syntax error: expected `key = value`, `[section]` or a # comment"
        );
    }

    /// Whatever a damaged file holds, the reader answers with a config or errors, never a
    /// panic: every prefix of the samples, and each sample with any one line removed.
    #[test]
    fn damaged_samples_never_panic() {
        for sample in [include_str!("samples/client.conf"), include_str!("samples/server.conf")] {
            for (cut, _) in sample.char_indices() {
                let _ = parse("s.conf", &sample[..cut]);
            }
            let lines: Vec<&str> = sample.lines().collect();
            for skip in 0..lines.len() {
                let text: Vec<&str> =
                    lines.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| *l).collect();
                let _ = parse("s.conf", &text.join("\n"));
            }
        }
    }

    /// A private temporary file, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(tag: &str, contents: &[u8], mode: u32) -> Self {
            let path = std::env::temp_dir().join(format!("mlvpn-config-{}-{tag}.conf", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const MINIMAL: &str =
        "[general]\nmode = client\npassword = p\n[dsl]\nremotehost = h\nremoteport = 5080\n";

    #[test]
    fn load_reads_a_private_file() {
        let f = TempFile::new("ok", MINIMAL.as_bytes(), 0o600);
        let c = load(&f.0).unwrap();
        assert_eq!(c.links[0].name, "dsl");
    }

    #[test]
    fn load_refuses_a_readable_file() {
        let f = TempFile::new("perm", MINIMAL.as_bytes(), 0o644);
        let e = load(&f.0).unwrap_err();
        assert!(e.to_string().contains(&format!("chmod 600 {}", f.0.display())), "{e}");
    }

    #[test]
    fn load_names_the_line_that_is_not_utf8() {
        let f = TempFile::new("utf8", b"[general]\nmode = client\npassword = \xff\n", 0o600);
        let e = load(&f.0).unwrap_err();
        assert_eq!(e.iter().next().unwrap().line, 3);
        assert!(e.to_string().ends_with(":3: syntax error: not UTF-8 text"), "{e}");
    }

    #[test]
    fn load_reports_a_missing_file() {
        let e = load(Path::new("/nonexistent/mlvpn.conf")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/mlvpn.conf: cannot read: "), "{e}");
    }
}
