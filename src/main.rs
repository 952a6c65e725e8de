//! `mlvpn`: the command line. See [`mlvpn::cli`] for the options.

use mlvpn::cli::{self, Command, Options, USAGE};
use mlvpn::daemon::{Daemon, log};
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
    let mut daemon = match Daemon::start(o.config.clone(), config) {
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
