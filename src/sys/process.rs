//! Child processes: spawning hook scripts in a clean state, refusing ones others could have
//! changed, and reaping and signalling children.
//!
//! The daemon runs the configured `statuscommand` as root (in the privileged parent), so the
//! script is effectively part of the daemon: [`check_hook_permissions`] applies MLVPN's rule
//! that it belongs to the daemon's user and nobody else may write it. [`spawn_hook`] then runs
//! it without waiting (the data path must not stall on a script; the caller reaps it on
//! SIGCHLD with [`try_wait`]) and without leaking the daemon's environment, fds or signal state
//! into it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::cvt;

/// The only `PATH` a hook sees: the daemon's own may be anything.
pub const HOOK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts `program` (the path as given, the one [`check_hook_permissions`] examined: no `PATH`
/// search) with `args` and an environment of exactly `env` plus `PATH=`[`HOOK_PATH`] (which
/// wins over a `PATH` in `env`; of two equal names, the later wins). Stdin is `/dev/null`;
/// stdout and stderr are the daemon's. Returns the child's pid at once: reap it with
/// [`try_wait`] when SIGCHLD says so. A program that cannot be executed (missing, not
/// executable) is an error here, not an exit status.
///
/// The child starts with an empty signal mask and every signal's disposition at its default
/// (except the few the C library reserves for itself, from 32 up to `SIGRTMIN`, which no script
/// uses). Both survive `exec`: the daemon blocks SIGTERM, SIGHUP and SIGCHLD for its signalfd
/// (a script with SIGTERM blocked cannot be stopped; one with SIGCHLD blocked waits oddly on its
/// own children) and ignores SIGPIPE (a script piping into `head` would not stop). Our fds are
/// all close-on-exec, so the script inherits none of them.
///
/// `posix_spawn(3)` does it all: the C library runs the child's side between its `fork` (a
/// `vfork`, in fact: cheap on a router) and `exec` with only async-signal-safe calls, and reports
/// a failed `exec` back.
pub fn spawn_hook(program: &Path, args: &[&str], env: &[(&str, &str)]) -> io::Result<libc::pid_t> {
    let c_string = |bytes: &[u8]| {
        CString::new(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a hook's command"))
    };
    let program = c_string(program.as_os_str().as_bytes())?;
    let mut argv = vec![program.clone()];
    for a in args {
        argv.push(c_string(a.as_bytes())?);
    }
    let mut envp = Vec::with_capacity(env.len() + 1);
    for (i, (k, v)) in env.iter().enumerate() {
        if *k != "PATH" && !env[i + 1..].iter().any(|(later, _)| later == k) {
            envp.push(c_string(format!("{k}={v}").as_bytes())?);
        }
    }
    envp.push(c_string(format!("PATH={HOOK_PATH}").as_bytes())?);
    let null_terminated = |v: &[CString]| -> Vec<*mut libc::c_char> {
        v.iter().map(|c| c.as_ptr().cast_mut()).chain([std::ptr::null_mut()]).collect()
    };
    let (argv, envp) = (null_terminated(&argv), null_terminated(&envp));
    let mut pid = 0;
    // SAFETY: the attribute and file-action objects are initialised before use and destroyed
    // after; all-zero is a valid value of each to hand to their init function, and of sigset_t
    // before sigemptyset/sigfillset. Every string is NUL-terminated, and argv and envp are
    // null-terminated arrays of them, all alive until posix_spawn returns (the child has
    // called exec by then).
    let err = unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let (mut empty, mut all): (libc::sigset_t, libc::sigset_t) = (std::mem::zeroed(), std::mem::zeroed());
        libc::sigemptyset(&mut empty);
        libc::sigfillset(&mut all);
        let mut err = libc::posix_spawnattr_init(&mut attr);
        if err == 0 {
            libc::posix_spawnattr_setsigmask(&mut attr, &empty);
            libc::posix_spawnattr_setsigdefault(&mut attr, &all);
            let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
            err = libc::posix_spawn_file_actions_init(&mut actions);
            if err == 0 {
                err = libc::posix_spawn_file_actions_addopen(
                    &mut actions,
                    0,
                    c"/dev/null".as_ptr(),
                    libc::O_RDONLY,
                    0,
                );
                if err == 0 {
                    err = libc::posix_spawn(
                        &mut pid,
                        program.as_ptr(),
                        &actions,
                        &attr,
                        argv.as_ptr(),
                        envp.as_ptr(),
                    );
                }
                libc::posix_spawn_file_actions_destroy(&mut actions);
            }
            libc::posix_spawnattr_destroy(&mut attr);
        }
        err
    };
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(pid)
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall, no pointers.
    cvt(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// Reaps child `pid` if it has exited: `Some(exit code)` (128 + the signal that ended it, as a
/// shell's `$?`), or `None` while it runs.
pub fn try_wait(pid: libc::pid_t) -> io::Result<Option<i32>> {
    waitpid(pid, libc::WNOHANG)
}

/// Waits for child `pid` to exit and reaps it: its exit code as [`try_wait`] gives it.
pub fn wait(pid: libc::pid_t) -> io::Result<i32> {
    loop {
        match waitpid(pid, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|status| status.unwrap_or(0)),
        }
    }
}

fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<i32>> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let r = cvt(unsafe { libc::waitpid(pid, &mut status, flags) })?;
    if r == 0 {
        return Ok(None);
    }
    Ok(Some(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) }))
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
        let child = spawn_hook(
            Path::new("/bin/sh"),
            &["-c", script, "sh", "tuntap_up"],
            &[("FOO", "foo"), ("OUT", out.to_str().unwrap()), ("PATH", "/evil"), ("FOO", "bar baz")],
        )
        .unwrap();
        assert_eq!(wait(child).unwrap(), 3);
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
        let child = spawn_hook(
            Path::new("/bin/sh"),
            &["-c", "exec grep -E '^Sig(Blk|Ign):' /proc/self/status > \"$OUT\""],
            &[("OUT", out.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(wait(child).unwrap(), 0);
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

    #[test]
    fn exit_codes_and_signals() {
        let sh = |script: &str| spawn_hook(Path::new("/bin/sh"), &["-c", script], &[]).unwrap();
        let child = sh("sleep 10");
        assert_eq!(try_wait(child).unwrap(), None);
        kill(child, libc::SIGKILL).unwrap();
        assert_eq!(wait(child).unwrap(), 128 + libc::SIGKILL);
        let child = sh("exit 7");
        assert_eq!(wait(child).unwrap(), 7);
        assert!(try_wait(child).is_err(), "reaped already");
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
