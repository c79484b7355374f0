//! [`CallMachine`]: what the appliance does about buttons and the room, sans-IO. Inputs are
//! button edges, the engine's room/stream/publisher news and the time; outputs are engine
//! commands, LED levels, mute/camera/volume changes and config reloads. Tested on simulated time
//! with scripted presses (`tests/appliance_call.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::status::CallState;

/// A physical button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    Call,
    Mute,
    Camera,
    VolumeUp,
    VolumeDown,
}

/// An LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Led {
    Status,
    Camera,
}

/// What the machine is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A debounced edge: pressed (true) or released.
    Button { button: Button, pressed: bool },
    /// Logged in (first time or again after a loss).
    LoggedIn,
    /// The connection is lost; the engine is retrying.
    Reconnecting,
    /// Out of the room: login refused, kicked, or gave up (`error_code` != 0), or logged out (0).
    Disconnected { error_code: u32 },
    /// A remote stream came.
    StreamAdded {
        stream_id: String,
        user_name: String,
    },
    /// A remote stream went.
    StreamRemoved { stream_id: String },
    /// Whether our video is being published right now (PUBLISHING).
    Publishing(bool),
}

/// What the machine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Login,
    Logout,
    StartPublishing,
    StopPublishing,
    Play(String),
    StopPlay(String),
    SetMicMuted(bool),
    SetCameraOff(bool),
    /// +1 or -1 step.
    Volume(i32),
    /// Re-read the config file; then call [`CallMachine::restart`].
    ReloadConfig,
    Led {
        led: Led,
        on: bool,
    },
}

/// The behaviour the config asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallPolicy {
    /// Publish and play as soon as logged in.
    pub auto_join: bool,
    /// Stay logged in (without publishing) when not in a call.
    pub presence: bool,
    pub long_press: Duration,
    /// Wait before logging in again after an error.
    pub retry_after: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            auto_join: true,
            presence: true,
            long_press: Duration::from_secs(5),
            retry_after: Duration::from_secs(10),
        }
    }
}

/// Blink patterns of the status LED: (on, off) durations, repeated.
fn pattern(state: CallState, muted: bool) -> Option<(Duration, Duration)> {
    let ms = Duration::from_millis;
    match state {
        CallState::Idle => None,
        CallState::Standby => Some((ms(100), ms(2900))),
        CallState::Joining | CallState::Ending => Some((ms(250), ms(250))),
        CallState::InCall if muted => Some((ms(900), ms(100))),
        CallState::InCall => Some((ms(1000), Duration::ZERO)),
        CallState::Error => Some((ms(150), ms(850))),
    }
}

/// The machine.
pub struct CallMachine {
    policy: CallPolicy,
    state: CallState,
    in_room: bool,
    /// The person wants to be in a call (button or auto_join).
    want_call: bool,
    publishing: bool,
    /// StartPublishing was asked for (and not stopped since).
    publish_requested: bool,
    muted: bool,
    camera_off: bool,
    streams: BTreeMap<String, String>,
    playing: Vec<String>,
    call_down_at: Option<Instant>,
    long_fired: bool,
    retry_at: Option<Instant>,
    status_led: bool,
    camera_led: bool,
    blink_at: Option<Instant>,
    out: VecDeque<Action>,
}

impl CallMachine {
    /// A machine that starts as the policy says (logging in with presence or auto_join).
    pub fn new(now: Instant, policy: CallPolicy) -> Self {
        let mut m = CallMachine {
            policy,
            state: CallState::Idle,
            in_room: false,
            want_call: policy.auto_join,
            publishing: false,
            publish_requested: false,
            muted: false,
            camera_off: false,
            streams: BTreeMap::new(),
            playing: Vec::new(),
            call_down_at: None,
            long_fired: false,
            retry_at: None,
            status_led: false,
            camera_led: false,
            blink_at: None,
            out: VecDeque::new(),
        };
        if policy.auto_join || policy.presence {
            m.login(now);
        }
        m.update_leds(now);
        m
    }

    /// The call state, as the status endpoint reports it.
    pub fn state(&self) -> CallState {
        self.state
    }

    pub fn muted(&self) -> bool {
        self.muted
    }

    pub fn camera_off(&self) -> bool {
        self.camera_off
    }

    /// Who is in the room (the names of the remote streams' users), for the idle screen.
    pub fn remote_names(&self) -> impl Iterator<Item = &str> {
        self.streams.values().map(String::as_str)
    }

    fn login(&mut self, now: Instant) {
        self.set_state(now, CallState::Joining);
        self.out.push_back(Action::Login);
    }

    fn set_state(&mut self, now: Instant, s: CallState) {
        if self.state != s {
            self.state = s;
            self.blink_at = None;
            self.update_leds(now);
        }
    }

    /// Applies a new policy after a config reload and restarts the call.
    pub fn restart(&mut self, now: Instant, policy: CallPolicy) {
        self.policy = policy;
        self.end_media();
        if self.in_room {
            self.out.push_back(Action::Logout);
            self.in_room = false;
        }
        self.streams.clear();
        self.want_call = true;
        self.login(now);
    }

    fn start_media(&mut self) {
        if !self.publishing_requested() {
            self.out.push_back(Action::StartPublishing);
            self.publish_requested = true;
        }
        let ids: Vec<String> = self.streams.keys().cloned().collect();
        for s in ids {
            if !self.playing.contains(&s) {
                self.playing.push(s.clone());
                self.out.push_back(Action::Play(s));
            }
        }
    }

    fn end_media(&mut self) {
        if self.publishing_requested() {
            self.out.push_back(Action::StopPublishing);
            self.publish_requested = false;
        }
        for s in std::mem::take(&mut self.playing) {
            self.out.push_back(Action::StopPlay(s));
        }
        self.publishing = false;
    }

    fn publishing_requested(&self) -> bool {
        self.publish_requested
    }

    /// One input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Button { button, pressed } => self.button(now, button, pressed),
            Input::LoggedIn => {
                self.in_room = true;
                self.retry_at = None;
                if self.want_call {
                    self.set_state(now, CallState::InCall);
                    self.start_media();
                } else {
                    self.set_state(now, CallState::Standby);
                }
            }
            Input::Reconnecting => {
                // The engine resumes publishing and playing by itself; only the lights change.
                self.set_state(now, CallState::Joining);
            }
            Input::Disconnected { error_code } => {
                self.in_room = false;
                self.publishing = false;
                self.publish_requested = false;
                self.playing.clear();
                self.streams.clear();
                if error_code != 0 {
                    self.set_state(now, CallState::Error);
                    self.retry_at = Some(now + self.policy.retry_after);
                } else if self.state != CallState::Joining {
                    self.set_state(now, CallState::Idle);
                }
            }
            Input::StreamAdded {
                stream_id,
                user_name,
            } => {
                self.streams.insert(stream_id.clone(), user_name);
                if self.state == CallState::InCall && !self.playing.contains(&stream_id) {
                    self.playing.push(stream_id.clone());
                    self.out.push_back(Action::Play(stream_id));
                }
            }
            Input::StreamRemoved { stream_id } => {
                self.streams.remove(&stream_id);
                if let Some(i) = self.playing.iter().position(|s| *s == stream_id) {
                    self.playing.remove(i);
                    // The seed asks the app to stop playing a stream that was deleted.
                    self.out.push_back(Action::StopPlay(stream_id));
                }
            }
            Input::Publishing(on) => {
                self.publishing = on;
            }
        }
        self.update_leds(now);
    }

    fn button(&mut self, now: Instant, button: Button, pressed: bool) {
        match (button, pressed) {
            (Button::Call, true) => {
                self.call_down_at = Some(now);
                self.long_fired = false;
            }
            (Button::Call, false) => {
                let was_down = self.call_down_at.take().is_some();
                if was_down && !self.long_fired {
                    self.toggle_call(now);
                }
            }
            (Button::Mute, true) => {
                self.muted = !self.muted;
                self.out.push_back(Action::SetMicMuted(self.muted));
            }
            (Button::Camera, true) => {
                self.camera_off = !self.camera_off;
                self.out.push_back(Action::SetCameraOff(self.camera_off));
            }
            (Button::VolumeUp, true) => self.out.push_back(Action::Volume(1)),
            (Button::VolumeDown, true) => self.out.push_back(Action::Volume(-1)),
            _ => {}
        }
    }

    fn toggle_call(&mut self, now: Instant) {
        match self.state {
            CallState::InCall => {
                self.want_call = false;
                self.end_media();
                if self.policy.presence {
                    self.set_state(now, CallState::Standby);
                } else {
                    self.out.push_back(Action::Logout);
                    self.in_room = false;
                    self.streams.clear();
                    self.set_state(now, CallState::Idle);
                }
            }
            CallState::Joining => {
                // A press while joining cancels the call.
                self.want_call = false;
                if !self.policy.presence {
                    self.out.push_back(Action::Logout);
                    self.in_room = false;
                    self.set_state(now, CallState::Idle);
                }
            }
            CallState::Standby if self.in_room => {
                self.want_call = true;
                self.set_state(now, CallState::InCall);
                self.start_media();
            }
            CallState::Idle | CallState::Standby | CallState::Error | CallState::Ending => {
                self.want_call = true;
                self.retry_at = None;
                self.login(now);
            }
        }
    }

    /// Time passes: long presses, login retries, LED blinking.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(t) = self.call_down_at
            && !self.long_fired
            && now.saturating_duration_since(t) >= self.policy.long_press
        {
            self.long_fired = true;
            self.out.push_back(Action::ReloadConfig);
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.login(now);
        }
        self.update_leds(now);
    }

    fn update_leds(&mut self, now: Instant) {
        let camera = self.publishing && !self.camera_off;
        if camera != self.camera_led {
            self.camera_led = camera;
            self.out.push_back(Action::Led {
                led: Led::Camera,
                on: camera,
            });
        }
        let want = match pattern(self.state, self.muted) {
            None => {
                self.blink_at = None;
                false
            }
            Some((_, off)) if off.is_zero() => {
                self.blink_at = None;
                true
            }
            Some((on, off)) => {
                let next = *self.blink_at.get_or_insert(now);
                if now >= next {
                    let lit = !self.status_led;
                    self.blink_at = Some(now + if lit { on } else { off });
                    lit
                } else {
                    self.status_led
                }
            }
        };
        if want != self.status_led {
            self.status_led = want;
            self.out.push_back(Action::Led {
                led: Led::Status,
                on: want,
            });
        }
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.call_down_at
                .filter(|_| !self.long_fired)
                .map(|t| t + self.policy.long_press),
            self.retry_at,
            self.blink_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
