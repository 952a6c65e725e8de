//! Hook scripts: spawning them in a clean state, and refusing ones others could have changed.
//!
//! The daemon runs the configured `statuscommand` as root (in the privileged parent), so the
//! script is effectively part of the daemon: [`check_hook_permissions`] applies MLVPN's rule
//! that it belongs to the daemon's user and nobody else may write it. [`spawn_hook`] then runs
//! it without waiting (the data path must not stall on a script; the caller reaps it on
//! SIGCHLD) and without leaking the daemon's environment, fds or signal state into it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The only `PATH` a hook sees: the daemon's own may be anything.
pub const HOOK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts `program` with `args` and an environment of exactly `env` plus
/// `PATH=`[`HOOK_PATH`] (which wins over a `PATH` in `env`). Stdin is `/dev/null`; stdout and
/// stderr are the daemon's. Returns at once: wait for the child when SIGCHLD says so.
///
/// In the child, before `exec`, the signal mask is emptied and every signal's disposition set
/// back to the default (except the few the C library reserves for itself, from 32 up to
/// `SIGRTMIN`, which it refuses to change and no script uses). Both survive `exec`: the daemon blocks SIGTERM, SIGHUP and SIGCHLD for
/// its signalfd (a script with SIGTERM blocked cannot be stopped; one with SIGCHLD blocked
/// waits oddly on its own children) and ignores SIGPIPE (a script piping into `head` would not
/// stop). Our fds are all close-on-exec, so the script inherits none of them.
pub fn spawn_hook(program: &Path, args: &[&str], env: &[(&str, &str)]) -> io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("PATH", HOOK_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // Read in the parent: the child may call only async-signal-safe functions.
    let last_signal = libc::SIGRTMAX();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // functions may be called: it calls sigemptyset, sigprocmask and signal, all of which are,
    // on values on its own stack; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || reset_signals(last_signal));
    }
    cmd.spawn()
}

/// Empties the signal mask and restores every signal's default disposition. Runs in the child
/// between `fork` and `exec`, so it must stay async-signal-safe; see [`spawn_hook`].
fn reset_signals(last_signal: libc::c_int) -> io::Result<()> {
    // SAFETY: all-zero is a valid sigset_t, then properly emptied; sigprocmask reads it and
    // does not write the old mask (null). signal() with SIG_DFL installs no handler; it fails
    // (harmlessly, ignored) for SIGKILL, SIGSTOP and the C library's reserved signals.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        for sig in 1..=last_signal {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    Ok(())
}

/// The effective user id of this process (the "daemon's user" for hook ownership).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks that the hook at `path` may be run: it exists, is a regular file, is executable by
/// its owner, is owned by `expected_uid` (the daemon's user, as in MLVPN), and is not writable
/// by group or others. Symlinks are followed, since `exec` runs the target.
///
/// The error says what is wrong and the command that fixes it, for the operator.
pub fn check_hook_permissions(path: &Path, expected_uid: u32) -> Result<(), String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("hook script {shown} does not exist"));
        }
        Err(e) => return Err(format!("hook script {shown} cannot be examined: {e}")),
    };
    if !meta.is_file() {
        return Err(format!("hook script {shown} is not a regular file"));
    }
    let mode = meta.mode();
    if mode & 0o100 == 0 {
        return Err(format!("hook script {shown} is not executable by its owner: run `chmod u+x {shown}`"));
    }
    if meta.uid() != expected_uid {
        return Err(format!(
            "hook script {shown} is owned by uid {}, but must be owned by the daemon's user \
             (uid {expected_uid}): run `chown {expected_uid} {shown}`",
            meta.uid()
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "hook script {shown} is writable by group or others (mode {:04o}): \
             run `chmod go-w {shown}`",
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A scratch directory removed on drop, named after the test (no tempfile crate).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("mlvpn-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn file(&self, name: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn hook_gets_args_env_and_fixed_path_only() {
        let dir = Scratch::new("hook-env");
        let out = dir.0.join("out");
        let script = "printf '%s|%s|%s|%s\\n' \"$1\" \"$FOO\" \"$PATH\" \"${HOME-unset}\" > \"$OUT\"; \
                      exit 3";
        let mut child = spawn_hook(
            Path::new("/bin/sh"),
            &["-c", script, "sh", "tuntap_up"],
            &[("FOO", "bar baz"), ("OUT", out.to_str().unwrap()), ("PATH", "/evil")],
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(fs::read_to_string(&out).unwrap(), format!("tuntap_up|bar baz|{HOOK_PATH}|unset\n"));
    }

    #[test]
    fn hook_starts_with_empty_signal_mask_and_default_dispositions() {
        // Block SIGHUP and SIGTERM in this test thread (the fork happens from it), as the
        // daemon does; SIGPIPE is already ignored by the Rust runtime. Not SIGCHLD: a blocked
        // SIGCHLD from our child would queue process-wide and could reach the signalfd test
        // running in another thread.
        // SAFETY: builds a sigset_t on the stack and changes this thread's mask only.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigaddset(&mut set, libc::SIGTERM);
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0);
        }
        let dir = Scratch::new("hook-signals");
        let out = dir.0.join("out");
        let mut child = spawn_hook(
            Path::new("/bin/sh"),
            &["-c", "exec grep -E '^Sig(Blk|Ign):' /proc/self/status > \"$OUT\""],
            &[("OUT", out.to_str().unwrap())],
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
        // The C library refuses to touch the signals it reserves (32 up to SIGRTMIN), and a
        // glibc posix_spawn further up (cargo starting this test) leaves them ignored.
        let reserved: u64 = (32..libc::SIGRTMIN()).map(|sig| 1u64 << (sig - 1)).sum();
        let text = fs::read_to_string(&out).unwrap();
        for line in text.lines() {
            let (name, mask) = line.split_once(':').unwrap();
            let mask = u64::from_str_radix(mask.trim(), 16).unwrap();
            assert_eq!(mask & !reserved, 0, "{name} = {mask:x}");
        }
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    /// `reset_signals` itself, without std's own reset in `Command` (which is not documented
    /// behaviour), in a single-threaded child whose process-wide dispositions we may change.
    #[test]
    fn reset_signals_clears_mask_and_ignored_dispositions() {
        fn child() -> i32 {
            // SAFETY: single-threaded child; sigset_t on the stack; no handlers installed.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGHUP);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGUSR1, libc::SIG_IGN);
                if reset_signals(libc::SIGRTMAX()).is_err() {
                    return 10;
                }
                let mut now: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
                if libc::sigismember(&now, libc::SIGHUP) != 0 {
                    return 11;
                }
                if libc::signal(libc::SIGUSR1, libc::SIG_DFL) != libc::SIG_DFL {
                    return 12;
                }
                if libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_DFL {
                    return 13;
                }
            }
            0
        }
        assert_eq!(crate::sys::testutil::in_forked_child(child), 0, "failed step");
    }

    #[test]
    fn missing_program_is_an_error() {
        let err = spawn_hook(Path::new("/nonexistent/hook"), &[], &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn permission_rules() {
        let dir = Scratch::new("hook-perms");
        let uid = effective_uid();
        let check = |p: &Path| check_hook_permissions(p, uid);

        assert_eq!(check(&dir.file("good", 0o755)), Ok(()));
        assert_eq!(check(&dir.file("owner-only", 0o700)), Ok(()));

        let err = check(&dir.0.join("missing")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");

        let err = check(&dir.0).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let err = check(&dir.file("noexec", 0o644)).unwrap_err();
        assert!(err.contains("not executable") && err.contains("chmod u+x"), "{err}");

        let err = check(&dir.file("group-w", 0o775)).unwrap_err();
        assert!(err.contains("writable by group or others") && err.contains("0775"), "{err}");
        let err = check(&dir.file("other-w", 0o757)).unwrap_err();
        assert!(err.contains("chmod go-w"), "{err}");

        let err = check_hook_permissions(&dir.file("foreign", 0o755), uid + 1).unwrap_err();
        assert!(err.contains(&format!("owned by uid {uid}")) && err.contains("chown"), "{err}");
    }

    #[test]
    fn symlinks_are_judged_by_their_target() {
        let dir = Scratch::new("hook-link");
        let target = dir.file("target", 0o777);
        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(check_hook_permissions(&link, effective_uid()).is_err());
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_hook_permissions(&link, effective_uid()), Ok(()));
    }
}
