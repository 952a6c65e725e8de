//! The command line, without privileges: scripts, usage errors, and the control client.

use std::process::{Command, Output};

fn linkemu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linkemu")).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn example_script_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/issue4.emu");
    let o = linkemu(&["check", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).ends_with(": 7 commands\n"));
}

#[test]
fn script_errors_name_the_line() {
    let path = std::env::temp_dir().join(format!("linkemu-cli-{}.emu", std::process::id()));
    std::fs::write(&path, "link 0 delay 5ms\n# fine\nat 5s link 1 blackhole maybe\n").unwrap();
    let o = linkemu(&["check", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 3: blackhole takes on or off, not 'maybe'"), "{}", stderr(&o));
}

#[test]
fn usage_errors_are_reported() {
    for (args, expect) in [
        (&["run"][..], "no --link given"),
        (&["run", "--link", "a:a"], "expected CLIENT_IF:SERVER_IF"),
        (&["run", "--link", "a:b", "--link", "b:c"], "interface b is given twice"),
        (&["run", "--link", "a:b", "--slots", "1000"], "a power of two"),
        (&["run", "--link", "a:b", "--set", "link 0 rate fast"], "bad rate 'fast'"),
        (&["run", "--link", "a:b", "--realtime", "0"], "a priority from 1 to 99"),
        (&["run", "--link", "no-such-if0:no-such-if1"], "interface no-such-if0"),
        (&["frobnicate"], "bad usage"),
    ] {
        let o = linkemu(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn ctl_without_emulator_fails() {
    let o = linkemu(&["ctl", "/nonexistent/linkemu.sock", "show"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/linkemu.sock"));
}
