//! The `statuscommand` hook, called exactly as MLVPN calls it, without stalling the data path.
//!
//! `SCRIPT <device> <event> [<link>]`, events `rtun_up LINK`, `tuntap_up`, `rtun_down LINK`,
//! `tuntap_down`, with `DEVICE`, `MTU`, `IP4`, `IP6`, `IP4_GATEWAY`, `IP6_GATEWAY`, `IP4_ROUTES`
//! and `IP6_ROUTES` in the environment. The original ran the script synchronously and stopped
//! forwarding until it returned. Here calls queue in order and run one at a time in the
//! background: order matters (the `tuntap_up` script configures the device that `rtun_up`
//! scripts may rely on), waiting does not. A script that outlives [`HOOK_TIME_LIMIT`] is killed
//! and logged, and the queue moves on.
//!
//! A server with sites adds `site_up SITE` and `site_down SITE` (around its links' calls, as
//! `tuntap_up` and `tuntap_down` are around the tunnel's), and every call about a site has
//! `SITE`, `SITE_IP4`, `SITE_IP6`, `SITE_IP4_ROUTES` and `SITE_IP6_ROUTES` in its environment:
//! what a script needs to route the site's networks to the device.

use crate::config::HookEnv;
use crate::proto::{Duration, Instant};
use crate::sys::process;
use crate::{log_debug, log_error, log_warn};
use std::collections::VecDeque;
use std::path::PathBuf;

/// How long one script may run.
pub const HOOK_TIME_LIMIT: Duration = Duration::from_secs(30);
/// Calls waiting behind a running one; more are dropped and logged (a hung script is killed
/// long before a tunnel produces this many events).
const QUEUE_LIMIT: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    TuntapUp,
    TuntapDown,
    /// A link came up: the link, and its site on a server with sites.
    RtunUp(String, Option<String>),
    RtunDown(String, Option<String>),
    /// A site's first link came up, or its last went down.
    SiteUp(String),
    SiteDown(String),
}

impl HookEvent {
    fn args(&self) -> (&'static str, Option<&str>) {
        match self {
            HookEvent::TuntapUp => ("tuntap_up", None),
            HookEvent::TuntapDown => ("tuntap_down", None),
            HookEvent::RtunUp(l, _) => ("rtun_up", Some(l)),
            HookEvent::RtunDown(l, _) => ("rtun_down", Some(l)),
            HookEvent::SiteUp(s) => ("site_up", Some(s)),
            HookEvent::SiteDown(s) => ("site_down", Some(s)),
        }
    }

    /// The site the call is about.
    pub fn site(&self) -> Option<&str> {
        match self {
            HookEvent::RtunUp(_, s) | HookEvent::RtunDown(_, s) => s.as_deref(),
            HookEvent::SiteUp(s) | HookEvent::SiteDown(s) => Some(s),
            HookEvent::TuntapUp | HookEvent::TuntapDown => None,
        }
    }
}

/// A site's name and addresses, for the variables of its calls.
pub type SiteEnv = (String, HookEnv);

#[derive(Debug)]
struct Running {
    pid: libc::pid_t,
    event: HookEvent,
    started: Instant,
}

impl Running {
    fn kill(&self) {
        let _ = process::kill(self.pid, libc::SIGKILL);
        let _ = process::wait(self.pid);
    }
}

#[derive(Debug)]
pub struct Hooks {
    script: Option<PathBuf>,
    device: String,
    env: Vec<(String, String)>,
    /// Per site, the variables its calls add.
    sites: Vec<SiteEnv>,
    queue: VecDeque<HookEvent>,
    running: Option<Running>,
}

impl Hooks {
    /// `env` is the hook environment besides `DEVICE` (which is added here).
    pub fn new(script: Option<PathBuf>, device: &str, env: Vec<(String, String)>) -> Self {
        let mut env = env;
        env.insert(0, ("DEVICE".into(), device.into()));
        Hooks {
            script,
            device: device.into(),
            env,
            sites: Vec::new(),
            queue: VecDeque::with_capacity(QUEUE_LIMIT),
            running: None,
        }
    }

    /// Queues a call and starts it if nothing is running.
    pub fn push(&mut self, now: Instant, event: HookEvent) {
        if self.script.is_none() {
            return;
        }
        if self.queue.len() >= QUEUE_LIMIT {
            let (name, link) = event.args();
            log_error!("hook queue full: dropping {name} {}", link.unwrap_or("(tunnel)"));
            return;
        }
        self.queue.push_back(event);
        self.poll(now);
    }

    /// Reaps a finished script, kills one over its time limit, starts the next. Call on
    /// SIGCHLD and at [`Hooks::deadline`].
    pub fn poll(&mut self, now: Instant) {
        loop {
            if let Some(r) = &mut self.running {
                match process::try_wait(r.pid) {
                    Ok(Some(status)) => {
                        let (ev, link) = r.event.args();
                        if status == 0 {
                            log_debug!("hook", "hook {ev} {} finished", link.unwrap_or(""));
                        } else {
                            log_warn!("hook {ev} {} failed: exit status {status}", link.unwrap_or(""));
                        }
                        self.running = None;
                    }
                    Ok(None) if now - r.started >= HOOK_TIME_LIMIT => {
                        let (ev, link) = r.event.args();
                        log_error!(
                            "hook {ev} {} still running after {} s: killed",
                            link.unwrap_or(""),
                            HOOK_TIME_LIMIT.as_millis() / 1000
                        );
                        r.kill();
                        self.running = None;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        log_error!("hook: cannot wait for the script: {e}");
                        self.running = None;
                    }
                }
            }
            let Some(event) = self.queue.pop_front() else { return };
            self.start(now, event);
        }
    }

    /// The variables of each site's calls.
    pub fn with_sites(mut self, sites: Vec<SiteEnv>) -> Self {
        self.sites = sites;
        self
    }

    /// Whether `site` is one this hook knows (the parent refuses calls about others).
    pub fn knows_site(&self, site: &str) -> bool {
        self.sites.iter().any(|(name, _)| name == site)
    }

    fn start(&mut self, now: Instant, event: HookEvent) {
        let Some(script) = &self.script else { return };
        let (ev, link) = event.args();
        let mut args = vec![self.device.as_str(), ev];
        args.extend(link);
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some((name, h)) = event.site().and_then(|s| self.sites.iter().find(|(n, _)| n == s)) {
            env.extend([
                ("SITE", name.as_str()),
                ("SITE_IP4", &h.ip4),
                ("SITE_IP6", &h.ip6),
                ("SITE_IP4_ROUTES", &h.ip4_routes),
                ("SITE_IP6_ROUTES", &h.ip6_routes),
            ]);
        }
        log_debug!("hook", "running {} {}", script.display(), args.join(" "));
        match process::spawn_hook(script, &args, &env) {
            Ok(pid) => self.running = Some(Running { pid, event, started: now }),
            Err(e) => log_error!("hook {}: cannot run {}: {e}", ev, script.display()),
        }
    }

    /// When [`Hooks::poll`] must run to enforce the time limit.
    pub fn deadline(&self) -> Option<Instant> {
        self.running.as_ref().map(|r| r.started + HOOK_TIME_LIMIT)
    }

    /// Nothing running and nothing queued.
    pub fn idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty()
    }

    /// A reload's script and environment, for the calls still to come. The call running and
    /// those queued go on: replacing the whole value killed a running `rtun_down` (the drop
    /// kills what runs) and lost the queue, when a reload followed a link's fall closely.
    pub fn reconfigure(&mut self, mut new: Hooks) {
        self.script = new.script.take();
        self.device = std::mem::take(&mut new.device);
        self.env = std::mem::take(&mut new.env);
        // A removed site keeps its variables: its `site_down` comes after the reload, and its
        // script needs them to remove its routes.
        let old = std::mem::replace(&mut self.sites, std::mem::take(&mut new.sites));
        for site in old {
            if !self.knows_site(&site.0) {
                self.sites.push(site);
            }
        }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_keeps_the_calls_queued() {
        let mut hooks = Hooks::new(None, "mlvpn0", vec![]);
        hooks.queue.push_back(HookEvent::RtunDown("link1".into(), None));
        hooks.reconfigure(Hooks::new(
            Some("/etc/mlvpn/new.sh".into()),
            "mlvpn0",
            vec![("MTU".into(), "1400".into())],
        ));
        assert_eq!(hooks.queue.len(), 1, "the queued call survives");
        assert_eq!(hooks.script.as_deref(), Some(std::path::Path::new("/etc/mlvpn/new.sh")));
        assert!(hooks.env.iter().any(|(k, v)| k == "MTU" && v == "1400"));
    }
}
