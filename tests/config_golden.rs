//! Golden tests of the configuration reader, in the OpenBSD style: every `tests/config/NAME.conf`
//! is parsed and the result compared with `tests/config/NAME.ok` — the exact error lines for a
//! file that must fail, or for a valid one its normalised dump ([`Config::dump`]) followed by
//! the engine's view of it ([`Config::engine_config`]).
//!
//! To add a case, write the `.conf`, run `UPDATE_GOLDEN=1 cargo test --test config_golden`,
//! and read the new `.ok` before committing it: it *is* the assertion.
//!
//! Files are parsed with `parse`, not `load`, so checked-in modes (644) do not matter; the
//! permission rule has unit tests of its own.

use mlvpn::config::{Config, parse};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

/// What a `.ok` file holds for `text`.
fn render(file_name: &str, text: &str) -> String {
    match parse(file_name, text) {
        Ok(config) => {
            let mut out = config.dump();
            engine(&mut out, &config);
            out
        }
        Err(errors) => format!("{errors}\n"),
    }
}

/// The engine's config, resolved overrides included, one line per link.
fn engine(out: &mut String, config: &Config) {
    let e = config.engine_config();
    let _ = writeln!(
        out,
        "engine: mode = {:?}, mtu = {}, reorder_buffer_size = {}",
        e.mode, e.mtu, e.reorder_buffer_size
    );
    for (i, l) in e.links.iter().enumerate() {
        let _ = writeln!(
            out,
            "engine link {i} [{}]: timeout = {} ms, loss_tolerance = {}, latency_tolerance = {} ms, \
             fallback_only = {}, bandwidth_upload = {}",
            l.name,
            l.timeout.as_millis(),
            l.loss_tolerance,
            l.latency_tolerance.as_millis(),
            l.fallback_only,
            l.bandwidth_upload.map_or_else(|| "-".to_string(), |b| b.to_string()),
        );
    }
}

/// Every `.conf` in `dir`, sorted so runs and failures read the same each time.
fn cases(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let dir = golden_dir();
    let confs = cases(&dir, "conf");
    assert!(confs.len() >= 30, "golden cases went missing from {}", dir.display());
    let mut failures = Vec::new();
    for conf in &confs {
        let name = conf.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(conf).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual = render(name, &text);
        let ok = conf.with_extension("ok");
        if update {
            std::fs::write(&ok, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&ok) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: output differs from {}\n--- expected\n{expected}--- actual\n{actual}",
                ok.display()
            )),
            Err(e) => failures.push(format!("{name}: {}: {e} (run with UPDATE_GOLDEN=1)", ok.display())),
        }
    }
    // A `.ok` without its `.conf` is a test that silently stopped running.
    for ok in cases(&dir, "ok") {
        if !ok.with_extension("conf").exists() {
            failures.push(format!("{}: no matching .conf", ok.display()));
        }
    }
    assert!(failures.is_empty(), "{} golden failures:\n\n{}", failures.len(), failures.join("\n"));
}

/// Valid cases are named `ok_*`, failing ones `err_*`, so a `.ok` that flipped between an
/// error list and a dump is caught even after an `UPDATE_GOLDEN` run.
#[test]
fn golden_names_say_whether_the_file_is_valid() {
    for conf in cases(&golden_dir(), "conf") {
        let name = conf.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&conf).unwrap();
        let valid = parse(name, &text).is_ok();
        assert_eq!(valid, name.starts_with("ok_"), "{name}: valid = {valid}");
        assert!(name.starts_with("ok_") || name.starts_with("err_"), "{name}: name it ok_* or err_*");
    }
}

/// Two inputs test line ends; an editor or a checkout with `core.autocrlf` would silently turn
/// them into ordinary files (`tests/config/.gitattributes` asks git to leave them alone).
#[test]
fn golden_inputs_keep_their_line_ends() {
    let dir = golden_dir();
    let crlf = std::fs::read(dir.join("ok_crlf.conf")).unwrap();
    assert!(crlf.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'), "ok_crlf.conf lost its CRLF");
    let last = std::fs::read(dir.join("ok_no_final_newline.conf")).unwrap();
    assert_ne!(last.last(), Some(&b'\n'), "ok_no_final_newline.conf gained a final newline");
}

/// The commented samples a new user copies must stay valid, warning-free, with their three
/// links.
#[test]
fn samples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/samples");
    for (file, mode) in
        [("client.conf", mlvpn::proto::Mode::Client), ("server.conf", mlvpn::proto::Mode::Server)]
    {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let config = parse(file, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.mode, mode, "{file}");
        assert_eq!(config.links.len(), 3, "{file}");
        assert!(config.warnings.is_empty(), "{file}: {:?}", config.warnings);
    }
}
