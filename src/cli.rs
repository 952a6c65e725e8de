//! The command line, MLVPN's plus what users expect of a daemon today.
//!
//! ```text
//! mlvpn [--config FILE] [--user NAME] [--name NAME] [--natural-title] [--debug]
//!       [-D TOKEN]... [-v]... [-q] [--yes-run-as-root] [--no-sandbox]   run the daemon
//! mlvpn check-config --config FILE                          validate a config, run nothing
//! mlvpn status [--json] [--socket PATH] [--config FILE]     ask a running daemon how it is
//! mlvpn genkey                                              print a strong random password
//! mlvpn --version | -h | --help
//! ```
//!
//! `--check` is accepted as a spelling of `check-config`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub const DEFAULT_CONFIG: &str = "/etc/mlvpn/mlvpn.conf";

pub const USAGE: &str = "\
usage: mlvpn [options]                 run the daemon
       mlvpn check-config [-c FILE]    check a configuration file and exit
       mlvpn status [--json] [--socket PATH] [-c FILE]
                                       show a running daemon's links (its control_unix_path)
       mlvpn genkey                    print a random password for both ends

options:
  -c, --config FILE      configuration file (default /etc/mlvpn/mlvpn.conf)
  -u, --user NAME        drop privileges to this user
  -n, --name NAME        name in logs and the process title (default mlvpn)
      --natural-title    do not show link states in the process title
      --debug            stay in the foreground and log to stderr, not syslog
  -D TOKEN               debug messages for one area (config, control, net,
                         protocol, reorder, rtt, tuntap, wrr, hook); repeatable
  -v                     more messages (debug); -q fewer (errors only)
      --yes-run-as-root  run as root without dropping privileges
      --no-sandbox       no system call sandbox for the network process
  -V, --version          print the version
  -h, --help             this help
";

/// Verbosity from `-v`/`-q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// Info, warnings and errors.
    Normal,
    /// `-v`: debug too.
    Verbose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub user: Option<String>,
    pub name: String,
    pub natural_title: bool,
    pub debug: bool,
    pub debug_areas: Vec<String>,
    pub verbosity: Verbosity,
    pub run_as_root: bool,
    /// `--no-sandbox`: the network process keeps every system call (a way out, should the
    /// sandbox's allow-list miss a call some kernel needs).
    pub no_sandbox: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    CheckConfig(Options),
    /// `--json`, and `--socket` (else the config's `control_unix_path`).
    Status {
        options: Options,
        json: bool,
        socket: Option<PathBuf>,
    },
    Genkey,
    Version,
    Help,
}

/// A command line we cannot make sense of. Exit status 2, with the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

fn usage_error(e: pico_args::Error) -> UsageError {
    UsageError(e.to_string())
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Command, UsageError> {
    let mut a = pico_args::Arguments::from_vec(args);
    if a.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if a.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let check_flag = a.contains("--check");
    let subcommand = a.subcommand().map_err(usage_error)?;
    let json = a.contains("--json");
    let socket: Option<PathBuf> = a.opt_value_from_str("--socket").map_err(usage_error)?;
    let mut verbose = 0;
    while a.contains("-v") {
        verbose += 1;
    }
    let quiet = a.contains("-q");
    if quiet && verbose > 0 {
        return Err(UsageError("-q and -v contradict each other".into()));
    }
    let mut debug_areas = Vec::new();
    while let Some(area) = a.opt_value_from_str::<_, String>("-D").map_err(usage_error)? {
        debug_areas.push(area);
    }
    let options = Options {
        config: a
            .opt_value_from_str(["-c", "--config"])
            .map_err(usage_error)?
            .unwrap_or_else(|| DEFAULT_CONFIG.into()),
        user: a.opt_value_from_str(["-u", "--user"]).map_err(usage_error)?,
        name: a.opt_value_from_str(["-n", "--name"]).map_err(usage_error)?.unwrap_or_else(|| "mlvpn".into()),
        natural_title: a.contains("--natural-title"),
        debug: a.contains("--debug"),
        debug_areas,
        verbosity: if quiet {
            Verbosity::Quiet
        } else if verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
        run_as_root: a.contains("--yes-run-as-root"),
        no_sandbox: a.contains("--no-sandbox"),
    };
    let rest = a.finish();
    if let Some(extra) = rest.first() {
        return Err(UsageError(format!("unexpected argument {}", extra.to_string_lossy())));
    }
    let status = subcommand.as_deref() == Some("status");
    if !status && (json || socket.is_some()) {
        return Err(UsageError("--json and --socket go with the status command".into()));
    }
    match (subcommand.as_deref(), check_flag) {
        (Some("status"), false) => Ok(Command::Status { options, json, socket }),
        (None, false) => Ok(Command::Run(options)),
        (None, true) | (Some("check-config"), _) => Ok(Command::CheckConfig(options)),
        (Some("genkey"), false) => Ok(Command::Genkey),
        (Some(other), _) => Err(UsageError(format!("unknown command {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn run(args: &[&str]) -> Options {
        match p(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mlvpn_command_line_is_understood() {
        let o = run(&[
            "--config",
            "/tmp/x.conf",
            "--user",
            "nobody",
            "-n",
            "site1",
            "--natural-title",
            "--debug",
            "-D",
            "net",
            "-D",
            "rtt",
            "-v",
            "-v",
            "--yes-run-as-root",
            "--no-sandbox",
        ]);
        assert_eq!(o.config, PathBuf::from("/tmp/x.conf"));
        assert_eq!(o.user.as_deref(), Some("nobody"));
        assert_eq!(o.name, "site1");
        assert!(o.natural_title && o.debug && o.run_as_root && o.no_sandbox);
        assert_eq!(o.debug_areas, ["net", "rtt"]);
        assert_eq!(o.verbosity, Verbosity::Verbose);
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(o.name, "mlvpn");
        assert_eq!(o.verbosity, Verbosity::Normal);
        assert!(!o.debug && !o.run_as_root && !o.no_sandbox && o.user.is_none());
        assert_eq!(run(&["-q"]).verbosity, Verbosity::Quiet);
        assert_eq!(run(&["-c", "a.conf"]).config, PathBuf::from("a.conf"));
    }

    #[test]
    fn subcommands() {
        assert!(
            matches!(p(&["check-config", "-c", "a.conf"]), Ok(Command::CheckConfig(o)) if o.config.as_os_str() == "a.conf")
        );
        assert!(matches!(p(&["--config", "a.conf", "--check"]), Ok(Command::CheckConfig(_))));
        assert_eq!(p(&["genkey"]), Ok(Command::Genkey));
        assert!(matches!(
            p(&["status", "--json", "--socket", "/run/x.sock"]),
            Ok(Command::Status { json: true, socket: Some(s), .. }) if s.as_os_str() == "/run/x.sock"
        ));
        assert!(matches!(p(&["status"]), Ok(Command::Status { json: false, socket: None, .. })));
        assert!(p(&["--json"]).is_err());
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn nonsense_is_a_usage_error() {
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["--config"]).is_err());
        assert!(p(&["-q", "-v"]).is_err());
        assert!(p(&["--bogus"]).is_err());
    }
}
