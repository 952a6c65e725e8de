//! `mlvpn`: the command line. See [`mlvpn::cli`] for the options.

use mlvpn::cli::{self, Command, Options, USAGE};
use mlvpn::daemon::{Daemon, Identity, log};
use mlvpn::{config, log_error, log_info, log_warn, sys};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mlvpn: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("mlvpn {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Genkey => genkey(),
        Command::CheckConfig(o) => check_config(&o),
        Command::Status { options, json, socket } => status(&options, json, socket),
        Command::Run(o) => run(&o),
    }
}

/// 32 bytes from the kernel's CSPRNG, as 64 hex digits: a password nobody will guess.
fn genkey() -> ExitCode {
    let mut key = [0u8; 32];
    if let Err(e) = sys::random::fill(&mut key) {
        eprintln!("mlvpn: cannot read random bytes: {e}");
        return ExitCode::FAILURE;
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
    ExitCode::SUCCESS
}

/// Asks the running daemon over its control socket: a table, or the JSON document.
fn status(o: &Options, json: bool, socket: Option<std::path::PathBuf>) -> ExitCode {
    let path = match socket {
        Some(p) => p,
        None => match config::load(&o.config) {
            Ok(c) => match c.control_unix_path {
                Some(p) => p.into(),
                None => {
                    eprintln!("mlvpn: {} has no control_unix_path; give --socket PATH", o.config.display());
                    return ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprint!("{e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let command = if json { "status" } else { "table" };
    match mlvpn::control::query(&path, command, std::time::Duration::from_secs(5)) {
        Ok(doc) => {
            if let Some(message) = mlvpn::control::error_message(&doc) {
                eprintln!("mlvpn: {message}");
                return ExitCode::FAILURE;
            }
            print!("{doc}");
            if !doc.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mlvpn: cannot reach the daemon on {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn check_config(o: &Options) -> ExitCode {
    match config::load(&o.config) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            if o.verbosity == cli::Verbosity::Verbose {
                print!("{}", c.dump());
            }
            let mode = if c.mode == mlvpn::proto::Mode::Client { "client" } else { "server" };
            println!("{}: OK ({mode}, {} links)", o.config.display(), c.links.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Options) -> ExitCode {
    log::init(&o.name, o.debug, o.verbosity, &o.debug_areas);
    let config = match config::load(&o.config) {
        Ok(c) => c,
        Err(e) => {
            // The operator is looking at a terminal or an init system's log: say it there too.
            eprint!("{e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            if !o.debug {
                log_error!("{}", e.to_string().trim_end());
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        log_warn!("{w}");
    }
    if let Some(user) = &o.user {
        log_error!(
            "--user {user}: privilege separation is not implemented yet; \
             run as root with --yes-run-as-root for now"
        );
        return ExitCode::FAILURE;
    }
    if sys::process::effective_uid() == 0 && !o.run_as_root {
        log_error!(
            "refusing to run as root without dropping privileges; \
             pass --yes-run-as-root to do it anyway"
        );
        return ExitCode::FAILURE;
    }
    log_info!("mlvpn {} starting ({})", env!("CARGO_PKG_VERSION"), o.config.display());
    let identity = Identity { name: o.name.clone(), natural_title: o.natural_title };
    let mut daemon = match Daemon::start(identity, o.config.clone(), config) {
        Ok(d) => d,
        Err(e) => {
            log_error!("{e}");
            if !o.debug {
                eprintln!("mlvpn: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(daemon.run() as u8)
}
