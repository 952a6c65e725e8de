//! The whole emulator, sans-IO: two [`Pipe`]s per link (0 = up, client to server; 1 = down)
//! and a schedule of timed commands.
//!
//! Call order, for the shell: [`handle_command`](Emulator::handle_command) for each command read
//! from the control socket or given at start; [`poll_scheduled`](Emulator::poll_scheduled) until
//! `None`, running each command it returns through `handle_command`; then the pipes (see
//! [`Pipe`]); then sleep until [`poll_timeout`](Emulator::poll_timeout).

use std::fmt::Write as _;

use crate::command::{Command, Target, fmt_duration, fmt_loss, fmt_rate};
use crate::pipe::Pipe;
use crate::rng::Rng;

/// Scheduled commands pending at once, at most (a runaway script is an operator error).
pub const MAX_SCHEDULED: usize = 10_000;

#[derive(Debug)]
struct Timed {
    at: u64,
    seq: u64,
    cmd: Command,
}

#[derive(Debug)]
pub struct Emulator {
    links: Vec<[Pipe; 2]>,
    start: u64,
    /// Sorted by `(at, seq)`: equal times run in the order they were given.
    schedule: Vec<Timed>,
    seq: u64,
}

pub const DIR_NAMES: [&str; 2] = ["up", "down"];

impl Emulator {
    /// `links` perfect links, each pipe with `slots` ring slots; `start` is time 0 of `at`.
    pub fn new(links: usize, slots: usize, seed: u64, start: u64) -> Emulator {
        let links = (0..links)
            .map(|l| {
                let pipe = |d: u64| Pipe::new(slots, Rng::fork(seed, 2 * l as u64 + d));
                [pipe(0), pipe(1)]
            })
            .collect();
        Emulator { links, start, schedule: Vec::new(), seq: 0 }
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    pub fn pipe(&self, link: usize, dir: usize) -> &Pipe {
        &self.links[link][dir]
    }

    pub fn pipe_mut(&mut self, link: usize, dir: usize) -> &mut Pipe {
        &mut self.links[link][dir]
    }

    /// Time 0 of `at`.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Runs `cmd` at `now`. `show` appends its lines to `out`. Errors are the operator's (a link
    /// that does not exist, a full schedule) and change nothing.
    pub fn handle_command(&mut self, now: u64, cmd: &Command, out: &mut String) -> Result<(), String> {
        match cmd {
            Command::Show => {
                for l in 0..self.links.len() {
                    for d in 0..2 {
                        show_line(out, l, d, &self.links[l][d]);
                    }
                }
                Ok(())
            }
            Command::Link { target, dir, settings } => {
                let range = match *target {
                    Target::All => 0..self.links.len(),
                    Target::Link(l) => {
                        self.check_link(l)?;
                        l..l + 1
                    }
                };
                for l in range {
                    for d in (0..2).filter(|&d| dir.has(d)) {
                        let pipe = &mut self.links[l][d];
                        let mut p = *pipe.params();
                        for s in settings {
                            s.apply(&mut p);
                        }
                        pipe.set_params(now, p);
                    }
                }
                Ok(())
            }
            Command::At { ns, from_start, then } => {
                if let Command::Link { target: Target::Link(l), .. } = **then {
                    self.check_link(l)?;
                }
                if self.schedule.len() >= MAX_SCHEDULED {
                    return Err(format!("too many scheduled commands (at most {MAX_SCHEDULED})"));
                }
                let at = if *from_start { self.start } else { now }.saturating_add(*ns);
                let t = Timed { at, seq: self.seq, cmd: (**then).clone() };
                self.seq += 1;
                let i = self.schedule.partition_point(|x| (x.at, x.seq) < (t.at, t.seq));
                self.schedule.insert(i, t);
                Ok(())
            }
        }
    }

    /// The next scheduled command due at `now`, removed from the schedule.
    #[must_use]
    pub fn poll_scheduled(&mut self, now: u64) -> Option<Command> {
        if self.schedule.first().is_some_and(|t| t.at <= now) {
            Some(self.schedule.remove(0).cmd)
        } else {
            None
        }
    }

    /// The earliest time something is due: a frame or a scheduled command.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let frames = self.links.iter().flatten().filter_map(Pipe::poll_timeout).min();
        let sched = self.schedule.first().map(|t| t.at);
        match (frames, sched) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn check_link(&self, l: usize) -> Result<(), String> {
        if l < self.links.len() {
            Ok(())
        } else {
            Err(format!("no link {l}: links are 0 to {}", self.links.len().saturating_sub(1)))
        }
    }
}

/// One `show` line: `link L DIR key=value ...`, settings first, then counters.
pub fn show_line(out: &mut String, link: usize, dir: usize, pipe: &Pipe) {
    let p = pipe.params();
    let c = pipe.counters();
    let _ = writeln!(
        out,
        "link {link} {} delay={} jitter={} loss={} rate={} queue={} blackhole={} \
         rx={} rx_bytes={} tx={} tx_bytes={} lost={} tail_drop={} blackholed={} ring_full={} \
         oversize={} tx_error={} queued_bytes={} held={} late_max={}us late_1ms={}",
        DIR_NAMES[dir],
        fmt_duration(p.delay_ns),
        fmt_duration(p.jitter_ns),
        fmt_loss(p.loss_ppb),
        fmt_rate(p.rate_bps),
        p.queue_limit(),
        if p.blackhole { "on" } else { "off" },
        c.rx,
        c.rx_bytes,
        c.tx,
        c.tx_bytes,
        c.lost,
        c.tail_drop,
        c.blackholed,
        c.ring_full,
        c.oversize,
        c.tx_error,
        pipe.queued_bytes(),
        pipe.held(),
        c.late_max_ns / 1_000,
        c.late_1ms,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_line;

    const S: u64 = 1_000_000_000;

    fn run(e: &mut Emulator, now: u64, line: &str) -> Result<String, String> {
        let mut out = String::new();
        e.handle_command(now, &parse_line(line).unwrap().unwrap(), &mut out).map(|()| out)
    }

    #[test]
    fn settings_apply_per_link_and_direction() {
        let mut e = Emulator::new(3, 16, 1, 0);
        run(&mut e, 0, "link all delay 10ms rate 40mbit").unwrap();
        run(&mut e, 0, "link 1 up rate 10mbit").unwrap();
        assert_eq!(e.pipe(1, 0).params().rate_bps, 10_000_000);
        assert_eq!(e.pipe(1, 1).params().rate_bps, 40_000_000);
        assert_eq!(e.pipe(2, 0).params().rate_bps, 40_000_000);
        assert_eq!(e.pipe(1, 0).params().delay_ns, 10_000_000);
        run(&mut e, 0, "link 2 down reset jitter 1ms").unwrap();
        assert_eq!(e.pipe(2, 1).params().delay_ns, 0);
        assert_eq!(e.pipe(2, 1).params().jitter_ns, 1_000_000);
        assert_eq!(e.pipe(2, 0).params().delay_ns, 10_000_000);
        assert_eq!(run(&mut e, 0, "link 3 delay 1ms"), Err("no link 3: links are 0 to 2".into()));
        let show = run(&mut e, 0, "show").unwrap();
        assert_eq!(show.lines().count(), 6);
        assert!(show.lines().nth(2).unwrap().starts_with(
            "link 1 up delay=10ms jitter=0 loss=0% rate=10mbit queue=62500 blackhole=off rx=0 "
        ));
    }

    #[test]
    fn schedule_runs_in_time_order() {
        let mut e = Emulator::new(2, 16, 1, 100 * S);
        run(&mut e, 101 * S, "at 8s link 1 blackhole off").unwrap();
        run(&mut e, 101 * S, "at 5s link 1 blackhole on").unwrap();
        run(&mut e, 101 * S, "after 4s link 0 delay 5ms").unwrap(); // at 105 s, after the 'at 5s'
        assert!(run(&mut e, 101 * S, "at 1s link 2 delay 5ms").is_err());
        assert_eq!(e.poll_timeout(), Some(105 * S));
        assert_eq!(e.poll_scheduled(104 * S), None);
        let order: Vec<String> =
            std::iter::from_fn(|| e.poll_scheduled(110 * S)).map(|c| format!("{c:?}")).collect();
        assert_eq!(order.len(), 3);
        assert!(order[0].contains("Blackhole(true)"));
        assert!(order[1].contains("Delay"));
        assert!(order[2].contains("Blackhole(false)"));
        assert_eq!(e.poll_timeout(), None);
    }

    #[test]
    fn timeout_is_the_earliest_frame() {
        let mut e = Emulator::new(2, 16, 1, 0);
        run(&mut e, 0, "link 0 delay 30ms").unwrap();
        run(&mut e, 0, "link 1 down delay 20ms").unwrap();
        let _ = e.pipe_mut(0, 0).handle_frame(0, 100).unwrap();
        let _ = e.pipe_mut(1, 1).handle_frame(0, 100).unwrap();
        assert_eq!(e.poll_timeout(), Some(20_000_000));
    }
}
