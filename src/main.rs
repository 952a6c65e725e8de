//! `mlvpn`: the command line. See [`mlvpn::cli`] for the options.
//!
//! No Rust `fn main`: [`mlvpn::sys::start`] says why and what `main` does instead.
#![cfg_attr(not(test), no_main)]

use mlvpn::cli::{self, Command, Options, USAGE};
use mlvpn::daemon::{Daemon, Identity};
use mlvpn::{config, log, log_error, log_info, log_warn, sys};
use std::ffi::OsString;

mlvpn::c_main!(run_command);

/// Large buffers take memory once used, not at start (see [`sys::alloc`]).
#[global_allocator]
static ALLOCATOR: sys::alloc::Allocator = sys::alloc::Allocator;

/// Exit statuses.
const SUCCESS: u8 = 0;
const FAILURE: u8 = 1;
/// A command line we cannot make sense of.
const USAGE_ERROR: u8 = 2;

#[cfg_attr(test, allow(dead_code))]
fn run_command(args: Vec<OsString>) -> u8 {
    let command = match cli::parse(args.into_iter().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mlvpn: {e}\n\n{USAGE}");
            return USAGE_ERROR;
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            SUCCESS
        }
        Command::Version => {
            println!("mlvpn {}", env!("CARGO_PKG_VERSION"));
            SUCCESS
        }
        Command::Genkey => genkey(),
        Command::CheckConfig(o) => check_config(&o),
        Command::Status { options, json, socket } => status(&options, json, socket),
        Command::Run(o) => run(&o),
    }
}

/// 32 bytes from the kernel's CSPRNG, as 64 hex digits: a password nobody will guess.
fn genkey() -> u8 {
    let mut key = [0u8; 32];
    if let Err(e) = sys::random::fill(&mut key) {
        eprintln!("mlvpn: cannot read random bytes: {e}");
        return FAILURE;
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
    SUCCESS
}

/// Asks the running daemon over its control socket: a table, or the JSON document.
fn status(o: &Options, json: bool, socket: Option<std::path::PathBuf>) -> u8 {
    let path = match socket {
        Some(p) => p,
        None => match config::load(&o.config) {
            Ok(c) => match c.control_unix_path {
                Some(p) => p.into(),
                None => {
                    eprintln!("mlvpn: {} has no control_unix_path; give --socket PATH", o.config.display());
                    return FAILURE;
                }
            },
            Err(e) => {
                eprint!("{e}");
                return FAILURE;
            }
        },
    };
    let command = if json { "status" } else { "table" };
    match mlvpn::control::query(&path, command, std::time::Duration::from_secs(5)) {
        Ok(doc) => {
            if let Some(message) = mlvpn::control::error_message(&doc) {
                eprintln!("mlvpn: {message}");
                return FAILURE;
            }
            print!("{doc}");
            if !doc.ends_with('\n') {
                println!();
            }
            SUCCESS
        }
        Err(e) => {
            eprintln!("mlvpn: cannot reach the daemon on {}: {e}", path.display());
            FAILURE
        }
    }
}

fn check_config(o: &Options) -> u8 {
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
            SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            FAILURE
        }
    }
}

fn run(o: &Options) -> u8 {
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
            return FAILURE;
        }
    };
    for w in &config.warnings {
        log_warn!("{w}");
    }
    let root = sys::process::effective_uid() == 0;
    // As root, separate privileges unless told not to: the network process runs as --user.
    let user = match (root && !o.run_as_root, &o.user) {
        (true, name) => {
            let name = name.as_deref().unwrap_or(DEFAULT_USER);
            match sys::privsep::lookup_user(name) {
                Ok(u) if u.uid == 0 => {
                    log_error!("--user {name} is root: nothing would be separated; use --yes-run-as-root");
                    return FAILURE;
                }
                Ok(u) => Some(u),
                Err(e) => {
                    log_error!("--user {name}: {e}");
                    return FAILURE;
                }
            }
        }
        (false, Some(name)) if !root => {
            log_error!("--user {name}: only root can switch users");
            return FAILURE;
        }
        _ => None,
    };
    log_info!("mlvpn {} starting ({})", env!("CARGO_PKG_VERSION"), o.config.display());
    let identity = Identity { name: o.name.clone(), natural_title: o.natural_title };
    let mut daemon = match Daemon::start(identity, o.config.clone(), config) {
        Ok(d) => d,
        Err(e) => {
            log_error!("{e}");
            if !o.debug {
                eprintln!("mlvpn: {e}");
            }
            return FAILURE;
        }
    };
    let Some(user) = user else {
        #[cfg(target_os = "freebsd")]
        let device = daemon.device().to_string();
        let status = daemon.run() as u8;
        drop(daemon); // closes the device first: destroying an open one waits for its close
        #[cfg(target_os = "freebsd")]
        let _ = sys::tun::destroy(&device);
        return status;
    };
    separate(daemon, &user, o) as u8
}

/// The account the network process runs as when `--user` is not given.
const DEFAULT_USER: &str = "nobody";

/// An empty, root-owned, read-only directory we make for the jail when the system has none.
/// Under /var/run, which is /run on Debian (systemd's RuntimeDirectory=mlvpn makes it writable)
/// and tmpfs on OpenWrt (so flash is never written).
const OWN_JAIL: &str = "/var/run/mlvpn/empty";

/// Where the network process locks itself in: the system's empty directory (as OpenSSH
/// does), else one we make. Not the user's home, as the C MLVPN did: nobody's home is /var on
/// OpenWrt (a world-writable /tmp underneath) and /nonexistent on Debian.
fn jail_for() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let system = std::path::Path::new("/var/empty");
    if system.is_dir() {
        return Some(system.into());
    }
    std::fs::create_dir_all(OWN_JAIL).ok()?;
    std::fs::set_permissions(OWN_JAIL, std::fs::Permissions::from_mode(0o555)).ok()?;
    Some(OWN_JAIL.into())
}

/// Forks: the child drops to `user` and runs the data path, the parent stays root to open
/// sockets and run hooks for it.
fn separate(daemon: Daemon, user: &sys::privsep::User, o: &Options) -> i32 {
    let (parent_end, child_end) = match sys::privsep::channel_pair() {
        Ok(p) => p,
        Err(e) => {
            log_error!("privilege separation: {e}");
            return 1;
        }
    };
    let jail = jail_for();
    let config = daemon.config().clone();
    let device = daemon.device().to_string();
    match sys::privsep::fork() {
        Err(e) => {
            log_error!("privilege separation: fork: {e}");
            1
        }
        Ok(None) => {
            drop(parent_end);
            let mut daemon = daemon;
            if jail.is_none() {
                log_warn!("no empty directory to lock the network process into; it runs without chroot");
            }
            if let Err(e) = sys::privsep::drop_privileges(user, jail.as_deref()) {
                log_error!("cannot drop privileges to {}: {e}", user.name);
                return 1;
            }
            use sys::sandbox::Outcome;
            let sandbox =
                if o.no_sandbox { Ok(Outcome::Unavailable("--no-sandbox")) } else { sys::sandbox::enter() };
            let sandbox = match sandbox {
                Ok(Outcome::Entered(what)) => what,
                Ok(Outcome::Unavailable(why)) => {
                    log_warn!("network process not sandboxed: {why}");
                    "none"
                }
                Err(e) => {
                    log_error!("cannot enter the sandbox: {e}");
                    return 1;
                }
            };
            #[cfg(feature = "sandbox-selftest")]
            if std::env::var_os("MLVPN_SANDBOX_SELFTEST").is_some() {
                sys::sandbox::forbidden_call();
            }
            log_info!(
                "network process running as {} (uid {}){}, sandbox: {sandbox}",
                user.name,
                user.uid,
                jail.as_ref().map(|j| format!(", chrooted to {}", j.display())).unwrap_or_default(),
            );
            daemon.become_child(mlvpn::daemon::privsep::Privileges::child(child_end));
            daemon.run()
        }
        Ok(Some(child)) => {
            drop(child_end);
            // The child owns the device, the sockets and the control socket now.
            daemon.leave_to_child();
            if !o.natural_title {
                if let Ok(t) = sys::proctitle::ProcTitle::init() {
                    t.set(&format!("{}: [priv]", o.name));
                }
            }
            let hooks = match mlvpn::daemon::make_hooks(&config, &device) {
                Ok(h) => h,
                Err(e) => {
                    log_error!("{e}");
                    let _ = sys::process::kill(child, libc::SIGTERM);
                    return 1;
                }
            };
            let known_links = config.links.iter().map(|l| l.name.clone()).collect();
            mlvpn::daemon::parent::Parent {
                child,
                channel: parent_end,
                config_path: o.config.clone(),
                config,
                device,
                hooks,
                known_links,
            }
            .run()
        }
    }
}
