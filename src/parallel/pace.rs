//! When a team runs its steps on one thread.
//!
//! A team of T threads splits every step into T parts that meet at barriers. When another
//! process keeps one of the cores busy, the thread that shares that core is descheduled for
//! milliseconds at a time, and every barrier waits for it: the team then runs slower than one
//! thread would. So thread 0 watches the steps in short windows ([`TEAM_WINDOW`] steps as a
//! team, [`ALONE_WINDOW`] alone):
//!
//! - in a team window, the time thread 0 spends computing (the step minus its barrier waits)
//!   times T estimates a step on one thread; when team steps take longer than that, or than
//!   the last measured step alone, the workers park and thread 0 runs every part of each step
//!   itself, in the same order, so the results are the same bits;
//! - alone, after a number of windows that doubles each time the team proves slower (from 2
//!   up to [`MAX_WINDOWS_ALONE`]), the team is tried again for one window (short, since a
//!   team that waits for a descheduled thread loses milliseconds per step).
//!
//! On an idle machine a team step takes about as long as one part of it, far less than T
//! parts, and the team never parks.
//!
//! `CONSTNET_PACE=team` keeps the team together whatever the timings (to measure it), and
//! `CONSTNET_PACE=alternate` parks and resumes it every few steps (to test that the results do
//! not depend on who runs which part).

use std::time::{Duration, Instant};

/// Steps per measurement window as a team.
pub(super) const TEAM_WINDOW: u32 = 8;
/// Steps per measurement window alone.
pub(super) const ALONE_WINDOW: u32 = 32;
/// The most windows run alone before the team is tried again (about a second).
pub(super) const MAX_WINDOWS_ALONE: u32 = 128;
/// The team must be this much slower than one thread before it parks, so that measurement
/// noise does not make it switch back and forth.
const MARGIN: f64 = 1.05;

/// What thread 0 does with the next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// A team step; the workers park after it if `park_after`.
    Team { park_after: bool },
    /// Every part of the step on thread 0 (the workers are parked).
    Alone,
    /// Resume the parked workers for a team step.
    Resume,
}

/// How a team chooses between running as a team and on one thread (the results are the same
/// bits either way); the default is `CONSTNET_PACE`'s, else [`Pacing::Measured`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pacing {
    /// By the measurements (the default).
    #[default]
    Measured,
    /// Always as a team.
    Team,
    /// Alone and as a team by turns, every three steps (to test that the results do not
    /// depend on which thread runs which part).
    Alternate,
    /// Always alone after the first step of each epoch (to measure what running every part
    /// on one thread costs).
    Alone,
}

/// Steps per turn with [`Pacing::Alternate`] (odd, so turns start at different places in
/// successive epochs).
const ALTERNATE: u32 = 3;

impl Pacing {
    /// The pacing `CONSTNET_PACE` names (`measured` when unset or unknown).
    pub fn from_env() -> Self {
        match std::env::var("CONSTNET_PACE").as_deref() {
            Ok("team") => Pacing::Team,
            Ok("alternate") => Pacing::Alternate,
            Ok("alone") => Pacing::Alone,
            _ => Pacing::Measured,
        }
    }
}

/// The measurements and the mode; owned by thread 0.
pub(super) struct Pace {
    threads: usize,
    pacing: Pacing,
    /// Whether the workers are parked (or asked to park after the current step).
    alone: bool,
    /// Whether the current team window is a trial after running alone.
    trial: bool,
    /// Whether the next epoch's first step is to park the workers (it runs as a team, since
    /// the workers start every epoch with it).
    park_at_start: bool,
    /// When the current window started (`None`: at the next step; a step that switches modes
    /// belongs to no window).
    window_start: Option<Instant>,
    steps: u32,
    /// Thread 0's barrier waits in the current window.
    waited: Duration,
    /// Seconds per step alone, as last measured (infinite: never measured).
    alone_step: f64,
    windows_alone: u32,
    /// Windows to run alone before the next trial.
    trial_after: u32,
    /// Steps run alone, in all.
    steps_alone: u64,
}

impl Pace {
    pub(super) fn new(threads: usize, pacing: Pacing) -> Self {
        Self {
            threads,
            pacing,
            alone: false,
            trial: false,
            park_at_start: false,
            window_start: None,
            steps: 0,
            waited: Duration::ZERO,
            alone_step: f64::INFINITY,
            windows_alone: 0,
            trial_after: 2,
            steps_alone: 0,
        }
    }

    /// The plan for the next step; `more` says whether another step of the epoch follows it
    /// (the workers park only between two steps of an epoch).
    pub(super) fn plan(&mut self, more: bool) -> Plan {
        if std::mem::take(&mut self.park_at_start) && more {
            return self.switch(Plan::Team { park_after: true });
        }
        let start = *self.window_start.get_or_insert_with(Instant::now);
        let window = match self.pacing {
            Pacing::Measured if self.alone => ALONE_WINDOW,
            Pacing::Measured => TEAM_WINDOW,
            Pacing::Team => u32::MAX,
            Pacing::Alternate => return self.alternate(more),
            Pacing::Alone if !self.alone && more && self.threads > 1 => {
                return self.switch(Plan::Team { park_after: true });
            }
            Pacing::Alone => u32::MAX,
        };
        if self.threads == 1 || self.steps < window {
            return if self.alone {
                Plan::Alone
            } else {
                Plan::Team { park_after: false }
            };
        }
        let per_step = start.elapsed().as_secs_f64() / f64::from(self.steps);
        let plan = if self.alone {
            self.end_window_alone(per_step)
        } else {
            self.end_team_window(per_step, more)
        };
        (self.window_start, self.steps, self.waited) = (Some(Instant::now()), 0, Duration::ZERO);
        plan
    }

    fn end_window_alone(&mut self, per_step: f64) -> Plan {
        self.alone_step = per_step;
        self.windows_alone += 1;
        if self.windows_alone < self.trial_after {
            return Plan::Alone;
        }
        (self.trial, self.windows_alone) = (true, 0);
        self.switch(Plan::Resume)
    }

    fn end_team_window(&mut self, per_step: f64, more: bool) -> Plan {
        let busy = per_step - self.waited.as_secs_f64() / f64::from(self.steps);
        let alone_estimate = (busy * self.threads as f64).min(self.alone_step);
        let slower = per_step > alone_estimate * MARGIN;
        if std::mem::take(&mut self.trial) {
            self.trial_after = if slower {
                (self.trial_after * 2).min(MAX_WINDOWS_ALONE)
            } else {
                2
            };
        }
        if slower && more {
            self.switch(Plan::Team { park_after: true })
        } else {
            Plan::Team { park_after: false }
        }
    }

    /// [`Pacing::Alternate`]'s plan.
    fn alternate(&mut self, more: bool) -> Plan {
        if self.threads == 1 || self.steps < ALTERNATE {
            return if self.alone {
                Plan::Alone
            } else {
                Plan::Team { park_after: false }
            };
        }
        if self.alone {
            self.switch(Plan::Resume)
        } else if more {
            self.switch(Plan::Team { park_after: true })
        } else {
            Plan::Team { park_after: false }
        }
    }

    /// A plan that changes the mode: the step it plans belongs to no window.
    fn switch(&mut self, plan: Plan) -> Plan {
        self.alone = plan == Plan::Team { park_after: true };
        (self.window_start, self.steps, self.waited) = (None, 0, Duration::ZERO);
        plan
    }

    /// Records a step just run as planned: thread 0's barrier waits in it.
    pub(super) fn record(&mut self, plan: Plan, waited: Duration) {
        if plan == Plan::Alone {
            self.steps_alone += 1;
        }
        if self.window_start.is_some() {
            self.steps = self.steps.saturating_add(1);
            self.waited += waited;
        }
    }

    /// The epoch ended and the workers are released: the next epoch starts as a team, and
    /// parks after its first step if running alone was the better choice.
    pub(super) fn end_epoch(&mut self) {
        self.park_at_start = self.alone;
        self.alone = false;
        (self.window_start, self.steps, self.waited) = (None, 0, Duration::ZERO);
    }

    /// Chooses the pacing from now on (between epochs).
    pub(super) fn set_pacing(&mut self, pacing: Pacing) {
        self.pacing = pacing;
    }

    /// Whether the workers are parked (or will park after the step just planned).
    pub(super) fn alone(&self) -> bool {
        self.alone
    }

    /// Steps run on thread 0 alone so far.
    pub(super) fn steps_alone(&self) -> u64 {
        self.steps_alone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    /// A team of two at the end of a window whose steps took `per_step` seconds, of which
    /// thread 0 waited `waited`.
    fn decide(pace: &mut Pace, per_step: f64, waited: f64) -> Plan {
        pace.steps = TEAM_WINDOW;
        pace.waited = Duration::from_secs_f64(waited * f64::from(TEAM_WINDOW));
        pace.end_team_window(per_step, true)
    }

    #[test]
    fn an_idle_team_stays_together() {
        let mut pace = Pace::new(2, Pacing::Measured);
        // Thread 0 computes 200 µs of a 210 µs step: the team is nearly twice one thread.
        assert_eq!(
            decide(&mut pace, 210e-6, 10e-6),
            Plan::Team { park_after: false }
        );
        assert!(!pace.alone());
        // Even when it waits for as long as it computes, the team ties one thread at worst.
        assert_eq!(
            decide(&mut pace, 400e-6, 200e-6),
            Plan::Team { park_after: false }
        );
    }

    #[test]
    fn a_team_slower_than_one_thread_parks() {
        let mut pace = Pace::new(2, Pacing::Measured);
        // Thread 0 computes 200 µs and waits 500 µs for the other: alone would take 400 µs.
        assert_eq!(
            decide(&mut pace, 700e-6, 500e-6),
            Plan::Team { park_after: true }
        );
        assert!(pace.alone());
        // Not after the epoch's last step, though: the workers leave the epoch anyway.
        let mut pace = Pace::new(2, Pacing::Measured);
        pace.steps = TEAM_WINDOW;
        pace.waited = Duration::from_secs_f64(500e-6 * f64::from(TEAM_WINDOW));
        assert_eq!(
            pace.end_team_window(700e-6, false),
            Plan::Team { park_after: false }
        );
    }

    #[test]
    fn alone_the_team_is_tried_again_less_often_while_it_stays_slower() {
        let mut pace = Pace::new(2, Pacing::Measured);
        decide(&mut pace, 700e-6, 500e-6);
        let mut trials = Vec::new();
        for _ in 0..4 {
            let mut windows = 1;
            while pace.end_window_alone(400e-6) == Plan::Alone {
                windows += 1;
            }
            trials.push(windows);
            assert!(pace.trial);
            // The trial: the team is still slower than the 400 µs measured alone.
            assert_eq!(
                decide(&mut pace, 700e-6, 500e-6),
                Plan::Team { park_after: true }
            );
        }
        assert_eq!(trials, [2, 4, 8, 16]);
        for _ in 0..4 {
            while pace.end_window_alone(400e-6) == Plan::Alone {}
            decide(&mut pace, 700e-6, 500e-6);
        }
        assert_eq!(pace.trial_after, MAX_WINDOWS_ALONE);
        // Once the other core is free again, the trial keeps the team.
        while pace.end_window_alone(400e-6) == Plan::Alone {}
        assert_eq!(
            decide(&mut pace, 210e-6, 10e-6),
            Plan::Team { park_after: false }
        );
        assert_eq!(pace.trial_after, 2);
    }

    #[test]
    fn a_team_of_one_or_a_forced_team_never_parks() {
        for (threads, policy) in [(1, Pacing::Measured), (2, Pacing::Team)] {
            let mut pace = Pace::new(threads, policy);
            for _ in 0..10 * ALONE_WINDOW {
                let plan = pace.plan(true);
                assert_eq!(plan, Plan::Team { park_after: false });
                // Every step waits 10 ms: a measured team of two would park.
                pace.record(plan, Duration::from_millis(10));
            }
        }
    }

    #[test]
    fn alternate_parks_and_resumes_by_turns() {
        let mut pace = Pace::new(2, Pacing::Alternate);
        let plans: Vec<Plan> = (0..12)
            .map(|_| {
                let plan = pace.plan(true);
                pace.record(plan, Duration::ZERO);
                plan
            })
            .collect();
        let team = Plan::Team { park_after: false };
        let park = Plan::Team { park_after: true };
        let alone = Plan::Alone;
        assert_eq!(
            plans,
            [
                team,
                team,
                team,
                park,
                alone,
                alone,
                alone,
                Plan::Resume,
                team,
                team,
                team,
                park
            ]
        );
    }
}
