//! The privileged parent: a small loop that answers the network child's requests (see
//! [`super::privsep`] for the table) and handles the signals an init system sends.

use super::hooks::Hooks;
use super::privsep::{MAX_MESSAGE, ToChild, ToParent, open_link_socket, send_config};
use super::runner::make_hooks;
use crate::config::{self, Config};
use crate::proto::{Duration, Instant};
use crate::sys::poll::{Interest, Poller};
use crate::sys::privsep::Channel;
use crate::sys::process;
use crate::sys::signals::{Signal, Signals};
use crate::sys::tun;
use crate::{log_error, log_info, log_warn};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// How long the parent waits for the last hooks after the child exited.
const FINAL_HOOK_WAIT: Duration = Duration::from_secs(3);

/// What the parent needs to know.
#[derive(Debug)]
pub struct Parent {
    pub child: libc::pid_t,
    pub channel: Channel,
    pub config_path: PathBuf,
    pub config: Config,
    /// The device name (the child holds the device).
    pub device: String,
    pub hooks: Hooks,
    /// Link names of every configuration so far: the child may report a removed link going
    /// down.
    pub known_links: Vec<String>,
}

impl Parent {
    /// Serves the child until it exits; returns its exit status.
    pub fn run(mut self) -> i32 {
        let signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                log_error!("privileged parent: signals: {e}");
                let _ = process::kill(self.child, libc::SIGTERM);
                return 1;
            }
        };
        let _ = self.channel.set_nonblocking(true);
        let mut poller = Poller::with_capacity(2);
        poller.register(&signals, Interest::Read);
        poller.register(&self.channel, Interest::Read);
        let mut buf = [0u8; MAX_MESSAGE];
        let mut status = None;
        while status.is_none() {
            let now = super::now();
            let timeout =
                self.hooks.deadline().map(|t| std::time::Duration::from_micros((t - now).as_micros()));
            if poller.wait(timeout.or(Some(std::time::Duration::from_secs(1)))).is_err() {
                break;
            }
            let now = super::now();
            if poller.readable(0) {
                while let Ok(Some(sig)) = signals.read() {
                    match sig {
                        Signal::Terminate => {
                            let _ = process::kill(self.child, libc::SIGTERM);
                        }
                        Signal::Reload => self.reload(),
                        Signal::Child => {}
                    }
                }
            }
            if poller.readable(1) {
                loop {
                    match self.channel.recv(&mut buf) {
                        Ok((0, _)) => {
                            poller.disable(1); // the child closed its end: it is exiting
                            break;
                        }
                        Ok((n, _)) => {
                            if let Err(e) = self.serve(now, &buf[..n]) {
                                log_error!("privileged parent: {e}; stopping the child");
                                let _ = process::kill(self.child, libc::SIGKILL);
                                poller.disable(1);
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            log_error!("privileged parent: {e}");
                            poller.disable(1);
                            break;
                        }
                    }
                }
            }
            self.hooks.poll(now);
            status = process::try_wait(self.child).ok().flatten();
        }
        // The child is gone (or the loop broke): let the last hooks (tuntap_down...) finish.
        let until = super::now() + FINAL_HOOK_WAIT;
        while !self.hooks.idle() && super::now() < until {
            let _ = poller.wait(Some(std::time::Duration::from_millis(20)));
            while let Ok(Some(_)) = signals.read() {}
            self.hooks.poll(super::now());
        }
        if let Some(path) = &self.config.control_unix_path {
            let _ = std::fs::remove_file(path);
        }
        #[cfg(target_os = "freebsd")]
        let _ = tun::destroy(&self.device);
        let status = status.or_else(|| process::try_wait(self.child).ok().flatten()).unwrap_or(1);
        if status == 128 + libc::SIGSYS {
            log_error!("network process killed by its sandbox (see dmesg)");
        } else if status != 0 {
            log_warn!("the network process exited with status {status}");
        }
        status
    }

    /// One request from the child. An error is a protocol violation: fatal.
    fn serve(&mut self, now: Instant, msg: &[u8]) -> Result<(), String> {
        match ToParent::decode(msg).map_err(|e| format!("bad request from the child: {}", e.0))? {
            ToParent::OpenLink { index } => {
                let i = usize::from(index);
                let Some(link) = self.config.links.get(i) else {
                    return Err(format!("the child asked for link {i}, which does not exist"));
                };
                let mut out = Vec::with_capacity(MAX_MESSAGE);
                match open_link_socket(&self.config, link) {
                    Ok((socket, remote)) => {
                        ToChild::LinkOpened { index, remote }.encode(&mut out);
                        self.channel.send(&out, Some(socket.as_raw_fd())).map_err(|e| e.to_string())?;
                    }
                    Err(reason) => {
                        ToChild::LinkFailed { index, reason }.encode(&mut out);
                        self.channel.send(&out, None).map_err(|e| e.to_string())?;
                    }
                }
            }
            ToParent::Hook(event) => {
                use super::hooks::HookEvent::*;
                if let RtunUp(name, _) | RtunDown(name, _) = &event {
                    if !self.known_links.contains(name) {
                        return Err(format!("hook for unknown link {name}"));
                    }
                }
                if let Some(site) = event.site() {
                    if !self.hooks.knows_site(site) {
                        return Err(format!("hook for unknown site {site}"));
                    }
                }
                self.hooks.push(now, event);
            }
            ToParent::SetMtu { mtu } => {
                // Path MTU discovery only ever lowers the device below what was configured.
                if !(crate::config::IPV6_MIN_MTU.min(self.config.mtu)..=self.config.mtu).contains(&mtu) {
                    return Err(format!("the child asked for MTU {mtu}, outside 1280..={}", self.config.mtu));
                }
                if let Err(e) = tun::set_mtu_of(&self.device, u32::from(mtu)) {
                    log_error!("cannot set the MTU of {} to {mtu}: {e}", self.device);
                }
            }
        }
        Ok(())
    }

    /// SIGHUP: read the configuration (the child cannot), check it, hand it over.
    fn reload(&mut self) {
        let (new, text) = match config::load_with_text(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                log_error!("reload: keeping the running configuration, the new one has errors:\n{e}");
                return;
            }
        };
        if new.mode != self.config.mode
            || new.interface_name != self.config.interface_name
            || new.tuntap != self.config.tuntap
            || new.sites.is_empty() != self.config.sites.is_empty()
        {
            log_error!(
                "reload: mode, interface_name, tuntap and having sites or not cannot change while running; \
                 restart mlvpn"
            );
            return;
        }
        match make_hooks(&new, &self.device) {
            Ok(h) => self.hooks.reconfigure(h),
            Err(e) => {
                log_error!("reload: keeping the running configuration: {e}");
                return;
            }
        }
        if new.mtu != self.config.mtu {
            if let Err(e) = tun::set_mtu_of(&self.device, u32::from(new.mtu)) {
                log_error!("reload: cannot set the MTU: {e}");
            }
        }
        for l in &new.links {
            if !self.known_links.contains(&l.name) {
                self.known_links.push(l.name.clone());
            }
        }
        self.config = new;
        if let Err(e) = send_config(&self.channel, &text) {
            log_error!("reload: cannot hand the configuration to the network process: {e}");
            return;
        }
        log_info!("reload: configuration checked and handed to the network process");
    }
}
