//! One endpoint's engines: a client's one tunnel, or a server's tunnel per site.
//!
//! A server with many sites (branch offices, a fleet of routers) listens on one set of link
//! ports for all of them. Each site has its own pre-shared key, its own addresses and routes,
//! and, once it first connects, its own [`Tunnel`]: sessions, reorder buffer, resend store and
//! scheduler. Nothing is shared between sites but the sockets and the TUN device.
//!
//! * **Which site a datagram is for.** A hello or confirm names its key in the clear
//!   ([`super::kdf::key_id`]): one table lookup finds the site, and a key id no site has is
//!   dropped unanswered, at the cost of that lookup. Transport datagrams are found by
//!   (link, session id), registered when a site's confirm creates the session. A client picks
//!   session ids at random, so two sites may pick the same on one link: the second one's
//!   handshake is dropped ([`DropReason::SessionCollision`]) and its next hello, with a new
//!   id, gets through.
//! * **Cryptokey routing**, as WireGuard's allowed IPs: a packet from the TUN device goes to
//!   the site whose addresses or routes hold its destination, longest prefix first
//!   ([`super::route`]); a packet from a site is delivered only if its source routes back to
//!   that same site. A site can use only its own addresses, and traffic between sites goes
//!   through the server's kernel (and its firewall) like any other.
//! * **Memory.** A site costs its key and its prefixes until its first hello that
//!   authenticates; then its tunnel is built. The tunnel's buffers (reorder, resend, send
//!   queue) come with its first data packet, so a connected idle site stays near 64 KiB.
//! * **Cost per packet.** Only sites that had an input since their outputs were last found
//!   empty are polled (a busy list), and an idle site's next timer is kept, so a packet
//!   costs about the same with a hundred sites as with one.
//! * **One device MTU.** The TUN device is shared, so its MTU is the smallest of the sites'
//!   tunnel MTUs ([`Event::TunnelMtu`]) among the sites that are up.
//!
//! A client, and a server configured the old way (one password, no sites), is one site that
//! takes every datagram and every packet, as before: no lookup, no filter.

use super::crypto::{Csprng, Key};
use super::handshake;
use super::kdf::{handshake_key, key_id};
use super::route::{Prefix, RouteTable, Side, packet_addr};
use super::sorted::SortedMap;
use super::time::Instant;
use super::tunnel::{
    Config, DropCounters, DropReason, Event, Mode, Received, ReconfigureError, Transmit, Tunnel,
};
use super::wire::{DATA_OVERHEAD, HANDSHAKE_LEN, Header, Kind};
use std::net::SocketAddr;

/// What a site's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// The configured password, stretched here ([`super::kdf::psk_from_password`]) only when
    /// it is new: a reload of a hundred sites does not stall the traffic for a second.
    Password(Vec<u8>),
    /// A key already stretched (tests, tools).
    Key(Key),
}

impl Secret {
    fn key(&self) -> Key {
        match self {
            Secret::Password(p) => super::kdf::psk_from_password(p),
            Secret::Key(k) => k.clone(),
        }
    }
}

/// One site of a server: who it is, and what it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    pub name: String,
    pub secret: Secret,
    /// Its tunnel addresses and the networks behind it.
    pub prefixes: Vec<Prefix>,
}

/// How an endpoint is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A client, or a server of one site: every datagram and packet is that tunnel's.
    One(Secret),
    /// A server of many sites.
    Many(Vec<SiteConfig>),
}

/// Why a layout cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// Two sites have the same key id, or claim the same prefix. (The configuration refuses a
    /// shared password or network with its file and line; only a key id two different keys
    /// share, a 2^-32 chance, gets this far.)
    Clash,
    /// Client and server, or one site and many, cannot swap in a running process.
    Changed,
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayoutError::Changed => "switching between one site and several needs a restart",
            LayoutError::Clash => "two sites share a key id or a network",
        })
    }
}

#[derive(Debug)]
struct Site {
    config: SiteConfig,
    psk: Key,
    handshake_key: Key,
    tunnel: Option<Box<Tunnel>>,
    /// Has a connected link (between its tunnel's `TunnelUp` and `TunnelDown`).
    up: bool,
    /// Which of its outputs (`TRANSMIT`, `DELIVER`, `EVENT`) may have something: set by every
    /// input, cleared as `poll_*` finds each empty.
    busy: u8,
    /// Its tunnel's `poll_timeout`, kept while it is not busy (an idle tunnel's timers do not
    /// change).
    wake: Option<Instant>,
}

/// [`Site::busy`] bits.
const TRANSMIT: u8 = 1;
const DELIVER: u8 = 2;
const EVENT: u8 = 4;

/// A site in a server's report of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSite {
    pub name: String,
    pub was_up: bool,
}

/// What [`Sites::reconfigure`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SitesReconfigured {
    /// For each link of the new configuration, the index it had before, or `None` if new.
    pub continued_from: Vec<Option<usize>>,
    /// Disconnects to send on the old sockets: (old link index, destination, datagram).
    pub goodbyes: Vec<(usize, SocketAddr, Vec<u8>)>,
    pub removed: Vec<RemovedSite>,
}

/// Every engine of one endpoint: see the module's documentation.
#[derive(Debug)]
pub struct Sites {
    config: Config,
    sites: Vec<Site>,
    /// Many sites: look datagrams and packets up; one: hand them all to it.
    many: bool,
    by_key: SortedMap<u32, usize>,
    /// (link, session id) → site, for transport datagrams.
    sessions: SortedMap<(usize, u32), usize>,
    routes: RouteTable,
    rng: Csprng,
    /// What was dropped before reaching a site's tunnel.
    drops: DropCounters,
    /// Sites with outputs that may be waiting ([`Site::busy`]): the `poll_*` calls ask these
    /// only, so that a packet costs the same with one site or a hundred.
    busy: Vec<usize>,
    /// Where in `busy` `poll_transmit` asks first: one datagram per site in turn.
    cursor: usize,
    /// The device MTU announced last (many sites).
    device_mtu: usize,
    /// A device MTU change, announced after the event that caused it.
    pending: Option<(usize, Event)>,
}

impl Sites {
    /// The engines for `layout`; `seed` as for [`Tunnel::new`]. A client's or a single site's
    /// tunnel is built at once; a server's sites', when they first connect.
    pub fn new(config: Config, layout: Layout, seed: [u8; 32], now: Instant) -> Result<Sites, LayoutError> {
        let many = matches!(layout, Layout::Many(_));
        let mut s = Sites {
            device_mtu: config.mtu,
            config,
            sites: Vec::new(),
            many,
            by_key: SortedMap::default(),
            sessions: SortedMap::default(),
            routes: RouteTable::default(),
            rng: Csprng::new(seed),
            drops: DropCounters::default(),
            busy: Vec::new(),
            cursor: 0,
            pending: None,
        };
        let config = s.config.clone();
        s.reconfigure(now, config, layout)?;
        Ok(s)
    }

    /// Rebuilds the session table from the sites' tunnels.
    fn index(&mut self) {
        self.sessions.clear();
        for (i, site) in self.sites.iter().enumerate() {
            let Some(t) = &site.tunnel else { continue };
            for (link, l) in t.links().iter().enumerate() {
                for s in l.session.iter().chain(l.previous.iter()) {
                    self.sessions.insert((link, s.id), i);
                }
            }
        }
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// Serves many sites (a server with `[site:NAME]` sections).
    pub fn is_many(&self) -> bool {
        self.many
    }

    /// The client's (or single site's) tunnel.
    pub fn first(&self) -> Option<&Tunnel> {
        self.sites.first()?.tunnel.as_deref()
    }

    /// Every site: its name (empty for a client or a single site), its tunnel once built, and
    /// whether it is up.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&Tunnel>, bool)> {
        self.sites.iter().map(|s| (s.config.name.as_str(), s.tunnel.as_deref(), s.up))
    }

    pub fn name(&self, site: usize) -> &str {
        self.sites.get(site).map_or("", |s| &s.config.name)
    }

    pub fn prefixes(&self, site: usize) -> &[Prefix] {
        self.sites.get(site).map_or(&[], |s| &s.config.prefixes)
    }

    pub fn tunnel(&self, site: usize) -> Option<&Tunnel> {
        self.sites.get(site)?.tunnel.as_deref()
    }

    /// Sites whose tunnel has a connected link.
    pub fn up_count(&self) -> usize {
        self.sites.iter().filter(|s| s.up).count()
    }

    /// What was dropped before reaching any site.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Client: where link `link` sends.
    pub fn set_remote(&mut self, link: usize, addr: SocketAddr) {
        for t in self.tunnels_mut() {
            t.set_remote(link, addr);
        }
    }

    fn tunnels_mut(&mut self) -> impl Iterator<Item = &mut Tunnel> {
        self.sites.iter_mut().filter_map(|s| s.tunnel.as_deref_mut())
    }

    fn dropped(&mut self, d: DropReason) -> Received {
        self.drops.count(d);
        Received::Dropped(d)
    }

    /// The largest packet the device may carry: the site's, or the smallest of the sites up.
    pub fn tunnel_mtu(&self) -> usize {
        match self.first() {
            Some(t) if !self.many => t.tunnel_mtu(),
            _ => self.device_mtu,
        }
    }

    /// As [`Tunnel::handle_datagram`], for the site the datagram names.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        link: usize,
        from: SocketAddr,
        dg: &mut [u8],
    ) -> Received {
        // One call of the tunnel below, for one site or many: the router binary keeps one
        // copy of the engine's receive path.
        let (site, confirm) = if self.many {
            match self.site_of(now, link, dg) {
                Ok(found) => found,
                Err(d) => return self.dropped(d),
            }
        } else {
            (0, None)
        };
        let Some(t) = self.sites[site].tunnel.as_mut() else {
            return self.dropped(DropReason::UnknownSession);
        };
        let r = t.handle_datagram(now, link, from, dg);
        self.touch(site);
        if !self.many {
            return r;
        }
        match r {
            Received::Consumed if confirm.is_some() => self.register(site, link, confirm.unwrap_or(0)),
            Received::Deliver(ref range) if !self.source_ok(site, &dg[range.clone()]) => {
                return self.dropped(DropReason::SourceRejected);
            }
            _ => {}
        }
        r
    }

    /// Many sites: the site a datagram is for, and the session id of a confirm (which, once
    /// accepted, routes that session's datagrams to the site).
    fn site_of(&mut self, now: Instant, link: usize, dg: &[u8]) -> Result<(usize, Option<u32>), DropReason> {
        let h = Header::parse(dg).map_err(|_| DropReason::Malformed)?;
        match h.kind {
            Kind::Hello => Ok((self.handshake_site(now, link, &h, dg)?, None)),
            Kind::Confirm => Ok((self.handshake_site(now, link, &h, dg)?, Some(h.session))),
            Kind::Challenge => Err(DropReason::Unexpected),
            _ => Ok((self.sessions.get((link, h.session)).ok_or(DropReason::UnknownSession)?, None)),
        }
    }

    /// The site of a hello or confirm: by its key id, unless another site holds its session
    /// id on this link. A site's tunnel is built on its first hello that authenticates.
    fn handshake_site(
        &mut self,
        now: Instant,
        link: usize,
        h: &Header,
        dg: &[u8],
    ) -> Result<usize, DropReason> {
        let site = self.by_key.get(h.key_id()).ok_or(DropReason::UnknownSite)?;
        if let Some(other) = self.sessions.get((link, h.session)) {
            if other != site && holds(&self.sites, other, link, h.session) {
                return Err(DropReason::SessionCollision);
            }
        }
        if self.sites[site].tunnel.is_some() {
            return Ok(site);
        }
        if h.kind != Kind::Hello {
            // A confirm answers a challenge of this site's tunnel, which does not exist.
            return Err(DropReason::StaleHandshake);
        }
        // Opened on a copy: the tunnel opens it again in place. Only the first hello of a
        // site pays twice.
        let mut copy = [0u8; HANDSHAKE_LEN];
        copy.copy_from_slice(dg);
        if handshake::open(&self.sites[site].handshake_key, h, &mut copy).is_err() {
            return Err(DropReason::Unauthenticated);
        }
        self.build(site, now);
        Ok(site)
    }

    /// Builds `site`'s tunnel (the one place that does: the router binary keeps one copy).
    fn build(&mut self, site: usize, now: Instant) {
        let seed = self.rng.bytes();
        let s = &mut self.sites[site];
        s.tunnel = Some(Box::new(Tunnel::new(self.config.clone(), &s.psk, seed, now)));
        self.touch(site);
    }

    /// A confirm made session `id` on `site`'s `link`: route its datagrams there, and forget
    /// the ids of that link the site no longer accepts.
    fn register(&mut self, site: usize, link: usize, id: u32) {
        self.sessions.insert((link, id), site);
        let sites = &self.sites;
        self.sessions.retain(|(l, i), s| s != site || l != link || i == id || holds(sites, site, link, i));
    }

    /// Whether a packet `site` sent may enter: its source routes back to `site`.
    fn source_ok(&self, site: usize, packet: &[u8]) -> bool {
        packet_addr(packet, Side::Source).and_then(|a| self.routes.lookup(a)) == Some(site)
    }

    /// As [`Tunnel::handle_tun`], for the site the packet's destination routes to.
    pub fn handle_tun(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Option<Transmit>, DropReason> {
        let site = if self.many {
            let packet = buf.get(DATA_OVERHEAD..DATA_OVERHEAD + len).unwrap_or(&[]);
            let Some(dst) = packet_addr(packet, Side::Destination) else {
                self.drops.count(DropReason::Malformed);
                return Err(DropReason::Malformed);
            };
            match self.routes.lookup(dst) {
                Some(site) => site,
                None => {
                    self.drops.count(DropReason::NoRoute);
                    return Err(DropReason::NoRoute);
                }
            }
        } else {
            0
        };
        match self.sites[site].tunnel.as_mut() {
            Some(t) => {
                let r = t.handle_tun(now, buf, len);
                self.touch(site);
                r
            }
            None => {
                self.drops.count(DropReason::NoLink);
                Err(DropReason::NoLink)
            }
        }
    }

    /// As [`Tunnel::handle_path_mtu_hint`], for one site's link.
    pub fn handle_path_mtu_hint(&mut self, now: Instant, site: usize, link: usize, path_mtu: usize) {
        if let Some(t) = self.sites.get_mut(site).and_then(|s| s.tunnel.as_deref_mut()) {
            t.handle_path_mtu_hint(now, link, path_mtu);
            self.touch(site);
        }
    }

    /// Where `site`'s `link` sends.
    pub fn peer(&self, site: usize, link: usize) -> Option<SocketAddr> {
        self.tunnel(site)?.links().get(link)?.peer
    }

    /// An input reached `site`: its outputs are worth asking for again.
    fn touch(&mut self, site: usize) {
        let s = &mut self.sites[site];
        if s.busy == 0 {
            self.busy.push(site);
        }
        s.busy = TRANSMIT | DELIVER | EVENT;
    }

    /// `site`'s `output` is empty; a site with none left leaves the busy list, its next
    /// timer noted.
    fn drained(&mut self, site: usize, output: u8) {
        let s = &mut self.sites[site];
        s.busy &= !output;
        if s.busy == 0 {
            s.wake = s.tunnel.as_ref().and_then(|t| t.poll_timeout());
            self.busy.retain(|&i| i != site);
        }
    }

    /// When `site`'s timers want it.
    fn wake(&self, site: usize) -> Option<Instant> {
        let s = &self.sites[site];
        if s.busy == 0 { s.wake } else { s.tunnel.as_ref()?.poll_timeout() }
    }

    /// When [`Sites::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (0..self.sites.len()).filter_map(|i| self.wake(i)).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.sites.len() {
            if self.wake(i).is_some_and(|at| at <= now) {
                if let Some(t) = self.sites[i].tunnel.as_mut() {
                    t.handle_timeout(now);
                }
                self.touch(i);
            }
        }
    }

    /// The next datagram to send, one site after the other.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while !self.busy.is_empty() {
            let k = self.cursor % self.busy.len();
            let i = self.busy[k];
            let site = &mut self.sites[i];
            let asked = site.busy & TRANSMIT != 0;
            let tx = match site.tunnel.as_mut() {
                Some(t) if asked => t.poll_transmit(now, buf),
                _ => None,
            };
            if tx.is_some() {
                self.cursor = k + 1;
                return tx;
            }
            if asked {
                self.drained(i, TRANSMIT);
                continue;
            }
            // Every busy site asked: nothing to send.
            if self.busy.iter().all(|&j| self.sites[j].busy & TRANSMIT == 0) {
                return None;
            }
            self.cursor = k + 1;
        }
        None
    }

    /// The next packet a site's reorder buffer releases, into `buf`; packets whose source is
    /// not their site's are dropped on the way.
    pub fn poll_deliver(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let mut k = 0;
        while let Some(&i) = self.busy.get(k) {
            if self.sites[i].busy & DELIVER == 0 {
                k += 1;
                continue;
            }
            match self.sites[i].tunnel.as_mut().and_then(|t| t.poll_deliver(now, buf)) {
                Some(n) if !self.many || self.source_ok(i, &buf[..n]) => return Some(n),
                Some(_) => self.drops.count(DropReason::SourceRejected),
                // (It may leave the list: the next one takes its place at `k`.)
                None => self.drained(i, DELIVER),
            }
        }
        None
    }

    /// The next event, with the site it is about. With many sites, each site's
    /// [`Event::TunnelUp`] and [`Event::TunnelDown`] say that site came up or went down, and
    /// [`Event::TunnelMtu`] is the device's: the smallest MTU of the sites up.
    pub fn poll_event(&mut self) -> Option<(usize, Event)> {
        if let Some(e) = self.pending.take() {
            return Some(e);
        }
        let mut k = 0;
        while let Some(&i) = self.busy.get(k) {
            if self.sites[i].busy & EVENT == 0 {
                k += 1;
                continue;
            }
            let Some(e) = self.sites[i].tunnel.as_mut().and_then(|t| t.poll_event()) else {
                self.drained(i, EVENT);
                continue;
            };
            {
                match e {
                    Event::TunnelUp => self.sites[i].up = true,
                    Event::TunnelDown => self.sites[i].up = false,
                    _ => {}
                }
                if !self.many {
                    return Some((i, e));
                }
                self.update_device_mtu(i);
                if !matches!(e, Event::TunnelMtu { .. }) {
                    return Some((i, e));
                }
                if let Some(mtu) = self.pending.take() {
                    return Some(mtu);
                }
            }
        }
        None
    }

    /// Many sites: the smallest tunnel MTU of the sites up becomes the device's; a change is
    /// the next event.
    fn update_device_mtu(&mut self, cause: usize) {
        let mtu = self
            .sites
            .iter()
            .filter(|s| s.up)
            .filter_map(|s| Some(s.tunnel.as_ref()?.tunnel_mtu()))
            .min()
            .unwrap_or(self.config.mtu);
        if mtu != self.device_mtu {
            self.device_mtu = mtu;
            self.pending = Some((cause, Event::TunnelMtu { mtu }));
        }
    }

    /// Shutting down: every site's links owe their peers a disconnect.
    pub fn close(&mut self, now: Instant) {
        for i in 0..self.sites.len() {
            if let Some(t) = self.sites[i].tunnel.as_mut() {
                t.close(now);
                self.touch(i);
            }
        }
    }

    /// Applies a new configuration: links matched by name in every site, as
    /// [`Tunnel::reconfigure`] does; sites matched by name, so that a site that stays keeps
    /// its sessions (a changed password applies to its next handshakes), a new one waits for
    /// its first hello, and a removed one says goodbye on its connected links.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: Config,
        layout: Layout,
    ) -> Result<SitesReconfigured, LayoutError> {
        match (&layout, self.many) {
            (Layout::One(_), false) | (Layout::Many(_), true) => {}
            _ => return Err(LayoutError::Changed),
        }
        if config.mode != self.config.mode {
            return Err(LayoutError::Changed);
        }
        let continued_from: Vec<Option<usize>> =
            config.links.iter().map(|c| self.config.links.iter().position(|l| l.name == c.name)).collect();
        let mut report = SitesReconfigured { continued_from, ..Default::default() };
        let wanted: Vec<SiteConfig> = match layout {
            Layout::One(secret) => {
                vec![SiteConfig { name: String::new(), secret, prefixes: Vec::new() }]
            }
            Layout::Many(sites) => sites,
        };
        // Each site's key: kept if its secret is, else made (stretched) now.
        let wanted: Vec<(SiteConfig, Key)> = wanted
            .into_iter()
            .map(|c| {
                let same = self.sites.iter().find(|s| s.config.name == c.name && s.config.secret == c.secret);
                let psk = same.map_or_else(|| c.secret.key(), |s| s.psk.clone());
                (c, psk)
            })
            .collect();
        (self.by_key, self.routes) = tables(&wanted)?;
        let mut old: Vec<Option<Site>> = std::mem::take(&mut self.sites).into_iter().map(Some).collect();
        let mut sites = Vec::with_capacity(wanted.len());
        for (c, psk) in wanted {
            let kept = old.iter_mut().find(|s| s.as_ref().is_some_and(|s| s.config.name == c.name));
            let mut site = match kept.and_then(Option::take) {
                Some(mut s) => {
                    s.handshake_key = handshake_key(&psk);
                    s.config = c;
                    s.psk = psk;
                    s
                }
                None => new_site(c, psk),
            };
            if let Some(t) = site.tunnel.as_mut() {
                let r = t.reconfigure(now, config.clone(), &site.psk).map_err(|e| match e {
                    ReconfigureError::ModeChanged => LayoutError::Changed,
                })?;
                report.goodbyes.extend(r.goodbyes);
            }
            sites.push(site);
        }
        for s in old.into_iter().flatten() {
            report.removed.push(Self::retire(s, &mut report.goodbyes));
        }
        self.sites = sites;
        self.config = config;
        self.cursor = 0;
        // The sites have new places: every tunnel is asked again (a reconfigured one may
        // have events, a link gone down).
        self.busy.clear();
        for i in 0..self.sites.len() {
            self.sites[i].busy = 0;
            if self.sites[i].tunnel.is_some() {
                self.touch(i);
            }
        }
        self.index();
        if !self.many && self.sites[0].tunnel.is_none() {
            self.build(0, now);
        }
        if self.many {
            let cause = self.sites.len().saturating_sub(1);
            self.update_device_mtu(cause);
        }
        Ok(report)
    }

    /// A site removed by a reload: its disconnects join `goodbyes`, and its tunnel goes.
    fn retire(site: Site, goodbyes: &mut Vec<(usize, SocketAddr, Vec<u8>)>) -> RemovedSite {
        if let Some(mut t) = site.tunnel {
            goodbyes.extend(t.goodbyes(|_| false));
        }
        RemovedSite { name: site.config.name, was_up: site.up }
    }
}

/// Whether `site`'s tunnel still accepts session `id` on `link`.
fn holds(sites: &[Site], site: usize, link: usize, id: u32) -> bool {
    let Some(t) = sites[site].tunnel.as_deref() else { return false };
    t.links().get(link).is_some_and(|l| l.session.iter().chain(l.previous.iter()).any(|s| s.id == id))
}

/// The key and route tables of `sites`, or what two of them share.
fn tables(sites: &[(SiteConfig, Key)]) -> Result<(SortedMap<u32, usize>, RouteTable), LayoutError> {
    let mut by_key = SortedMap::default();
    let mut routes = RouteTable::default();
    for (i, (site, psk)) in sites.iter().enumerate() {
        if by_key.insert_first(key_id(psk), i).is_some() {
            return Err(LayoutError::Clash);
        }
        for p in &site.prefixes {
            if routes.insert(*p, i).is_some() {
                return Err(LayoutError::Clash);
            }
        }
    }
    Ok((by_key, routes))
}

fn new_site(config: SiteConfig, psk: Key) -> Site {
    Site { handshake_key: handshake_key(&psk), config, psk, tunnel: None, up: false, busy: 0, wake: None }
}
